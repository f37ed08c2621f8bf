"""Style as a dial: blend the next-token distributions of the base model and the style models.

A style model is the base fine-tuned on one composer set. Writing `log p_s` for a model's next-token
log-probabilities, a blend samples from

    log p = w_base * log p_base + sum_s w_s * log p_s        (renormalised by the softmax)

with `w_s = strength * weight_s` and `w_base = 1 - sum_s w_s`. Strength 0 is the base model, strength 1
with one style is that style model (both are run as the plain model, so they reproduce it token for
token), values in between interpolate and values above 1 push past the style model, away from the base
(like classifier-free guidance). Several styles (`baroque:0.5,romantic:0.5`) blend the same way.

`StyleMixture` runs every member model once per step on its own part of one shared key/value cache, so a
blend costs one cached forward per member per token and works with every generation mode.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.cache_utils import Cache, DynamicCache
from transformers.modeling_outputs import CausalLMOutputWithPast

from .style_spec import StyleBlend

#: The base model's name in a blend (its folder is `gigapiano-base`).
BASE_STYLE = "base"


@dataclass(frozen=True)
class BlendMember:
    """One model of a blend: its name (style or `base`), where it loads from, and its weight."""

    name: str
    source: str | Path
    weight: float


class StyleMixture(PreTrainedModel, GenerationMixin):
    """Causal LM whose next-token scores are a weighted sum of its members' log-probabilities.

    The members must share the vocabulary and the context length (styles fine-tuned from one base do).
    The cache given to `forward` holds every member's layers one after the other
    (`config.num_hidden_layers` is their total), so `generate()` and the project's sampler treat the blend
    like one model.

    Args:
        models: the member causal LMs (eval mode, same device).
        weights: one weight per member; any real numbers (negative for extrapolation), summing to 1.
        names: one name per member, recorded with the output (`weights_by_name`).
    """

    main_input_name = "input_ids"
    # attention runs inside the members, with their own implementation
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    def __init__(self, models: Sequence[PreTrainedModel], weights: Sequence[float], names: Sequence[str]):
        if not models or len(models) != len(weights) or len(models) != len(names):
            raise ValueError("A style blend needs one weight and one name per model.")
        first = models[0].config
        for model in models[1:]:
            if model.config.vocab_size != first.vocab_size:
                raise ValueError("Models with different vocabularies cannot be blended.")
            if model.config.max_position_embeddings != first.max_position_embeddings:
                raise ValueError(
                    "Models with different context lengths cannot be blended "
                    f"({model.config.max_position_embeddings} vs {first.max_position_embeddings})."
                )
        config = copy.deepcopy(first)
        self._layer_counts = [int(model.config.num_hidden_layers) for model in models]
        config.num_hidden_layers = sum(self._layer_counts)
        super().__init__(config)
        self.members = nn.ModuleList(models)
        self.weights = [float(weight) for weight in weights]
        self.names = list(names)
        self.generation_config = copy.deepcopy(models[0].generation_config)
        self.eval()

    @property
    def weights_by_name(self) -> dict[str, float]:
        return dict(zip(self.names, self.weights, strict=True))

    def get_input_embeddings(self) -> nn.Module:
        return self.members[0].get_input_embeddings()

    def _member_caches(self, cache: Cache | None) -> list[Cache | None]:
        """Each member's layers of the shared cache, as a `Cache` over the same layer objects."""
        if cache is None:
            return [None] * len(self.members)
        total = self.config.num_hidden_layers
        if len(cache.layers) < total:
            if cache.layer_class_to_replicate is None:
                raise ValueError(f"A style blend needs a cache with {total} layers, got {len(cache.layers)}.")
            cache.layers += [cache.layer_class_to_replicate() for _ in range(total - len(cache.layers))]
        parts, start = [], 0
        for count in self._layer_counts:
            parts.append(Cache(layers=cache.layers[start : start + count]))
            start += count
        return parts

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        """The weighted sum of the members' log-softmax scores (float32) for the last `logits_to_keep`
        positions (all when 0)."""
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        mixed = None
        for model, weight, part in zip(self.members, self.weights, self._member_caches(cache), strict=True):
            output = model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                cache=part,
                use_cache=use_cache,
                logits_to_keep=logits_to_keep,
            )
            scores = torch.log_softmax(output.logits.float(), dim=-1) * weight
            mixed = scores if mixed is None else mixed + scores
        return CausalLMOutputWithPast(logits=mixed, cache=cache)


def blend_members(blend: StyleBlend, models_dir: str | Path | None = None) -> list[BlendMember]:
    """The models a blend needs, with their weights (members of weight 0 are left out).

    Raises:
        ValueError / FileNotFoundError: an unknown or unshipped style (see `resolve_styles`).
    """
    from .resolve import resolve_styles, style_model_dir

    members = []
    for name, weight in blend.members():
        if name == BASE_STYLE:
            folder = style_model_dir(BASE_STYLE, models_dir)
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"The style blend {blend.describe()} needs the base model, and {folder} does not exist."
                )
        else:
            ((_, folder),) = resolve_styles(name, models_dir)
        members.append(BlendMember(name, folder, weight))
    return members


def load_blend(
    blend: StyleBlend,
    models_dir: str | Path | None = None,
    device: str | torch.device = "auto",
    dtype: torch.dtype | None = None,
) -> PreTrainedModel:
    """The model that samples `blend`: the plain model when one member carries all the weight (strength 0
    = the base model, strength 1 of one style = that style model, exactly), else a `StyleMixture`.

    Example:
        ```python
        >>> from gigapiano.generation import StyleBlend, load_blend
        >>> model = load_blend(StyleBlend.parse("baroque:0.5,romantic:0.5"))
        >>> model = load_blend(StyleBlend.parse("baroque", strength=1.5))  # past the style model
        ```
    """
    from .resolve import load_model

    members = blend_members(blend, models_dir)
    models = [load_model(member.source, device=device, dtype=dtype) for member in members]
    if len(models) == 1 and math.isclose(members[0].weight, 1.0):
        return models[0]
    return StyleMixture(models, [m.weight for m in members], [m.name for m in members])


__all__ = ["BASE_STYLE", "BlendMember", "StyleMixture", "blend_members", "load_blend"]
