"""The evaluation prompts: excerpts of each style's TEST performances, each with its real continuation.

Excerpt `k` of `n` of a performance of `N` notes starts at note `k * (N - span) // (n - 1)`, where `span` is
the prompt plus the real continuation that follows it (`k = 0` is the opening), so the excerpts spread evenly
over the performance and do not overlap when it is long enough. The real notes after each excerpt are kept
as that prompt's real continuation: the reference for the generated ones and the classifier's "real" row.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass
class EvaluationPrompt:
    """One prompt of the evaluation.

    Attributes:
        name: Where it comes from, e.g. `"baroque: 2004/....midi @ note 0"`.
        style: The style of the performance it was cut from.
        piece: That performance's MAESTRO `midi_filename` (the unit of the bootstrap).
        ids: The prompt's token ids (starts on a separator; the first note's dt is 0).
        real_continuation: The notes that follow it in the performance.
    """

    name: str
    style: str
    piece: str
    ids: list[int]
    real_continuation: list[int]


def excerpt_starts(num_notes: int, span: int, per_piece: int) -> list[int]:
    """Note indices where the excerpts of one performance start (see the module docstring).

    Returns:
        Distinct start indices, ascending; only `[0]` when the performance is shorter than `span`.
    """
    room = num_notes - span
    if room <= 0 or per_piece <= 1:
        return [0]
    return sorted({k * room // (per_piece - 1) for k in range(per_piece)})


def excerpt(ids: Sequence[int], start_note: int, num_notes: int) -> list[int]:
    """`num_notes` notes of `ids` from note `start_note` on, with the first note's dt set to 0."""
    notes = [int(token) for token in ids[4 * start_note : 4 * (start_note + num_notes)]]
    if notes:
        notes[1] = 0
    return notes


def prompts_from_test_pieces(
    test_pieces: Mapping[str, Sequence[tuple[str, Sequence[int]]]],
    prompt_notes: int,
    continuation_notes: int,
    per_piece: int,
) -> list[EvaluationPrompt]:
    """Excerpts of the test performances of every style, with the real continuation of each.

    Args:
        test_pieces: Style -> `(midi_filename, ids)` of its test performances.
        prompt_notes: Notes per prompt.
        continuation_notes: Notes of real continuation kept after each prompt.
        per_piece: Excerpts per performance.

    Returns:
        The prompts, style by style, performance by performance. Performances too short for one prompt
        plus its whole real continuation are skipped (every prompt is aligned for batched generation and has
        a real continuation of full length).
    """
    prompts = []
    for style, pieces in test_pieces.items():
        for name, ids in pieces:
            num_notes = len(ids) // 4
            if num_notes < prompt_notes + continuation_notes:
                logger.warning(
                    "Skipping %s: %d notes, fewer than a prompt and its continuation.", name, num_notes
                )
                continue
            for start in excerpt_starts(num_notes, prompt_notes + continuation_notes, per_piece):
                after = start + prompt_notes
                prompts.append(
                    EvaluationPrompt(
                        name=f"{style}: {name} @ note {start}",
                        style=style,
                        piece=name,
                        ids=excerpt(ids, start, prompt_notes),
                        real_continuation=[int(t) for t in ids[4 * after : 4 * (after + continuation_notes)]],
                    )
                )
    return prompts


__all__ = ["EvaluationPrompt", "excerpt", "excerpt_starts", "prompts_from_test_pieces"]
