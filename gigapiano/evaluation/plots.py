"""The report's piano-roll gallery: a prompt with its real continuation and the base and style models' ones.

One PNG per style (drawn with the generation library's `save_pianoroll`): three stacked rolls with the same
prompt in blue and the continuation in orange, so the eye can compare texture, register and rhythm.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gigapiano.generation.pianoroll import RollPanel, save_pianoroll
from tokenization.gigapiano_notes import ids_to_timed_notes


def roll_panel(title: str, prompt: Sequence[int], continuation: Sequence[int], label: str) -> RollPanel:
    """One panel: the prompt's notes as given, the continuation's as generated (or real)."""
    notes = ids_to_timed_notes(list(prompt) + list(continuation))
    given = len(prompt) // 4
    return RollPanel(title, notes[:given], notes[given:], given_label="prompt", generated_label=label)


def save_gallery(
    path: str | Path, prompt: Sequence[int], rows: Sequence[tuple[str, Sequence[int], str]]
) -> Path:
    """Writes one gallery PNG.

    Args:
        path: The PNG.
        prompt: The prompt's ids.
        rows: `(title, continuation ids, legend label)` per panel.

    Returns:
        The path.
    """
    panels = [roll_panel(title, prompt, ids, label) for title, ids, label in rows]
    return save_pianoroll(panels, path)


__all__ = ["roll_panel", "save_gallery"]
