"""A style classifier over music features: which style does a window of notes sound like?

A random forest (scikit-learn, fixed seed, balanced class weights because the styles have different amounts
of music) on the `music_features` vector of note windows. It trains on windows of the styles' TRAIN pieces, so
the test pieces (whose openings are the evaluation prompts) stay unseen. It is not committed: it retrains in
seconds, and a pickled forest is several MB, tied to one scikit-learn version and unsafe to load from an
untrusted source. Instead the fitted classifier is cached on disk under a fingerprint of everything it
depends on (training windows, feature code, settings, scikit-learn version) and reused while that holds.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import balanced_accuracy_score, confusion_matrix

from gigapiano.data import make_windows

from .features import METRIC_DIR, feature_matrix, feature_names

logger = logging.getLogger(__name__)

#: Notes per classifier window: 1024 tokens, the upstream model's context.
DEFAULT_WINDOW_NOTES = 256
_FORMAT = 1


def note_windows(pieces: Sequence[Sequence[int]], window_notes: int, stride_notes: int | None = None) -> list:
    """Cuts pieces into windows of whole notes (tails shorter than a window are dropped).

    Args:
        pieces: Token id sequences (`127, dt, dur, pitch` per note).
        window_notes: Notes per window.
        stride_notes: Notes between window starts (default `window_notes`: no overlap).

    Returns:
        The windows, as lists of ids, piece by piece.
    """
    stride = window_notes if stride_notes is None else stride_notes
    windows = []
    for ids in pieces:
        windows += [window for _, window in make_windows(list(ids), 4 * window_notes, 4 * stride)]
    return windows


@dataclass
class ClassifierScores:
    """How well the classifier recognises real windows.

    Attributes:
        window_notes: Notes per scored window.
        accuracy: Share of windows classified as their style.
        balanced_accuracy: Mean of the per-style recalls (the styles have different window counts).
        confusion: `confusion[i][j]` = windows of style i classified as style j.
        counts: Windows per style.
    """

    window_notes: int
    accuracy: float
    balanced_accuracy: float
    confusion: list[list[int]]
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class StyleClassifier:
    """A fitted style classifier.

    Attributes:
        styles: Class names, in the order of `predict_proba` columns.
        forest: The fitted scikit-learn model.
        window_notes: Window lengths (notes) it was trained on.
        feature_names: Names of the features it expects (checked when loading).
        fingerprint: Hash of its training inputs (see `classifier_fingerprint`).
    """

    styles: list[str]
    forest: RandomForestClassifier
    window_notes: list[int]
    feature_names: list[str]
    fingerprint: str = ""

    def predict(self, sequences: Sequence[Sequence[int]]) -> list[str]:
        """The most likely style of each id sequence."""
        if not sequences:
            return []
        return [self.styles[i] for i in self.forest.predict(feature_matrix(sequences))]

    def predict_proba(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """`(n, len(styles))` style probabilities of each id sequence."""
        return self.forest.predict_proba(feature_matrix(sequences))

    def score(
        self, windows_by_style: Mapping[str, Sequence[Sequence[int]]], window_notes: int
    ) -> ClassifierScores:
        """Accuracy and confusion matrix on labelled windows (e.g. the test pieces' windows).

        Args:
            windows_by_style: Style -> its windows (styles unknown to the classifier are an error).
            window_notes: Their length, recorded in the result.

        Returns:
            The scores.
        """
        unknown = sorted(set(windows_by_style) - set(self.styles))
        if unknown:
            raise ValueError(f"Styles {unknown} are not among the classifier's styles {self.styles}.")
        truth, sequences = [], []
        for style, windows in windows_by_style.items():
            truth += [self.styles.index(style)] * len(windows)
            sequences += list(windows)
        if not sequences:
            raise ValueError("No windows to score; the pieces are shorter than one window.")
        predicted = self.forest.predict(feature_matrix(sequences))
        labels = list(range(len(self.styles)))
        return ClassifierScores(
            window_notes=window_notes,
            accuracy=float(np.mean(np.asarray(truth) == predicted)),
            balanced_accuracy=float(balanced_accuracy_score(truth, predicted)),
            confusion=confusion_matrix(truth, predicted, labels=labels).tolist(),
            counts={style: len(windows) for style, windows in windows_by_style.items()},
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Writes the classifier with joblib (a pickle: load only files you made)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "format": _FORMAT,
            "sklearn_version": sklearn.__version__,
            "styles": self.styles,
            "forest": self.forest,
            "window_notes": self.window_notes,
            "feature_names": self.feature_names,
            "fingerprint": self.fingerprint,
        }
        joblib.dump(state, path, compress=3)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> StyleClassifier:
        """Reads a classifier written by `save`.

        Raises:
            FileNotFoundError: No file at `path`.
            ValueError: It was written by another scikit-learn version or for other features (retrain it).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"No style classifier at {path}; train one (drop --classifier_path).")
        state: dict[str, Any] = joblib.load(path)
        if state.get("format") != _FORMAT or state.get("sklearn_version") != sklearn.__version__:
            raise ValueError(
                f"{path} was saved by scikit-learn {state.get('sklearn_version')} (this is "
                f"{sklearn.__version__}); retrain it with --retrain_classifier."
            )
        if state["feature_names"] != feature_names():
            raise ValueError(f"{path} was fitted on other music features; retrain with --retrain_classifier.")
        keys = ("styles", "forest", "window_notes", "feature_names", "fingerprint")
        return cls(*(state[key] for key in keys))


