"""The music features and set distances, imported from the repo's `evaluate` module `metrics/music_features`.

The feature code lives only in that module file (it must be self-contained for `evaluate.load`); this module
imports that file by path once, so the evaluation package and the `evaluate` metric always agree.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np

METRIC_DIR = Path(__file__).resolve().parents[2] / "metrics" / "music_features"
_MODULE_NAME = "gigapiano_music_features"


@functools.cache
def music_features() -> ModuleType:
    """The `metrics/music_features/music_features.py` module (imported once, by path).

    Returns:
        The module: `feature_table`, `set_distances`, `feature_vector`, `FEATURE_NAMES`, ...

    Raises:
        FileNotFoundError: The repository's `metrics/` folder is missing (an install without the source tree).
    """
    path = METRIC_DIR / "music_features.py"
    if not path.is_file():
        raise FileNotFoundError(
            f"The music_features metric is missing: {path} does not exist; run from a source checkout."
        )
    spec = importlib.util.spec_from_file_location(_MODULE_NAME, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE_NAME] = module
    spec.loader.exec_module(module)
    return module


def feature_matrix(sequences: Sequence[Sequence[int]]) -> np.ndarray:
    """Feature vectors of id sequences, one row each (the classifier's input).

    Args:
        sequences: Token id sequences (pieces, windows or continuations).

    Returns:
        A `(len(sequences), n_features)` float64 array; columns are named by `feature_names()`.
    """
    module = music_features()
    rows = [module.feature_vector(module.ids_features(ids)) for ids in sequences]
    return np.stack(rows) if rows else np.zeros((0, len(module.feature_vector_names())))


def feature_names() -> list[str]:
    """Column names of `feature_matrix`."""
    return music_features().feature_vector_names()


def feature_table(sequences: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
    """Per-feature arrays of id sequences (the input of `set_distances`)."""
    return music_features().feature_table(sequences)


def set_distances(predictions: dict[str, np.ndarray], references: dict[str, np.ndarray]) -> dict[str, float]:
    """MGEval-style overlap and mean absolute difference per feature between two `feature_table`s."""
    return music_features().set_distances(predictions, references)


def distance_feature_names() -> tuple[str, ...]:
    """The features `set_distances` reports, in order."""
    return tuple(music_features().FEATURE_NAMES)
