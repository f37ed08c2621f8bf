"""GIGA-Piano: a GPT decoder with relative-position self-attention (Music Transformer style) for piano MIDI.

The math follows the released upstream checkpoints exactly (see the project's DESIGN notes):
token + learned absolute position embedding, pre-norm blocks with one packed q/k/v projection,
one relative table `Er` per layer shared by all heads, exact (erf) GELU, final LayerNorm and a
bias-free head. On top of upstream it adds a key/value cache so that `generate()` costs one
forward per new token instead of a full re-run of the sequence.

This file is shipped with the weights for `trust_remote_code`: it imports only torch, transformers
and its sibling configuration file.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.cache_utils import Cache, DynamicCache
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

try:  # transformers >= 5: init helpers that skip weights already loaded from a checkpoint
    from transformers import initialization as init
except ImportError:  # pragma: no cover - older transformers
    from torch.nn import init

from .configuration_gigapiano import GigaPianoConfig


def relative_position_bias(q: torch.Tensor, relative_table: torch.Tensor, key_length: int) -> torch.Tensor:
    """Relative term `q_i . Er[er_len - 1 - (i - j)]` for queries at the end of a key sequence.

    The queries are the last `T` of `key_length` positions (with a cache, `T` is usually 1), so query
    `t` sits at absolute position `i = key_length - T + t`. Only the last `key_length` rows of the
    table are needed (distances 0 .. key_length - 1). The per-row shift is done with the "skewing"
    reshape of Huang et al. (2018), generalised to `T <= key_length`, which avoids building an index
    tensor of size T x key_length.

    Args:
        q: scaled queries, `(batch, heads, T, head_dim)`.
        relative_table: `Er`, `(er_len, head_dim)`.
        key_length: number of keys `S` (past + current), `S >= T`.

    Returns:
        `(batch, heads, T, S)`; entries for future keys (`j > i`) are arbitrary and must be masked.
    """
    query_length = q.shape[-2]
    er_len = relative_table.shape[0]
    if key_length > er_len:
        raise ValueError(
            f"Sequence of {key_length} tokens exceeds the relative table ({er_len}); slide the window "
            "to the most recent tokens first."
        )
    # column c of rel_logits <-> distance key_length - 1 - c
    rel_logits = torch.matmul(q, relative_table[er_len - key_length :].transpose(0, 1))  # (B, H, T, S)
    # want out[t, j] = rel_logits[t, j + T - 1 - t]
    if query_length == key_length:
        # Whole sequence (training, prefill): one zero column on the left, reread as (T + 1, T), drop row 0.
        padded = F.pad(rel_logits, (1, 0))  # (B, H, T, T + 1)
        return padded.view(*q.shape[:-2], key_length + 1, key_length)[..., 1:, :]
    # Queries at the end of a cache: pad each row by T, read the flat buffer with a row stride of
    # S + T - 1 starting at offset T - 1.
    width = key_length + query_length
    padded = F.pad(rel_logits, (0, query_length))  # (B, H, T, S + T)
    flat = padded.flatten(-2)[..., query_length - 1 : query_length - 1 + query_length * (width - 1)]
    return flat.reshape(*q.shape[:-2], query_length, width - 1)[..., :key_length]


class GigaPianoAttention(nn.Module):
    """Multi-head causal self-attention with a per-layer relative-position table shared by all heads.

    Two paths compute the same function: `scaled_dot_product_attention` with the relative term and the
    masks as an additive float bias (default, faster), and an explicit softmax path used when the
    attention weights are requested or `config._attn_implementation == "eager"`.
    """

    def __init__(self, config: GigaPianoConfig, layer_idx: int) -> None:
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        # Packed projection in the order q, k, v (upstream `in_proj_weight` / `in_proj_bias`).
        self.qkv_proj = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)
        # Upstream `Er`: one row per relative distance, row er_len - 1 is distance 0.
        self.relative_embedding = nn.Parameter(torch.empty(config.relative_attention_length, self.head_dim))
        self.attn_dropout = config.attn_pdrop

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend over the cached keys plus the new positions.

        Args:
            hidden_states: `(batch, T, hidden)`, the normalised input of the block.
            key_padding_mask: `(batch, S)` bool, True where a key is real, False for padding; None if
                every key is real. `S` = cached length + T.
            cache: transformers cache holding the keys/values of earlier positions; updated in place.
            output_attentions: return the attention probabilities `(batch, heads, T, S)`.
        """
        batch, query_length, width = hidden_states.shape
        qkv = self.qkv_proj(hidden_states)
        # (B, T, 3*W) -> 3 x (B, H, T, D)
        q, k, v = qkv.view(batch, query_length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        # Upstream scales q before both q.k and the relative term.
        q = q * self.scaling
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)
        key_length = k.shape[-2]

        bias = relative_position_bias(q, self.relative_embedding, key_length)
        blocked = _blocked_keys(query_length, key_length, key_padding_mask, hidden_states.device)
        bias = bias.masked_fill(blocked, torch.finfo(bias.dtype).min)
        dropout = self.attn_dropout if self.training else 0.0

        # On CPU the fused kernel with a float bias is about 2x slower than the explicit path when
        # gradients flow (measured in bench/bench_train.py), so training on CPU takes the explicit path.
        use_eager = (
            output_attentions
            or getattr(self.config, "_attn_implementation", None) == "eager"
            or (torch.is_grad_enabled() and q.requires_grad and q.device.type == "cpu")
        )
        if use_eager:
            weights = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) + bias, dim=-1)
            weights = F.dropout(weights, p=dropout, training=self.training)
            context = torch.matmul(weights, v)
        else:
            weights = None
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout, scale=1.0)
        # (B, H, T, D) -> (B, T, W)
        context = context.transpose(1, 2).reshape(batch, query_length, width)
        return self.out_proj(context), weights


