"""The evaluation's data: every style's performances (pieces="all", composition-safe MAESTRO split), the base
style's training performances, the composition groups of the catalogue, and the training lists of the models.

Each style is built with `build_style_dataset(style, pieces="all")` and its default `split_by="auto"`, i.e.
MAESTRO's own train/validation/test split corrected so that no composition spans two splits, with the
composition groups computed over the whole catalogue: so a style's validation and test performances share no
composition with its own training performances *or* with the base style's (all composers) training split,
which the base model (and through it every fine-tuned style model) was trained on. `check` verifies that and
also reads each model folder's `pieces.json`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gigapiano.data import build_style_dataset, read_maestro_csv, resolve_maestro_root
from gigapiano.data.build import catalogue_groups
from gigapiano.data.provenance import PIECES_FILENAME, load_pieces_json

from .heldout import check_held_out

logger = logging.getLogger(__name__)

Pieces = list[tuple[str, np.ndarray]]


@dataclass
class EvaluationData:
    """Style -> split -> `(midi_filename, ids)`; the base style's train pieces; composition groups."""

    styles: dict[str, dict[str, Pieces]]
    base_style: str
    base_train: Pieces
    groups: dict[str, int]

    def split(self, name: str) -> dict[str, Pieces]:
        """Style -> its pieces of split `name`."""
        return {style: splits[name] for style, splits in self.styles.items()}


def _named_pieces(dataset) -> Pieces:
    table = dataset.with_format("numpy", columns=["input_ids"])
    return [
        (name, np.asarray(ids, dtype=np.int64))
        for name, ids in zip(dataset["midi_filename"], table["input_ids"], strict=True)
    ]


def load_evaluation_data(
    styles: Sequence[str],
    base_style: str,
    maestro_dir: str | os.PathLike | None,
    cache_dir: str | os.PathLike | None = None,
    styles_dir: str | os.PathLike | None = None,
) -> EvaluationData:
    """Builds every style with `pieces="all"` and the default composition-safe split (module docstring)."""
    built: dict[str, dict[str, Pieces]] = {}
    for style in [*styles, base_style]:
        data = build_style_dataset(
            style, pieces="all", maestro_dir=maestro_dir, cache_dir=cache_dir, styles_dir=styles_dir
        )
        built[style] = {split: _named_pieces(data[split]) for split in data}
        logger.info(
            "%s: %s performances.", style, ", ".join(f"{len(v)} {k}" for k, v in built[style].items())
        )
    root = resolve_maestro_root(maestro_dir, cache_dir=cache_dir)
    groups = catalogue_groups(read_maestro_csv(root), root, cache_dir=cache_dir)
    base = built.pop(base_style)
    return EvaluationData(built, base_style, base["train"], groups)


def model_training_files(folders: Mapping[str, Path]) -> tuple[dict[str, list[str]], list[str]]:
    """`pieces.json` train lists of the model folders: `(source -> files, folders without pieces.json)`."""
    found, missing = {}, []
    for folder in folders.values():
        if (folder / PIECES_FILENAME).is_file():
            found[str(folder / PIECES_FILENAME)] = list(load_pieces_json(folder).get("train", []))
        else:
            missing.append(str(folder))
    return found, missing


def check(data: EvaluationData, folders: Mapping[str, Path], on_overlap: str = "error") -> dict:
    """The held-out check over every evaluated style's validation and test performances.

    Training sources: each style's and the base style's train split, and every model folder's `pieces.json`.
    """
    held_out = {}
    for style, splits in data.styles.items():
        for split in ("validation", "test"):
            held_out[f"{style} {split}"] = [name for name, _ in splits[split]]
    training = {
        f"{style} train split": [name for name, _ in splits["train"]] for style, splits in data.styles.items()
    }
    training[f"{data.base_style} train split"] = [name for name, _ in data.base_train]
    model_files, missing = model_training_files(folders)
    training.update(model_files)
    if missing:
        logger.warning(
            "No %s in %s: their training data cannot be checked.", PIECES_FILENAME, ", ".join(missing)
        )
    summary = check_held_out(held_out, training, data.groups, on_overlap)
    summary["models_without_pieces_json"] = missing
    return summary


__all__ = ["EvaluationData", "check", "load_evaluation_data", "model_training_files"]
