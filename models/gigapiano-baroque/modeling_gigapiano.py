# Copyright 2026 The GIGA-Piano for Transformers authors. Licensed under the Apache License, Version 2.0.
"""GIGA-Piano: a GPT decoder with relative-position self-attention (Music Transformer style) for piano MIDI.

The math follows the released upstream checkpoints exactly (see the project's DESIGN notes):
token + learned absolute position embedding, pre-norm blocks with one packed q/k/v projection,
one relative table `Er` per layer shared by all heads, exact (erf) GELU, final LayerNorm and a
bias-free head. On top of upstream it adds a key/value cache so that `generate()` costs one
forward per new token instead of a full re-run of the sequence.

The model is written the way transformers' own decoders are: the attention goes through the
attention-interface registry (`eager`, `sdpa`, `flex_attention`; the relative term travels as the
interface's `position_bias`), masks come from `create_causal_mask`, hidden states and attention weights
are captured by the output-capturing hooks, blocks support gradient checkpointing, and the forward has
no data-dependent Python branch, so it runs on a static cache, compiles without graph breaks and exports
with `torch.export`.

This file is shipped with the weights for `trust_remote_code`: it imports only torch, transformers
and its sibling configuration file.
"""

from __future__ import annotations

import weakref
import zlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.cache_utils import Cache, DynamicCache
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, slice_logits_to_keep
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, can_return_tuple, is_torchdynamo_compiling
from transformers.utils.deprecation import deprecate_kwarg
from transformers.utils.generic import merge_with_config_defaults
from transformers.utils.output_capturing import capture_outputs

try:  # transformers >= 5: init helpers that skip weights already loaded from a checkpoint
    from transformers import initialization as init
except ImportError:  # pragma: no cover - older transformers
    from torch.nn import init

from .configuration_gigapiano import GigaPianoConfig

# Queries per block when a prefill of at least 4 blocks runs blocked SDPA (GigaPianoAttention._chunked_sdpa);
# 32 to 64 measured best for 128 to 1024 queries on the 16 x 1024 model (bench notes in docs/benchmarks.md).
_PREFILL_CHUNK = 32


def relative_position_bias(
    q: torch.Tensor,
    relative_table: torch.Tensor,
    key_length: int,
    query_offset: int | torch.Tensor | None = None,
) -> torch.Tensor:
    """Relative term `q_i . Er[er_len - 1 - (i - j)]` of query position `i` and key position `j`.

    Query `t` sits at position `i = query_offset + t`; keys are positions `0 .. key_length - 1`. Without
    an offset the queries are the last `T` of the `key_length` positions (a dynamic cache, or no cache).
    With an int offset and the filled keys inside the table, the term is the "skewing" of Huang et al.
    (2018): `q` times the last `offset + T` rows of the table, column `c = T - 1 - t + j` of row `t`. In
    eager inference that is a strided view of the product (row stride `offset + T - 1`), without a copy;
    under autograd and in compiled graphs the whole-sequence case pads one zero column and rereads the
    product as `(T + 1, T)`, plain views that differentiate and compile cheaply. Every other case (a
    tensor offset, as a static cache gives in compiled graphs, or packed sequences longer than the table)
    gathers along the table with an index built from the offset, so nothing depends on its value in
    Python (compile, export). Distances past the table clamp to its last row: the model's context check
    keeps real distances inside it, and keys of other packed sequences are masked.

    Args:
        q: scaled queries, `(batch, heads, T, head_dim)`.
        relative_table: `Er`, `(er_len, head_dim)`.
        key_length: number of keys `S`.
        query_offset: position of the first query; `key_length - T` when None.

    Returns:
        `(batch, heads, T, S)`; entries for future keys (`j > i`) are arbitrary and must be masked.
    """
    query_length = q.shape[-2]
    er_len = relative_table.shape[0]
    if query_offset is None:
        query_offset = key_length - query_length
    plain_views = is_torchdynamo_compiling() or (
        torch.is_grad_enabled() and (q.requires_grad or relative_table.requires_grad)
    )
    filled = None if isinstance(query_offset, torch.Tensor) else query_offset + query_length
    if filled is not None and filled <= key_length and filled <= er_len and not plain_views:
        # Eager inference: queries at `query_offset ..`, keys `0 .. filled - 1` (further keys, as in a whole
        # static cache, are future positions and get a zero bias). out[t, j] = rel_logits[t, T - 1 - t + j]
        # sits at flat offset t * (filled - 1) + j + T - 1 of each (batch, head) slice; the last element
        # read is T * filled - 1, so the strided view stays inside the slice.
        if query_length == 1 and _packable(q, relative_table):
            # One query (decoding): the skew is the identity; q times the whole table through its packed copy
            # (a fixed weight, unlike a slice of it), then the columns of the filled positions.
            skewed = _packed_bf16_linear(q, relative_table, None)[..., er_len - filled :]
            return F.pad(skewed, (0, key_length - filled)) if filled < key_length else skewed
        rel_logits = torch.matmul(q, relative_table[er_len - filled :].transpose(0, 1)).contiguous()
        skewed = rel_logits.as_strided(
            rel_logits.shape,
            (rel_logits.stride(0), rel_logits.stride(1), filled - 1, 1),
            rel_logits.storage_offset() + query_length - 1,
        )
        return F.pad(skewed, (0, key_length - filled)) if filled < key_length else skewed
    if filled == key_length == query_length and key_length <= er_len:
        # Whole sequence under autograd or in a compiled graph: one zero column on the left, the product
        # reread as (T + 1, T), row 0 dropped; plain views, which differentiate and compile cheaply.
        rel_logits = torch.matmul(q, relative_table[er_len - key_length :].transpose(0, 1))  # (B, H, T, T)
        padded = F.pad(rel_logits, (1, 0))  # (B, H, T, T + 1)
        return padded.view(*q.shape[:-2], key_length + 1, key_length)[..., 1:, :]
    rel_logits = torch.matmul(q, relative_table.transpose(0, 1))  # (B, H, T, er_len), column = er_len - 1 - d
    query_positions = torch.arange(query_length, device=q.device) + query_offset
    distance = query_positions[:, None] - torch.arange(key_length, device=q.device)[None, :]
    index = (er_len - 1 - distance).clamp(0, er_len - 1)
    return torch.gather(rel_logits, -1, index.expand(*q.shape[:-2], query_length, key_length))