def _blocked_keys(
    query_length: int, key_length: int, key_padding_mask: torch.Tensor | None, device: torch.device
) -> torch.Tensor:
    """Boolean mask, True where query t may not see key j: future keys and padded keys.

    Returns `(T, S)` or `(batch, 1, T, S)` when a padding mask is given.
    """
    query_positions = torch.arange(key_length - query_length, key_length, device=device)
    future = torch.arange(key_length, device=device)[None, :] > query_positions[:, None]
    if key_padding_mask is None:
        return future
    return future[None, None] | ~key_padding_mask[:, None, None, :]


class GigaPianoMLP(nn.Module):
    """Feed-forward layer: Linear -> exact (erf) GELU -> Linear (upstream `mlp.0` / `mlp.2`)."""

    def __init__(self, config: GigaPianoConfig) -> None:
        super().__init__()
        self.fc_in = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc_out = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc_out(F.gelu(self.fc_in(hidden_states)))


class GigaPianoBlock(nn.Module):
    """Pre-norm transformer block: `x + Attn(LN1(x))`, then `x + MLP(LN2(x))`."""

    def __init__(self, config: GigaPianoConfig, layer_idx: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attn = GigaPianoAttention(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = GigaPianoMLP(config)
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attn_out, weights = self.attn(self.ln_1(hidden_states), key_padding_mask, cache, output_attentions)
        hidden_states = hidden_states + self.resid_dropout(attn_out)
        hidden_states = hidden_states + self.resid_dropout(self.mlp(self.ln_2(hidden_states)))
        return hidden_states, weights


class GigaPianoPreTrainedModel(PreTrainedModel):
    """Weight init and the flags transformers reads; shared by the base model and the LM head model."""

    config_class = GigaPianoConfig
    config: GigaPianoConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = False
    _no_split_modules = ["GigaPianoBlock"]
    _supports_sdpa = True

    def _init_weights(self, module: nn.Module) -> None:
        """Linear/Embedding/LayerNorm via the base class; the bare parameters (positions, `Er`) here."""
        super()._init_weights(module)
        std = self.config.initializer_range
        if isinstance(module, GigaPianoModel):
            init.normal_(module.position_embedding, mean=0.0, std=std)
        elif isinstance(module, GigaPianoAttention):
            init.normal_(module.relative_embedding, mean=0.0, std=std)


class GigaPianoModel(GigaPianoPreTrainedModel):
    """The decoder stack without the output head: returns the final normalised hidden states."""

    def __init__(self, config: GigaPianoConfig) -> None:
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        # Upstream `pos_emb`: a learned (1, context, width) table.
        self.position_embedding = nn.Parameter(
            torch.empty(1, config.max_position_embeddings, config.hidden_size)
        )
        self.embed_dropout = nn.Dropout(config.embd_pdrop)
        self.layers = nn.ModuleList([GigaPianoBlock(config, i) for i in range(config.num_hidden_layers)])
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs: Any,
    ) -> BaseModelOutputWithPast:
        """Run the decoder.

        Args:
            input_ids: `(batch, T)` token ids (or give `inputs_embeds`).
            attention_mask: `(batch, past + T)` with 1 for real tokens and 0 for (left) padding.
            position_ids: `(batch, T)` absolute positions; default counts from the cache length.
                `generate()` derives them from `attention_mask` so left-padded rows start at 0.
            cache: a transformers `Cache` with earlier keys/values (created when `use_cache`).
        """
        cache = kwargs.pop("past_key_values", cache)
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        use_cache = self.config.use_cache if use_cache is None else use_cache
        output_attentions = bool(output_attentions)
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        past_length = int(cache.get_seq_length()) if cache is not None else 0
        query_length = inputs_embeds.shape[1]

        if position_ids is None:
            position_ids = torch.arange(past_length, past_length + query_length, device=inputs_embeds.device)
            position_ids = position_ids.unsqueeze(0)
        context = self.config.max_position_embeddings
        if past_length + query_length > context or int(position_ids.max()) >= context:
            raise ValueError(
                f"Input reaches position {max(past_length + query_length, int(position_ids.max()) + 1)} "
                f"but the model's context is {context} tokens; keep the last {context} tokens (start "
                "them on a separator) or use the project's long-generation helper."
            )
        # Padded positions may carry any id; clamp so the table lookup stays in range.
        positions = self.position_embedding[0, position_ids.clamp(min=0)]
        hidden_states = self.embed_dropout(inputs_embeds + positions)

        key_padding_mask = None
        if attention_mask is not None:
            key_padding_mask = attention_mask[:, -(past_length + query_length) :].bool()
            if bool(key_padding_mask.all()):
                key_padding_mask = None

        all_hidden: tuple[torch.Tensor, ...] = ()
        all_attentions: tuple[torch.Tensor, ...] = ()
        for block in self.layers:
            if output_hidden_states:
                all_hidden += (hidden_states,)
            hidden_states, weights = block(hidden_states, key_padding_mask, cache, output_attentions)
            if output_attentions:
                all_attentions += (weights,)
        hidden_states = self.norm(hidden_states)
        if output_hidden_states:
            all_hidden += (hidden_states,)
        return BaseModelOutputWithPast(
            last_hidden_state=hidden_states,
            cache=cache if use_cache else None,
            hidden_states=all_hidden or None,
            attentions=all_attentions or None,
        )


class GigaPianoForCausalLM(GigaPianoPreTrainedModel, GenerationMixin):
    """GIGA-Piano with its bias-free next-token head; computes the shifted cross-entropy for `labels`."""

    def __init__(self, config: GigaPianoConfig) -> None:
        super().__init__(config)
        self.model = GigaPianoModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        """Logits for every position (or the last `logits_to_keep`), plus the loss when `labels` are given.

        Args:
            labels: `(batch, T)` targets aligned with `input_ids` (shifted inside, -100 ignored).
            logits_to_keep: if > 0, only the last that many positions get logits (generation needs 1).
        """
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        if isinstance(logits_to_keep, int):
            if logits_to_keep > 0:
                hidden_states = hidden_states[:, -logits_to_keep:]
        else:
            hidden_states = hidden_states[:, logits_to_keep]
        logits = self.lm_head(hidden_states)

        loss = None
        if labels is not None:
            loss = causal_lm_loss(logits, labels, num_items_in_batch)
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


def causal_lm_loss(
    logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch: int | torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy of position t's logits against label t + 1; -100 labels are ignored.

    With `num_items_in_batch` (given by `Trainer` under gradient accumulation) the sum is divided by
    that count so accumulated steps weigh every token equally.
    """
    shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    shift_labels = labels[:, 1:].reshape(-1).to(shift_logits.device)
    if num_items_in_batch is None:
        return F.cross_entropy(shift_logits, shift_labels, ignore_index=-100)
    total = F.cross_entropy(shift_logits, shift_labels, ignore_index=-100, reduction="sum")
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch


GigaPianoModel.register_for_auto_class("AutoModel")
GigaPianoForCausalLM.register_for_auto_class("AutoModelForCausalLM")

__all__ = ["GigaPianoForCausalLM", "GigaPianoModel", "GigaPianoPreTrainedModel", "relative_position_bias"]
