"""The evaluation prompts: excerpts of each style's TEST pieces, plus extra prompt files such as Für Elise.

Each style's test split holds only five or six performances, so several excerpts are taken from each: excerpt
`k` of `n` starts at note `k * (N - span) // n` of a piece of `N` notes, where `span` is the prompt plus the
real continuation that follows it (`k = 0` is the opening). The excerpts thus spread evenly over the piece and
never overlap when the piece is long enough. The real notes after each excerpt are kept as that prompt's
"real continuation", a reference for the generated ones.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

#: Where the Für Elise example is looked for, in order (relative to the repository root).
FUR_ELISE_CANDIDATES: tuple[str, ...] = ("examples/fur_elise.mid", "../shared/prompts/fur_elise.mid")
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class EvaluationPrompt:
    """One prompt of the evaluation.

    Attributes:
        name: Where it comes from, e.g. `"baroque: 2004/....midi @ note 0"`.
        style: The style of the piece it was cut from, or None for an extra prompt file.
        ids: The prompt's token ids (starts on a separator; the first note's dt is 0).
        real_continuation: The notes that follow it in the real piece (None for extra prompts).
    """

    name: str
    style: str | None
    ids: list[int]
    real_continuation: list[int] | None = None


def excerpt_starts(num_notes: int, span: int, per_piece: int) -> list[int]:
    """Note indices where the excerpts of one piece start (see the module docstring).

    Args:
        num_notes: Notes in the piece.
        span: Notes each excerpt needs (prompt plus real continuation).
        per_piece: Excerpts wanted.

    Returns:
        Distinct start indices, ascending; only `[0]` when the piece is shorter than `span`.
    """
    room = num_notes - span
    if room <= 0 or per_piece <= 1:
        return [0]
    return sorted({k * room // (per_piece - 1) for k in range(per_piece)})


def excerpt(ids: Sequence[int], start_note: int, num_notes: int) -> list[int]:
    """`num_notes` notes of `ids` from note `start_note` on, with the first note's dt set to 0."""
    notes = list(ids[4 * start_note : 4 * (start_note + num_notes)])
    if notes:
        notes[1] = 0
    return notes


def prompts_from_test_pieces(
    test_pieces: Mapping[str, Sequence[tuple[str, Sequence[int]]]],
    prompt_notes: int,
    continuation_notes: int,
    per_piece: int,
) -> list[EvaluationPrompt]:
    """Excerpts of the test pieces of every style, with the real continuation of each.

    Args:
        test_pieces: Style -> `(midi_filename, ids)` of its test pieces.
        prompt_notes: Notes per prompt.
        continuation_notes: Notes of real continuation kept after each prompt.
        per_piece: Excerpts per piece.

    Returns:
        The prompts, style by style, piece by piece. Pieces shorter than one prompt are skipped.
    """
    prompts = []
    for style, pieces in test_pieces.items():
        for name, ids in pieces:
            num_notes = len(ids) // 4
            if num_notes <= prompt_notes:
                logger.warning("Skipping %s: %d notes, no more than one prompt.", name, num_notes)
                continue
            for start in excerpt_starts(num_notes, prompt_notes + continuation_notes, per_piece):
                after = start + prompt_notes
                prompts.append(
                    EvaluationPrompt(
                        name=f"{style}: {name} @ note {start}",
                        style=style,
                        ids=excerpt(ids, start, prompt_notes),
                        real_continuation=list(ids[4 * after : 4 * (after + continuation_notes)]),
                    )
                )
    return prompts


def default_extra_prompts() -> list[Path]:
    """The Für Elise example: the first existing file of `FUR_ELISE_CANDIDATES` (none when absent)."""
    for candidate in FUR_ELISE_CANDIDATES:
        path = (REPO_ROOT / candidate).resolve()
        if path.is_file():
            return [path]
    logger.warning("No Für Elise prompt found (looked for %s).", ", ".join(FUR_ELISE_CANDIDATES))
    return []


def file_prompts(paths: Sequence[str | os.PathLike], tokenizer, prompt_notes: int) -> list[EvaluationPrompt]:
    """Prompts from MIDI files: the first `prompt_notes` notes of each.

    Args:
        paths: MIDI files.
        tokenizer: A `GigaPianoTokenizer` (its `encode_midi`).
        prompt_notes: Notes per prompt.

    Returns:
        One prompt per file, style None.

    Raises:
        FileNotFoundError: A path that is not a file.
        ValueError: A file without notes.
    """
    prompts = []
    for path in map(Path, paths):
        if not path.is_file():
            raise FileNotFoundError(f"Prompt file {path} does not exist.")
        ids = tokenizer.encode_midi(str(path))
        if not ids:
            raise ValueError(f"Prompt file {path} holds no notes.")
        prompts.append(EvaluationPrompt(f"file: {path.name}", style=None, ids=excerpt(ids, 0, prompt_notes)))
    return prompts


__all__ = [
    "EvaluationPrompt",
    "default_extra_prompts",
    "excerpt",
    "excerpt_starts",
    "file_prompts",
    "prompts_from_test_pieces",
]