def _additive_mask(
    position_bias: torch.Tensor, attention_mask: torch.Tensor | None, query: torch.Tensor, key: torch.Tensor
) -> torch.Tensor:
    """The relative term with the mask folded in, as one float bias to add to `q.k`.

    `attention_mask` may be additive (float), boolean (True = attend) or None; None means plain causal
    attention where queries and keys end together (what `create_causal_mask` returns for `sdpa` when it
    leaves causality to the kernel).
    """
    if attention_mask is None:
        query_length, key_length = query.shape[-2], key.shape[-2]
        query_positions = torch.arange(key_length - query_length, key_length, device=query.device)
        future = torch.arange(key_length, device=query.device)[None, :] > query_positions[:, None]
        # An additive mask rather than `where`: its backward is the identity, one pass over (T x T) fewer.
        blocked = torch.zeros(future.shape, dtype=position_bias.dtype, device=query.device)
        return position_bias + blocked.masked_fill_(future, torch.finfo(position_bias.dtype).min)
    if attention_mask.dtype == torch.bool:
        return torch.where(attention_mask, position_bias, torch.finfo(position_bias.dtype).min)
    return position_bias + attention_mask


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    position_bias: torch.Tensor | None = None,
    **kwargs: Unpack[TransformersKwargs],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Explicit softmax attention; returns `(batch, T, heads, head_dim)` outputs and the attention weights."""
    if query.shape[-2] == 1:
        # One query (decoding): keys times the query. The same products, but a sliced cache (strided keys)
        # is read in place, where the transposed form would be copied first by the CPU's bf16 kernel.
        scores = torch.matmul(key, query.transpose(2, 3)).transpose(2, 3)
    else:
        scores = torch.matmul(query, key.transpose(2, 3))
    if scaling != 1.0:
        scores = scores * scaling
    if position_bias is not None:
        scores = scores + _additive_mask(position_bias, attention_mask, query, key)
    elif attention_mask is not None:
        scores = scores + attention_mask
    if scores.dtype == torch.bfloat16 and scores.device.type == "cpu":
        # The CPU's bf16 softmax accumulates in fp32 itself and gives the same weights; skipping the fp32 copy
        # of the (T x T) scores and its backward halves the cost of attention in a bf16 training step.
        weights = torch.softmax(scores, dim=-1)
    else:
        weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    if dropout > 0.0 and module.training:
        weights = F.dropout(weights, p=dropout)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


def _onednn_bf16_available() -> bool:
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - builds without oneDNN
        return False


_ONEDNN_BF16 = _onednn_bf16_available()
# oneDNN-packed copies of bf16 linear weights by `id(weight)`, dropped with the weight and checked against
# its storage and version counter, so loading, `.to()` or an optimizer step repacks on the next call.
_PACKED_WEIGHTS: dict[int, tuple[tuple[int, int], torch.Tensor]] = {}


def _packed_bf16_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, activation: str = "none"
) -> torch.Tensor:
    """`F.linear(x, weight, bias)` for bf16 CPU tensors through a oneDNN-packed copy of `weight`; with
    `activation="gelu"`, the exact GELU is applied inside the product, before the bf16 rounding."""
    key = (weight.data_ptr(), weight._version)
    entry = _PACKED_WEIGHTS.get(id(weight))
    if entry is None or entry[0] != key:
        if entry is None:
            weakref.finalize(weight, _PACKED_WEIGHTS.pop, id(weight), None)
        entry = (key, torch.ops.mkldnn._reorder_linear_weight(weight.detach(), 1))
        _PACKED_WEIGHTS[id(weight)] = entry
    rows = x.reshape(-1, weight.shape[1])
    algorithm = "none" if activation == "gelu" else ""  # "none": the exact (erf) GELU
    out = torch.ops.mkldnn._linear_pointwise(rows, entry[1], bias, activation, [], algorithm)
    return out.view(*x.shape[:-1], weight.shape[0])


def _register_packed_op():
    """`_packed_bf16_linear` as a custom op, so compiled graphs call it as one opaque node.

    The name carries this module's name: a second copy of this file in the process (the local package and a
    model folder's `trust_remote_code` copy) registers its own op with its own cache of packed weights.
    """
    if not _ONEDNN_BF16 or not hasattr(torch.library, "custom_op"):
        return None
    name = f"packed_bf16_linear_{zlib.crc32(__name__.encode()):08x}"
    existing = getattr(torch.ops.gigapiano, name, None)
    if existing is not None:  # this module imported again (importlib.reload)
        return existing
    op = torch.library.custom_op(f"gigapiano::{name}", mutates_args=())(_packed_bf16_linear)
    op.register_fake(lambda x, weight, bias, activation="none": x.new_empty(*x.shape[:-1], weight.shape[0]))
    return op


_PACKED_BF16_LINEAR_OP = _register_packed_op()


def _packable(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether `x @ weight.T` can take the packed bf16 product (eager CPU inference in bf16)."""
    return (
        _ONEDNN_BF16
        and x.dtype == torch.bfloat16
        and weight.dtype == torch.bfloat16
        and x.device.type == "cpu"
        and not torch.is_grad_enabled()
    )