def classifier_fingerprint(
    train_pieces: Mapping[str, Sequence[Sequence[int]]], window_notes: Sequence[int], seed: int
) -> str:
    """A hash of everything a fitted classifier depends on: the training ids, the window lengths, the seed,
    the feature code and the scikit-learn version."""
    digest = hashlib.sha256()
    digest.update(repr((_FORMAT, list(window_notes), seed, sklearn.__version__)).encode())
    digest.update((METRIC_DIR / "music_features.py").read_bytes())
    for style in sorted(train_pieces):
        digest.update(style.encode())
        for ids in train_pieces[style]:
            digest.update(np.asarray(ids, dtype=np.int16).tobytes())
            digest.update(b"|")
    return digest.hexdigest()[:16]


def train_style_classifier(
    train_pieces: Mapping[str, Sequence[Sequence[int]]],
    window_notes: Sequence[int] = (DEFAULT_WINDOW_NOTES,),
    seed: int = 0,
    n_estimators: int = 300,
) -> StyleClassifier:
    """Fits a classifier on half-overlapping windows of each style's training pieces.

    Args:
        train_pieces: Style -> token ids of its training pieces.
        window_notes: Window lengths in notes; windows of every length are pooled, so the classifier also
            judges sequences shorter than the 256-note default (such as 128-note continuations) well.
        seed: Random seed of the forest.
        n_estimators: Trees in the forest.

    Returns:
        The fitted classifier.

    Raises:
        ValueError: Fewer than two styles, or a style without a single window.
    """
    if len(train_pieces) < 2:
        raise ValueError(f"A style classifier needs at least two styles, got {list(train_pieces)}.")
    styles = list(train_pieces)
    features, labels = [], []
    for label, style in enumerate(styles):
        windows = []
        for notes in window_notes:
            windows += note_windows(train_pieces[style], notes, notes // 2 or 1)
        if not windows:
            raise ValueError(
                f"Style {style!r} has no training window of {list(window_notes)} notes; its pieces are too "
                "short."
            )
        features.append(feature_matrix(windows))
        labels += [label] * len(windows)
    forest = RandomForestClassifier(
        n_estimators=n_estimators, min_samples_leaf=2, class_weight="balanced", random_state=seed, n_jobs=1
    )
    forest.fit(np.concatenate(features), np.asarray(labels))
    logger.info("Style classifier fitted on %d windows (%s).", len(labels), ", ".join(styles))
    fingerprint = classifier_fingerprint(train_pieces, window_notes, seed)
    return StyleClassifier(styles, forest, list(window_notes), feature_names(), fingerprint)


def load_or_train_classifier(
    train_pieces: Mapping[str, Sequence[Sequence[int]]],
    window_notes: Sequence[int],
    seed: int,
    cache_dir: str | os.PathLike,
    retrain: bool = False,
) -> StyleClassifier:
    """The cached classifier for these inputs, or a freshly trained one (then cached).

    Args:
        train_pieces: Style -> token ids of its training pieces.
        window_notes: Window lengths in notes.
        seed: Forest seed.
        cache_dir: Folder of cached classifiers (one file per fingerprint).
        retrain: Ignore a cached classifier.

    Returns:
        The classifier.
    """
    fingerprint = classifier_fingerprint(train_pieces, window_notes, seed)
    path = Path(cache_dir) / f"style-classifier-{fingerprint}.joblib"
    if path.is_file() and not retrain:
        try:
            classifier = StyleClassifier.load(path)
            logger.info("Loaded the cached style classifier %s.", path)
            return classifier
        except (ValueError, OSError, EOFError) as error:
            logger.warning("Ignoring the cached classifier %s (%s); retraining.", path, error)
    classifier = train_style_classifier(train_pieces, window_notes, seed)
    classifier.save(path)
    return classifier


__all__ = [
    "DEFAULT_WINDOW_NOTES",
    "ClassifierScores",
    "StyleClassifier",
    "classifier_fingerprint",
    "load_or_train_classifier",
    "note_windows",
    "train_style_classifier",
]
