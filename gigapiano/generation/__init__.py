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

from .core import generate_continuation
from .grammar import PIANO_PITCH_RANGE, SEP_ID, NoteFields, is_well_formed, split_notes
from .long_context import SamplingOptions, sample_notes
from .processors import NotePlan, NoteSpec, NoteStructureLogitsProcessor
from .prompts import load_prompt
from .resolve import load_model_and_tokenizer
from .settings import MODES, GenerationResult, GenerationSettings

__all__ = [
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
    "generate_continuation",
    "is_well_formed",
    "load_model_and_tokenizer",
    "load_prompt",
    "sample_notes",
    "split_notes",
]