def _linear(module: nn.Module, hidden_states: torch.Tensor, activation: str = "none") -> torch.Tensor:
    """`module(hidden_states)` (then the exact GELU for `activation="gelu"`); a plain bf16 `nn.Linear` in
    CPU inference multiplies by a packed weight, with the GELU fused into the product.

    oneDNN's packed bf16 product (`mkldnn._linear_pointwise`, what PyTorch's CPU compiler uses for frozen
    linears) gives the same bits as `F.linear` and is about 2x faster on a CPU without AMX at 1 to 16 rows
    (decoding reads every weight per token) and 1.1x at 768 rows; the fused GELU rounds to bf16 once
    instead of twice. The weight is packed once, which keeps a second copy of it; compiled graphs (not
    exported ones) call it through a custom op.
    Anything else (training, fp32, GPUs, modules that were wrapped or replaced, e.g. by LoRA or by hooks)
    calls the module as usual.
    """
    if (
        type(module) is nn.Linear
        and _packable(hidden_states, module.weight)
        and "forward" not in module.__dict__
        and not (module._forward_hooks or module._forward_pre_hooks)
    ):
        if not is_torchdynamo_compiling():
            return _packed_bf16_linear(hidden_states, module.weight, module.bias, activation)
        if _PACKED_BF16_LINEAR_OP is not None and not torch.compiler.is_exporting():
            return _PACKED_BF16_LINEAR_OP(hidden_states, module.weight, module.bias, activation)
    out = module(hidden_states)
    return F.gelu(out) if activation == "gelu" else out


