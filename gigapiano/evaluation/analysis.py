"""Turning continuations into the report's numbers: style hits, feature distances, copying, the verdicts.

Rows of every table are the models (`base` and each style) plus `real`: the real continuations of the
test-piece prompts, which show what the classifier, the distances and the copy check give for genuine music
of the three styles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .classifier import StyleClassifier
from .features import feature_table, set_distances
from .memorization import CopyIndex

REAL_ROW = "real"


def hit_rates(labels: Sequence[str], styles: Sequence[str]) -> dict[str, float]:
    """Share of `labels` equal to each style (zeros when there are no labels)."""
    total = len(labels)
    return {style: (sum(label == style for label in labels) / total if total else 0.0) for style in styles}


def hits_by_group(
    labels: Sequence[str], groups: Sequence[str], styles: Sequence[str]
) -> dict[str, dict[str, float]]:
    """`hit_rates` within each group (e.g. the prompt's style), groups in first-seen order."""
    result = {}
    for group in dict.fromkeys(groups):
        result[group] = hit_rates(
            [label for label, g in zip(labels, groups, strict=True) if g == group], styles
        )
    return result


def feature_distances(
    sequences: Sequence[Sequence[int]], references: Mapping[str, dict[str, np.ndarray]]
) -> dict[str, dict[str, float]]:
    """Distances (`set_distances`) of one row's sequences to each style's real windows.

    Args:
        sequences: The row's continuations (token ids).
        references: Style -> `feature_table` of its real test windows.

    Returns:
        Style -> `<feature>_overlap`, `<feature>_mad` and `overlap_mean`.
    """
    table = feature_table(sequences)
    return {style: set_distances(table, reference) for style, reference in references.items()}


def copy_summary(indexes: Sequence[CopyIndex], sequences: Sequence[Sequence[int]]) -> dict[str, float | str]:
    """Longest copied run of each sequence in its index, summarised.

    Args:
        indexes: The training-piece index to check each sequence against (one per sequence).
        sequences: Token ids (continuations without their prompts).

    Returns:
        `mean`, `median` and `max` run length in notes, `max_source` (the training piece of the longest run)
        and `runs` (every length, in order).
    """
    runs = [index.longest_copied_run(ids) for index, ids in zip(indexes, sequences, strict=True)]
    lengths = np.asarray([run.length for run in runs], dtype=np.float64)
    if lengths.size == 0:
        return {"mean": float("nan"), "median": float("nan"), "max": 0, "max_source": "", "runs": []}
    longest = runs[int(lengths.argmax())]
    return {
        "mean": float(lengths.mean()),
        "median": float(np.median(lengths)),
        "max": int(longest.length),
        "max_source": longest.source,
        "runs": [int(run.length) for run in runs],
    }


def classify(classifier: StyleClassifier, sequences: Sequence[Sequence[int]]) -> list[str]:
    """The classifier's style for each sequence."""
    return classifier.predict(list(sequences))


def verdicts(
    validation: Mapping[str, Mapping[str, Mapping[str, float]]],
    hits: Mapping[str, Mapping[str, float]],
    styles: Sequence[str],
    base: str = "base",
) -> dict[str, dict[str, float | bool]]:
    """The issue's two acceptance checks per style.

    Args:
        validation: Model -> style -> metrics (with `loss`).
        hits: Model -> style -> share of its continuations classified as that style.
        styles: The styles.
        base: The base model's row name.

    Returns:
        Style -> `base_loss`, `style_loss`, `loss_lower` (style model's validation loss on its own style is
        lower than the base's), `base_hits`, `style_hits`, `hits_higher` (its continuations are classified as
        its style more often than the base's), and `passed` (both).
    """
    result = {}
    for style in styles:
        base_loss, style_loss = validation[base][style]["loss"], validation[style][style]["loss"]
        base_hits, style_hits = hits[base][style], hits[style][style]
        result[style] = {
            "base_loss": base_loss,
            "style_loss": style_loss,
            "loss_lower": bool(style_loss < base_loss),
            "base_hits": base_hits,
            "style_hits": style_hits,
            "hits_higher": bool(style_hits > base_hits),
        }
        result[style]["passed"] = result[style]["loss_lower"] and result[style]["hits_higher"]
    return result


__all__ = [
    "REAL_ROW",
    "classify",
    "copy_summary",
    "feature_distances",
    "hit_rates",
    "hits_by_group",
    "verdicts",
]
