# Copyright 2026 The GIGA-Piano for Transformers authors. Licensed under the Apache License, Version 2.0.
"""Configuration of GIGA-Piano, a GPT-style decoder with relative-position self-attention.

The defaults equal the released upstream "small" checkpoint (16 x 1024). Named presets cover the
upstream "large" checkpoint, a compact model that trains on a laptop CPU and a tiny one for tests.
"""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

# Named model sizes. "small" and "large" are the two released upstream checkpoints; "compact" is the
# shippable model trained by this project on CPU (3.5M parameters, 7 MB in fp16, 512-token context = 128
# notes); "medium" is the shipped model trained on all of MAESTRO (7.2M parameters, 14 MB in fp16, upstream's
# 1024-token context = 256 notes; sized from the CPU throughput in bench/bench_train.py); "tiny" exists for
# fast tests.
PRESETS: dict[str, dict[str, Any]] = {
    "small": dict(hidden_size=1024, intermediate_size=1024, num_attention_heads=16, num_hidden_layers=16),
    "large": dict(hidden_size=1024, intermediate_size=1024, num_attention_heads=16, num_hidden_layers=24),
    "compact": dict(
        hidden_size=256,
        intermediate_size=1024,
        num_attention_heads=4,
        num_hidden_layers=4,
        max_position_embeddings=512,
        relative_attention_length=512,
    ),
    "medium": dict(
        hidden_size=256,
        intermediate_size=1024,
        num_attention_heads=4,
        num_hidden_layers=8,
        max_position_embeddings=1024,
        relative_attention_length=1024,
    ),
    "tiny": dict(
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=64,
        relative_attention_length=64,
    ),
}


class GigaPianoConfig(PretrainedConfig):
    r"""Configuration for [`GigaPianoForCausalLM`].

    Args:
        vocab_size (`int`, defaults to 128):
            Number of token ids. Ids 0..126 are the values of the note fields (delta time, duration, pitch)
            and 127 is the note separator.
        max_position_embeddings (`int`, defaults to 1024):
            Context length in tokens (256 notes). Also the length of the learned absolute position table.
        hidden_size (`int`, defaults to 1024):
            Width of the residual stream.
        intermediate_size (`int`, defaults to 1024):
            Width of the feed-forward layer (upstream uses the model width, not 4x).
        num_attention_heads (`int`, defaults to 16):
            Attention heads per layer; `hidden_size` must be divisible by it.
        num_hidden_layers (`int`, defaults to 16):
            Number of transformer blocks (16 for upstream "small", 24 for "large").
        relative_attention_length (`int`, defaults to 1024):
            Rows of each layer's relative-position table `Er` (one table shared by all heads of a
            layer). Must cover the context: a query can look back at most `max_position_embeddings - 1`.
        embd_pdrop (`float`, defaults to 0.1): dropout after token + position embedding.
        resid_pdrop (`float`, defaults to 0.1): dropout on the attention and MLP outputs.
        attn_pdrop (`float`, defaults to 0.1): dropout on the attention probabilities.
        layer_norm_eps (`float`, defaults to 1e-5): epsilon of every LayerNorm.
        initializer_range (`float`, defaults to 0.02): std of the normal init of weights.
        use_cache (`bool`, defaults to True): return key/value caches for fast decoding.
        bos_token_id (`int`, defaults to 127): the note separator, which starts an improvisation.
        pad_token_id (`int`, *optional*, defaults to None): no id is reserved for padding. Left-padded
            batches pass an explicit `attention_mask`; leaving this unset keeps `generate()` from taking
            every separator for padding and masking it.
    """

    model_type = "gigapiano"
    keys_to_ignore_at_inference = ["cache"]
    # Upstream and GPT-2 style names resolve to the transformers names.
    attribute_map = {
        "n_layer": "num_hidden_layers",
        "n_head": "num_attention_heads",
        "n_embd": "hidden_size",
        "n_positions": "max_position_embeddings",
        "er_len": "relative_attention_length",
    }

    def __init__(
        self,
        vocab_size: int = 128,
        max_position_embeddings: int = 1024,
        hidden_size: int = 1024,
        intermediate_size: int = 1024,
        num_attention_heads: int = 16,
        num_hidden_layers: int = 16,
        relative_attention_length: int = 1024,
        embd_pdrop: float = 0.1,
        resid_pdrop: float = 0.1,
        attn_pdrop: float = 0.1,
        layer_norm_eps: float = 1e-5,
        initializer_range: float = 0.02,
        use_cache: bool = True,
        pad_token_id: int | None = None,
        bos_token_id: int | None = 127,
        eos_token_id: int | None = None,
        tie_word_embeddings: bool = False,
        **kwargs: Any,
    ) -> None:
        self.vocab_size = vocab_size
        self.max_position_embeddings = max_position_embeddings
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_attention_heads = num_attention_heads
        self.num_hidden_layers = num_hidden_layers
        self.relative_attention_length = relative_attention_length
        self.embd_pdrop = embd_pdrop
        self.resid_pdrop = resid_pdrop
        self.attn_pdrop = attn_pdrop
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.use_cache = use_cache
        self._validate_sizes()
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )

    def _validate_sizes(self) -> None:
        """Reject size combinations the attention cannot run with, naming the offending values."""
        for name in (
            "vocab_size",
            "max_position_embeddings",
            "hidden_size",
            "intermediate_size",
            "num_attention_heads",
            "num_hidden_layers",
            "relative_attention_length",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"GigaPianoConfig.{name} must be a positive integer, got {value!r}.")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})."
            )
        if self.relative_attention_length < self.max_position_embeddings:
            raise ValueError(
                f"relative_attention_length ({self.relative_attention_length}) must be >= "
                f"max_position_embeddings ({self.max_position_embeddings}) so every distance in the "
                "context has a relative embedding."
            )
        for name in ("embd_pdrop", "resid_pdrop", "attn_pdrop"):
            value = getattr(self, name)
            if not 0.0 <= float(value) < 1.0:
                raise ValueError(f"GigaPianoConfig.{name} must be in [0, 1), got {value!r}.")

    @property
    def head_dim(self) -> int:
        """Width of one attention head (also the width of `Er`)."""
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> GigaPianoConfig:
        """Build a config from a named size (`small`, `large`, `medium`, `compact`, `tiny`) plus overrides.

        Args:
            name: one of `PRESETS`.
            overrides: any config field, e.g. `embd_pdrop=0.0`.
        """
        if name not in PRESETS:
            raise ValueError(f"Unknown GIGA-Piano preset {name!r}; choose one of {sorted(PRESETS)}.")
        return cls(**{**PRESETS[name], **overrides})


GigaPianoConfig.register_for_auto_class()

# Generation defaults saved in `generation_config.json` next to every converted, trained or exported model.
# A static cache (allocated once per `generate()` call, written in place) is the fastest correct path
# measured on the CPU, in fp32 and bf16 (bench/bench_generate.py, docs/benchmarks.md); on a GPU,
# transformers compiles the decoding steps on a static cache by itself.
FAST_GENERATION_DEFAULTS = {"cache_implementation": "static"}


def apply_fast_generation_defaults(generation_config: Any) -> None:
    """Write `FAST_GENERATION_DEFAULTS` into a model's `GenerationConfig` (before `save_pretrained`)."""
    for name, value in FAST_GENERATION_DEFAULTS.items():
        setattr(generation_config, name, value)


__all__ = ["FAST_GENERATION_DEFAULTS", "GigaPianoConfig", "PRESETS", "apply_fast_generation_defaults"]