class GigaPianoAttention(nn.Module):
    """Multi-head causal self-attention with a per-layer relative-position table shared by all heads.

    The relative term is computed here (it needs the scaled queries) and handed to the attention function
    of `config._attn_implementation` as `position_bias`: `eager` adds it to the scores, `sdpa` folds it
    into the float mask, `flex_attention` adds it in its score modification. On a CPU under `sdpa`, three
    cases take other routes to the same function: training takes the eager function (with a float bias the
    fused kernel is about 2x slower when gradients flow, bench/bench_train.py), so does one bf16/fp16 query
    (decoding), and a long prefill runs SDPA over blocks of queries (`_chunked_sdpa`). Eager (not compiled)
    steps on a static cache attend to its filled part (`_filled_part`).
    """

    def __init__(self, config: GigaPianoConfig, layer_idx: int) -> None:
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = True
        # Packed projection in the order q, k, v (upstream `in_proj_weight` / `in_proj_bias`).
        self.qkv_proj = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)
        # Upstream `Er`: one row per relative distance, row er_len - 1 is distance 0.
        self.relative_embedding = nn.Parameter(torch.empty(config.relative_attention_length, self.head_dim))
        self.attn_dropout = config.attn_pdrop

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend over the cached keys plus the new positions.

        Args:
            hidden_states: `(batch, T, hidden)`, the normalised input of the block.
            attention_mask: the mask `create_causal_mask` built for the configured implementation.
            cache: transformers cache holding the keys/values of earlier positions; updated in place.

        Returns:
            The block's attention output and the attention weights (eager only, else None).
        """
        batch, query_length, width = hidden_states.shape
        qkv = _linear(self.qkv_proj, hidden_states)
        # (B, T, 3*W) -> 3 x (B, H, T, D)
        q, k, v = qkv.view(batch, query_length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        # Upstream scales q before both q.k and the relative term.
        q = q * self.scaling
        compiling = is_torchdynamo_compiling()
        implementation = self.config._attn_implementation
        if implementation == "sdpa" and q.device.type == "cpu":
            if q.requires_grad:
                implementation = "eager"
            elif query_length == 1 and q.dtype != torch.float32:
                # One bf16/fp16 query: the fused CPU kernel is about 3x slower than the explicit product here.
                implementation = "eager"
        query_offset = None
        if cache is not None:
            # Read before the update; a static cache's length is a tensor that the update bumps in place.
            query_offset = cache.get_seq_length(self.layer_idx)
            if isinstance(query_offset, torch.Tensor):
                query_offset = query_offset.clone() if compiling else int(query_offset)
            k, v = cache.update(k, v, self.layer_idx)
            cache_length = k.shape[-2]
            if not compiling and cache_length > query_offset + query_length:
                k, v, attention_mask = self._filled_part(q, k, v, attention_mask, query_offset + query_length)

        if (
            implementation == "sdpa"
            and query_length >= 4 * _PREFILL_CHUNK
            and q.device.type == "cpu"
            and not compiling
            and not q.requires_grad
            and type(query_offset) is not torch.Tensor
            and k.shape[-2] == (query_offset or 0) + query_length
        ):
            context = self._chunked_sdpa(q, k, v, attention_mask, query_offset or 0)
            return _linear(self.out_proj, context.reshape(batch, query_length, width)), None
        position_bias = relative_position_bias(q, self.relative_embedding, k.shape[-2], query_offset)
        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            implementation, eager_attention_forward
        )
        context, weights = attention_interface(
            self,
            q,
            k,
            v,
            attention_mask,
            dropout=self.attn_dropout if self.training else 0.0,
            scaling=1.0,
            position_bias=position_bias,
            **kwargs,
        )
        context = context.reshape(batch, query_length, width)
        if (
            weights is not None
            and cache is not None
            and weights.shape[-1] < cache_length
            and self.config._attn_implementation == "eager"  # weights are only reported for eager
        ):
            # Attention ran on the filled part of a static cache: report weights over the whole cache, as a
            # compiled step does (zeros on the empty tail, which the mask hides anyway).
            weights = F.pad(weights, (0, cache_length - weights.shape[-1]))
        return _linear(self.out_proj, context), weights

    @staticmethod
    def _filled_part(
        q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attention_mask: torch.Tensor | None, end: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Eager steps on a static cache: keys, values and mask cut to the `end` filled positions, so
        attention and the relative term cover those only (compiled graphs keep the full, fixed shape).

        For one bf16/fp16 query on a CPU the batched product copies a sliced cache (about a third of the cost
        of reading it whole), so a cache at least 3/4 full is kept whole, its empty tail masked. A flex
        attention block mask keeps the full length too.
        """
        whole = (
            q.shape[-2] == 1
            and q.device.type == "cpu"
            and q.dtype != torch.float32
            and 4 * end >= 3 * k.shape[-2]
            and isinstance(attention_mask, torch.Tensor)  # the mask covers the empty tail
        )
        if whole or not (attention_mask is None or isinstance(attention_mask, torch.Tensor)):
            return k, v, attention_mask
        if attention_mask is not None and attention_mask.dim() == 4:
            attention_mask = attention_mask[..., :end]
        return k[:, :, :end], v[:, :, :end], attention_mask

    def _chunked_sdpa(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        attention_mask: torch.Tensor | None,
        past_length: int,
    ) -> torch.Tensor:
        """SDPA over blocks of `_PREFILL_CHUNK` queries, each against the keys up to its last query.

        The relative term makes the mask a float tensor, so the fused kernel cannot skip the keys above the
        diagonal the way it does for plain causal attention; cutting the queries into blocks skips most of
        them (for 768 queries in blocks of 32, 52% of the products, the relative term and the mask remain).
        Same function as one call; used for long prefills in inference. Returns `(batch, T, heads, head_dim)`.
        """
        batch, heads, query_length, head_dim = q.shape
        # Each block's output goes straight to its rows: one copy per block, no concatenation after.
        context = q.new_empty(batch, query_length, heads, head_dim)
        for start in range(0, query_length, _PREFILL_CHUNK):
            stop = min(query_length, start + _PREFILL_CHUNK)
            end = past_length + stop
            q_block, k_block, v_block = q[:, :, start:stop], k[:, :, :end], v[:, :, :end]
            mask = None
            if isinstance(attention_mask, torch.Tensor):
                rows = slice(start, stop) if attention_mask.shape[-2] > 1 else slice(None)
                mask = attention_mask[..., rows, :end]
            position_bias = relative_position_bias(q_block, self.relative_embedding, end)
            # The block's queries end with its keys; the mask built here says so (causal, lower right).
            float_mask = _additive_mask(position_bias, mask, q_block, k_block)
            block = F.scaled_dot_product_attention(q_block, k_block, v_block, attn_mask=float_mask, scale=1.0)
            context[:, start:stop] = block.transpose(1, 2)
        return context


