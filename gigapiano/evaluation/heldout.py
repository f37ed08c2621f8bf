"""The held-out check: no composition of an evaluation performance may be in any model's training data.

A model that saw another performance of the same composition has, in effect, seen the test piece: its loss
and its "style" would flatter it. MAESTRO holds many compositions in several performances, so comparing file
names is not enough. Every performance is mapped to its *composition group* over the whole catalogue
(`gigapiano.data.compositions`: catalogue numbers, enharmonic titles, shared pitch runs), and the check fails
when a group of a held-out (validation or test) performance also holds a training performance of any
training source: the style's and the base style's train splits built by the same code, and the `pieces.json`
(`train` list) saved in every model folder. A file unknown to the catalogue is its own group.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

logger = logging.getLogger(__name__)


class HeldOutLeakError(ValueError):
    """A held-out performance shares its composition with a training performance."""


def held_out_overlaps(
    held_out: Mapping[str, Sequence[str]],
    training: Mapping[str, Sequence[str]],
    groups: Mapping[str, int],
) -> list[dict[str, str]]:
    """Every (held-out file, training file) pair of the same composition group.

    Args:
        held_out: Label (e.g. `"baroque test"`) -> MAESTRO file names evaluated on.
        training: Source (e.g. `"models/gigapiano-base/pieces.json"`) -> file names trained on.
        groups: `midi_filename -> composition group` over the catalogue.

    Returns:
        One dict per overlap: `held_out`, `file`, `source`, `training_file`.
    """

    def group_of(name: str) -> str:
        return f"group {groups[name]}" if name in groups else f"file {name}"

    trained: dict[str, tuple[str, str]] = {}
    for source, names in training.items():
        for name in names:
            trained.setdefault(group_of(name), (source, name))
    overlaps = []
    for label, names in held_out.items():
        for name in names:
            hit = trained.get(group_of(name))
            if hit is not None:
                overlaps.append({"held_out": label, "file": name, "source": hit[0], "training_file": hit[1]})
    return overlaps


def check_held_out(
    held_out: Mapping[str, Sequence[str]],
    training: Mapping[str, Sequence[str]],
    groups: Mapping[str, int],
    on_overlap: str = "error",
) -> dict:
    """Checks that no held-out performance shares a composition with any training performance.

    Args:
        held_out: Label -> file names evaluated on.
        training: Source -> file names trained on.
        groups: `midi_filename -> composition group`.
        on_overlap: `"error"` raises; `"warn"` logs and records the overlaps (the report then says so).

    Returns:
        `passed`, `overlaps`, the number of held-out files per label and training files per source.

    Raises:
        HeldOutLeakError: An overlap with `on_overlap="error"` (one line, naming the first overlap).
    """
    overlaps = held_out_overlaps(held_out, training, groups)
    summary = {
        "passed": not overlaps,
        "overlaps": overlaps,
        "held_out_files": {label: len(names) for label, names in held_out.items()},
        "training_files": {source: len(names) for source, names in training.items()},
    }
    if overlaps:
        first = overlaps[0]
        message = (
            f"{len(overlaps)} held-out performance(s) share a composition with training data, e.g. "
            f"{first['held_out']} {first['file']} and {first['training_file']} in {first['source']}"
        )
        if on_overlap == "error":
            raise HeldOutLeakError(message + "; evaluate models trained on the composition-safe split.")
        logger.warning("%s. Recorded in the report.", message)
    else:
        logger.info(
            "Held-out check passed: %d held-out performances, no composition in %d training sources.",
            sum(summary["held_out_files"].values()),
            len(training),
        )
    return summary


__all__ = ["HeldOutLeakError", "check_held_out", "held_out_overlaps"]
