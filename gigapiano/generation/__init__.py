"""Generation with GIGA-Piano: every upstream mode, valid notes by construction, past the context.

Core (ids in, ids out; no files): `generate_continuation`, `GenerationSettings`, `GenerationResult`,
and the pieces it is built from (`NoteStructureLogitsProcessor`, `NotePlan`, `sample_notes`). File
outputs (MIDI, WAV, piano roll, provenance) live in `gigapiano.generation.outputs`, `.audio` and
`.pianoroll`; `generate.py` is `gigapiano.generation.runner.run_generation` behind an argument parser.

Example:
    ```python
    >>> from gigapiano.generation import generate_continuation, load_model_and_tokenizer
    >>> model, tokenizer = load_model_and_tokenizer("models/gigapiano-baroque")
    >>> prompt = tokenizer.encode_midi("examples/fur_elise.mid")
    >>> result = generate_continuation(model, prompt, mode="harmonize", chord_notes=2, seed=0)
    >>> tokenizer.save_midi(result.pieces[0], "harmonized.mid")
    ```
"""

from __future__ import annotations

from .. import lazy_exports

#: Public name -> submodule. Imported on first use, so `gigapiano.generation.arguments` (what
#: `generate.py --help` needs) loads without torch or transformers.
_EXPORTS = {
    "generate_continuation": "core",
    "AntiCopy": "anti_copy",
    "StyleBlend": "style_spec",
    "StyleMixture": "style_mix",
    "load_blend": "style_mix",
    "PIANO_PITCH_RANGE": "grammar",
    "SEP_ID": "grammar",
    "NoteFields": "grammar",
    "is_well_formed": "grammar",
    "split_notes": "grammar",
    "SamplingOptions": "long_context",
    "sample_notes": "long_context",
    "NotePlan": "processors",
    "NoteSpec": "processors",
    "NoteStructureLogitsProcessor": "processors",
    "load_prompt": "prompts",
    "load_model_and_tokenizer": "resolve",
    "MODES": "settings",
    "GenerationResult": "settings",
    "GenerationSettings": "settings",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "AntiCopy",
    "MODES",
    "PIANO_PITCH_RANGE",
    "SEP_ID",
    "GenerationResult",
    "GenerationSettings",
    "NoteFields",
    "NotePlan",
    "NoteSpec",
    "NoteStructureLogitsProcessor",
    "SamplingOptions",
    "StyleBlend",
    "StyleMixture",
    "generate_continuation",
    "is_well_formed",
    "load_blend",
    "load_model_and_tokenizer",
    "load_prompt",
    "sample_notes",
    "split_notes",
]
