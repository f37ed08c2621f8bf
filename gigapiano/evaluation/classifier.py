"""The style classifier: which of the styles does a window of notes sound like, whatever its key and tempo?

A random forest (scikit-learn, balanced class weights since the styles have different amounts of music) on
the key-normalised, tempo-relative `style_features` of note windows. It is fitted on windows of the styles'
TRAIN performances only, so the test performances (the prompts and their real continuations)
are unseen, and it is refitted on every run (seconds), so nothing is cached and nothing is ever unpickled.

`score_classifier` also measures what the features promise: the share of held-out windows whose label changes
when the window is transposed by a semitone or played at 0.67x / 1.5x the tempo (every dt and duration scaled
and rounded to the token grid). A classifier that read key or tempo would change its mind there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from gigapiano.data import make_windows

from .bootstrap import DEFAULT_RESAMPLES, piece_bootstrap
from .invariant_features import STYLE_FEATURE_NAMES, scale_tempo, style_feature_matrix, transpose

logger = logging.getLogger(__name__)

#: The label-change checks: name -> transformation of a window.
PERTURBATIONS: dict[str, Callable[[Sequence[int]], list[int]]] = {
    "transpose +1": lambda ids: transpose(ids, 1),
    "transpose -1": lambda ids: transpose(ids, -1),
    "tempo x0.67": lambda ids: scale_tempo(ids, 0.67),
    "tempo x1.5": lambda ids: scale_tempo(ids, 1.5),
}


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
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)  # Python ints: small, and JSON-able
        windows += [window for _, window in make_windows(ids, 4 * window_notes, 4 * stride)]
    return windows


def evenly(items: list, limit: int | None) -> list:
    """At most `limit` items, spread evenly over the list (all of them when `limit` is None)."""
    if limit is None or len(items) <= limit:
        return list(items)
    picks = np.linspace(0, len(items) - 1, limit).round().astype(int)
    return [items[i] for i in picks]


@dataclass
class LabelledWindows:
    """Windows with their style and the piece they come from (for the bootstrap over pieces)."""

    windows: list[list[int]]
    styles: list[str]
    pieces: list[str]

    @classmethod
    def from_pieces(
        cls,
        pieces: Mapping[str, Sequence[tuple[str, Sequence[int]]]],
        window_notes: int,
        stride_notes: int | None = None,
        max_per_style: int | None = None,
    ) -> LabelledWindows:
        """Windows of every style's `(name, ids)` pieces, at most `max_per_style` per style, evenly spread."""
        result = cls([], [], [])
        for style, named in pieces.items():
            entries = [
                (name, window)
                for name, ids in named
                for window in note_windows([ids], window_notes, stride_notes)
            ]
            for name, window in evenly(entries, max_per_style):
                result.windows.append(window)
                result.styles.append(style)
                result.pieces.append(name)
        return result


@dataclass
class StyleClassifier:
    """A fitted style classifier.

    Attributes:
        styles: Class names, in the order of `predict_proba` columns.
        forest: The fitted scikit-learn model.
        window_notes: Length (notes) of its training windows.
    """

    styles: list[str]
    forest: RandomForestClassifier
    window_notes: int

    def predict(self, sequences: Sequence[Sequence[int]]) -> list[str]:
        """The most likely style of each id sequence."""
        if not sequences:
            return []
        return [self.styles[i] for i in self.forest.predict(style_feature_matrix(sequences))]

    def predict_proba(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """`(n, len(styles))` style probabilities of each id sequence."""
        return self.forest.predict_proba(style_feature_matrix(sequences))


def train_style_classifier(train: LabelledWindows, seed: int = 0, n_estimators: int = 200) -> StyleClassifier:
    """Fits the forest on labelled training windows.

    Raises:
        ValueError: Fewer than two styles have a window.
    """
    styles = list(dict.fromkeys(train.styles))
    if len(styles) < 2:
        raise ValueError(f"A style classifier needs windows of at least two styles, got {styles}.")
    features = style_feature_matrix(train.windows)
    labels = np.asarray([styles.index(style) for style in train.styles])
    forest = RandomForestClassifier(
        n_estimators=n_estimators, min_samples_leaf=2, class_weight="balanced", random_state=seed, n_jobs=1
    )
    forest.fit(features, labels)
    logger.info(
        "Style classifier fitted on %d windows (%s) with %d features.",
        len(labels),
        ", ".join(f"{train.styles.count(s)} {s}" for s in styles),
        len(STYLE_FEATURE_NAMES),
    )
    window_notes = len(train.windows[0]) // 4 if train.windows else 0
    return StyleClassifier(styles, forest, window_notes)


def score_classifier(
    classifier: StyleClassifier,
    test: LabelledWindows,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> dict:
    """Accuracy on held-out windows (with piece-bootstrap intervals) and its robustness.

    Returns:
        `windows`, `accuracy`, `balanced_accuracy` (mean per-style recall), `recall` per style (each an
        estimate dict), `confusion` (`[true][predicted]` counts), `counts` per style and `perturbations`:
        per transformation the accuracy and the label change rate (share of windows whose label changes).
    """
    if not test.windows:
        raise ValueError("No held-out windows to score the classifier on.")
    predicted = classifier.predict(test.windows)
    hits = [float(p == s) for p, s in zip(predicted, test.styles, strict=True)]
    recall = {}
    for style in classifier.styles:
        chosen = [i for i, s in enumerate(test.styles) if s == style]
        recall[style] = piece_bootstrap(
            [test.pieces[i] for i in chosen], [hits[i] for i in chosen], resamples=resamples, seed=seed
        ).to_dict()
    # balanced accuracy: weight each window by 1 / (windows of its style), so every style counts equally
    weights = [1.0 / test.styles.count(s) / len(set(test.styles)) for s in test.styles]
    balanced = piece_bootstrap(
        test.pieces,
        [h * w for h, w in zip(hits, weights, strict=True)],
        weights,
        resamples=resamples,
        seed=seed,
    )
    index = {style: i for i, style in enumerate(classifier.styles)}
    confusion = np.zeros((len(index), len(index)), dtype=int)
    for truth, guess in zip(test.styles, predicted, strict=True):
        confusion[index[truth], index[guess]] += 1
    perturbations = {}
    for name, transform in PERTURBATIONS.items():
        changed = classifier.predict([transform(ids) for ids in test.windows])
        perturbations[name] = {
            "accuracy": float(np.mean([c == s for c, s in zip(changed, test.styles, strict=True)])),
            "label_change_rate": piece_bootstrap(
                test.pieces,
                [float(c != p) for c, p in zip(changed, predicted, strict=True)],
                resamples=resamples,
                seed=seed,
            ).to_dict(),
        }
    return {
        "window_notes": len(test.windows[0]) // 4,
        "windows": len(test.windows),
        "pieces": len(set(test.pieces)),
        "accuracy": piece_bootstrap(test.pieces, hits, resamples=resamples, seed=seed).to_dict(),
        "balanced_accuracy": balanced.to_dict(),
        "recall": recall,
        "confusion": confusion.tolist(),
        "counts": {style: test.styles.count(style) for style in classifier.styles},
        "perturbations": perturbations,
    }


__all__ = [
    "PERTURBATIONS",
    "LabelledWindows",
    "StyleClassifier",
    "evenly",
    "note_windows",
    "score_classifier",
    "train_style_classifier",
]
