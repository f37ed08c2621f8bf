"""The report's figures: the style-hit matrix as a heatmap and the per-feature overlaps as bars."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .analysis import REAL_ROW
from .features import distance_feature_names
from .models import BASE_NAME
from .report import row_label


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def plot_hit_matrix(results: dict[str, Any], path: str | Path) -> Path:
    """Heatmap of the share of each row's continuations classified as each style.

    Args:
        results: The output of `run_evaluation`.
        path: PNG to write.

    Returns:
        The path.
    """
    plt = _pyplot()
    styles = results["styles"]
    rows = list(results["hits"])
    values = np.asarray([[results["hits"][row][s] for s in styles] for row in rows])
    figure, axes = plt.subplots(figsize=(1.3 * len(styles) + 3.2, 0.5 * len(rows) + 1.6))
    image = axes.imshow(values, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(len(styles)), styles, rotation=20, ha="right")
    axes.set_yticks(range(len(rows)), [row_label(row) for row in rows])
    axes.set_xlabel("classified as")
    for (i, j), value in np.ndenumerate(values):
        axes.text(j, i, f"{value:.2f}", ha="center", va="center", color="white" if value > 0.6 else "black")
    figure.colorbar(image, ax=axes, fraction=0.05)
    axes.set_title("Style-hit matrix")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_feature_overlaps(results: dict[str, Any], path: str | Path) -> Path:
    """Per style, the overlap of each feature with the style's real music: base vs style model vs real.

    Args:
        results: The output of `run_evaluation`.
        path: PNG to write.

    Returns:
        The path.
    """
    plt = _pyplot()
    styles = results["styles"]
    features = list(distance_feature_names())
    figure, axes = plt.subplots(len(styles), 1, figsize=(13, 2.6 * len(styles)), sharex=True, squeeze=False)
    positions = np.arange(len(features))
    for axis, style in zip(axes[:, 0], styles, strict=True):
        for offset, row in zip((-0.27, 0.0, 0.27), (BASE_NAME, style, REAL_ROW), strict=True):
            distances = results["distances"].get(row, {}).get(style, {})
            heights = [distances.get(f"{feature}_overlap", np.nan) for feature in features]
            axis.bar(positions + offset, heights, width=0.27, label=row_label(row))
        axis.set_ylim(0, 1)
        axis.set_ylabel("overlap")
        axis.set_title(f"compared with real {style} test music", fontsize=10)
        axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0))
    axes[-1, 0].set_xticks(positions, [f.replace("_", " ") for f in features], rotation=30, ha="right")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


__all__ = ["plot_feature_overlaps", "plot_hit_matrix"]
