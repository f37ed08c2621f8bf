"""GIGA-Piano model for transformers: config, causal LM and the upstream checkpoint converter.

Importing this package also registers the model with the `Auto*` classes, so an installed project
loads saved folders with `AutoModelForCausalLM.from_pretrained(path)`; folders saved by it also carry
the code for `trust_remote_code=True` on machines without the project.
"""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .configuration_gigapiano import (
    FAST_GENERATION_DEFAULTS,
    PRESETS,
    GigaPianoConfig,
    apply_fast_generation_defaults,
)
from .modeling_gigapiano import GigaPianoForCausalLM, GigaPianoModel, GigaPianoPreTrainedModel

AutoConfig.register(GigaPianoConfig.model_type, GigaPianoConfig, exist_ok=True)
AutoModel.register(GigaPianoConfig, GigaPianoModel, exist_ok=True)
AutoModelForCausalLM.register(GigaPianoConfig, GigaPianoForCausalLM, exist_ok=True)

__all__ = [
    "FAST_GENERATION_DEFAULTS",
    "PRESETS",
    "GigaPianoConfig",
    "GigaPianoForCausalLM",
    "GigaPianoModel",
    "GigaPianoPreTrainedModel",
    "apply_fast_generation_defaults",
]