def _blocked_keys(
    query_length: int, key_length: int, key_padding_mask: torch.Tensor | None, device: torch.device
) -> torch.Tensor:
    """Boolean mask, True where query t may not see key j: future keys and padded keys.

    The model builds its masks with `create_causal_mask`; this stays for scripts that restate the attention
    by hand (bench/bench_train.py). Returns `(T, S)` or `(batch, 1, T, S)` when a padding mask is given.
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
        return _linear(self.fc_out, _linear(self.fc_in, hidden_states, "gelu"))


class GigaPianoBlock(GradientCheckpointingLayer):
    """Pre-norm transformer block: `x + Attn(LN1(x))`, then `x + MLP(LN2(x))`."""

    def __init__(self, config: GigaPianoConfig, layer_idx: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attn = GigaPianoAttention(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = GigaPianoMLP(config)
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> torch.Tensor:
        attn_out, _ = self.attn(self.ln_1(hidden_states), attention_mask, cache, **kwargs)
        hidden_states = hidden_states + self._dropout(attn_out)
        return hidden_states + self._dropout(self.mlp(self.ln_2(hidden_states)))

    def _dropout(self, hidden_states: torch.Tensor) -> torch.Tensor:
        # No module call where dropout is the identity (evaluation): decoding runs this twice per layer.
        return self.resid_dropout(hidden_states) if self.training else hidden_states


class GigaPianoPreTrainedModel(PreTrainedModel):
    """Weight init and the capability flags transformers reads; shared by the base model and the LM head."""

    config_class = GigaPianoConfig
    config: GigaPianoConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["GigaPianoBlock"]
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_compile_fullgraph = True
    _can_record_outputs = {"hidden_states": GigaPianoBlock, "attentions": GigaPianoAttention}

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, also for a model sharded with FSDP2 (`fully_shard`).

        `fully_shard` swaps the model's class for a subclass it builds in torch's own module
        (`FSDPGigaPianoForCausalLM`); saved as is, the folder's `auto_map` would name that class and torch's
        FSDP files would be copied beside the weights, so the folder would not load. The save runs under the
        model's own class (the weights come from the state dict either way).
        """
        sharded_class = type(self)
        fsdp_module = getattr(getattr(torch.distributed, "fsdp", None), "FSDPModule", None)
        if fsdp_module is None or not isinstance(self, fsdp_module):
            return super().save_pretrained(save_directory, *args, **kwargs)
        self.__class__ = next(base for base in sharded_class.__bases__ if not issubclass(base, fsdp_module))
        try:
            return super().save_pretrained(save_directory, *args, **kwargs)
        finally:
            self.__class__ = sharded_class

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
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @merge_with_config_defaults
    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutputWithPast:
        """Run the decoder.

        Args:
            input_ids: `(batch, T)` token ids (or give `inputs_embeds`).
            attention_mask: `(batch, past + T)` with 1 for real tokens and 0 for (left) padding, or a prepared
                4D mask.
            position_ids: `(batch, T)` absolute positions; default counts from the cache length.
                `generate()` derives them from `attention_mask` so left-padded rows start at 0.
            cache: a transformers `Cache` with earlier keys/values (a `DynamicCache` is created when
                `use_cache`); a `StaticCache` makes every step the same shape (compile, export).
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        past_length = cache.get_seq_length() if cache is not None else 0
        query_length = inputs_embeds.shape[1]
        if position_ids is None:
            position_ids = torch.arange(query_length, device=inputs_embeds.device) + past_length
            position_ids = position_ids.unsqueeze(0)
        if not is_torchdynamo_compiling():
            # A value check, so it stays out of compiled graphs (an index past the table fails there anyway).
            self._check_context(position_ids)
        # Padded positions may carry any id; clamp so the table lookup stays in range.
        positions = self.position_embedding[0, position_ids.clamp(min=0)]
        hidden_states = self.embed_dropout(inputs_embeds + positions)

        causal_mask = create_causal_mask(
            config=self.config,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            cache=cache,
            position_ids=position_ids,
        )
        for block in self.layers[: self.config.num_hidden_layers]:
            hidden_states = block(hidden_states, attention_mask=causal_mask, cache=cache, **kwargs)
        hidden_states = self.norm(hidden_states)
        return BaseModelOutputWithPast(last_hidden_state=hidden_states, cache=cache)

    def _check_context(self, position_ids: torch.Tensor) -> None:
        """Raise a clear error when a position runs past the learned position table.

        Positions, not the sequence length, are checked: packed sequences restart their positions, so a
        packed row may hold more tokens than the context.
        """
        context = self.config.max_position_embeddings
        last_position = int(position_ids.max()) + 1 if position_ids.numel() else 0
        if last_position > context:
            raise ValueError(
                f"Input reaches position {last_position} but the model's context is "
                f"{context} tokens; keep the last {context} tokens (start them on a separator) or use the "
                "project's long-generation helper."
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

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs: Unpack[TransformersKwargs],
    ) -> CausalLMOutputWithPast:
        """Logits for every position (or the last `logits_to_keep`), plus the loss when `labels` are given.

        Args:
            labels: `(batch, T)` targets aligned with `input_ids`, shifted inside; -100 is ignored. The loss
                is `self.loss_function`, so `shift_labels` (targets already aligned, for sequence parallelism)
                and `num_items_in_batch` (gradient accumulation) in `kwargs` are honoured.
            logits_to_keep: if > 0, only the last that many positions get logits (generation needs 1).
        """
        outputs: BaseModelOutputWithPast = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        logits = self.lm_head(slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep))
        loss = None
        if labels is not None:
            loss = self.loss_function(
                logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs
            )
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


GigaPianoModel.register_for_auto_class("AutoModel")
GigaPianoForCausalLM.register_for_auto_class("AutoModelForCausalLM")

__all__ = ["GigaPianoForCausalLM", "GigaPianoModel", "GigaPianoPreTrainedModel", "relative_position_bias"]
