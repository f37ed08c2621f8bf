"""Piano-roll PNG: given notes (prompt, forced melody) and generated notes in two colours.

Drawn with matplotlib's object API on an Agg canvas, so no GUI backend and no global pyplot state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

GIVEN_COLOUR = "#4C72B0"  # blue
GENERATED_COLOUR = "#DD8452"  # orange
REFERENCE_COLOUR = "#888888"


class _TimedNote(Protocol):
    onset_ms: int
    offset_ms: int
    pitch: int


@dataclass
class RollPanel:
    """One row of the figure.

    Attributes:
        title: shown above the panel.
        given: notes taken from the prompt (or forced), drawn in blue.
        generated: notes the model chose, drawn in orange.
        reference: optional notes drawn as grey outlines behind (the source of an inpainting).
        given_label / generated_label: legend entries.
    """

    title: str
    given: Sequence[_TimedNote]
    generated: Sequence[_TimedNote]
    reference: Sequence[_TimedNote] = field(default_factory=list)
    given_label: str = "prompt"
    generated_label: str = "generated"


def _draw(ax, notes: Sequence[_TimedNote], **style) -> None:
    if notes:
        ax.barh(
            [n.pitch for n in notes],
            [(n.offset_ms - n.onset_ms) / 1000 for n in notes],
            left=[n.onset_ms / 1000 for n in notes],
            height=0.8,
            align="center",
            **style,
        )


def save_pianoroll(panels: Sequence[RollPanel], path: str | Path, dpi: int = 110) -> Path:
    """Write one PNG with a piano roll per panel (stacked, shared time axis).

    Returns:
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 2.6 + 2.4 * len(panels)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, panel in zip(axes, panels, strict=True):
        everything = [*panel.given, *panel.generated, *panel.reference]
        _draw(
            ax, panel.reference, facecolor="none", edgecolor=REFERENCE_COLOUR, linewidth=0.8, label="source"
        )
        _draw(ax, panel.given, color=GIVEN_COLOUR, label=panel.given_label)
        _draw(ax, panel.generated, color=GENERATED_COLOUR, label=panel.generated_label)
        if everything:
            low = min(n.pitch for n in everything)
            high = max(n.pitch for n in everything)
            ax.set_ylim(low - 2, high + 2)
        ax.set_title(panel.title, fontsize=10, loc="left")
        ax.set_ylabel("MIDI pitch")
        ax.grid(axis="x", alpha=0.3)
        if everything:
            ax.legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("time (s)")
    path = Path(path)
    figure.savefig(path, dpi=dpi)
    return path


__all__ = ["GENERATED_COLOUR", "GIVEN_COLOUR", "RollPanel", "save_pianoroll"]
