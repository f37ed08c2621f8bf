"""Validation loss, accuracy and perplexity of a model on held-out pieces, with the training code's metrics.

The pieces are cut into non-overlapping windows of the model's context length (the tail shorter than a
window is dropped, as in training). Each batch's logits are reduced to argmax and cross-entropy per target by
`gigapiano.training.metrics.reduce_logits`, and the numbers come from the `metrics/gigapiano_lm` evaluate
module, so they mean exactly what the training run's `eval_*` numbers mean.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

import evaluate
import numpy as np
import torch
from tqdm.auto import tqdm

from gigapiano.training.metrics import METRIC_PATH, note_fields, reduce_logits

from .classifier import note_windows

logger = logging.getLogger(__name__)


@functools.cache
def _lm_metric() -> evaluate.EvaluationModule:
    return evaluate.load(str(METRIC_PATH))


def evenly_spaced(items: list, limit: int | None) -> list:
    """At most `limit` items, spread evenly over the list (all of them when `limit` is None)."""
    if limit is None or len(items) <= limit:
        return items
    picks = np.linspace(0, len(items) - 1, limit).round().astype(int)
    return [items[i] for i in picks]


@torch.no_grad()
def validation_metrics(
    model: torch.nn.Module,
    pieces: Sequence[Sequence[int]],
    batch_size: int = 8,
    max_windows: int | None = None,
    show_progress: bool = False,
    description: str = "validation",
) -> dict[str, float]:
    """Loss, token accuracy, perplexity and per-field accuracy of `model` on windows of `pieces`.

    Args:
        model: A GIGA-Piano causal LM (put in eval mode here).
        pieces: Token ids of the held-out pieces.
        batch_size: Windows per forward pass.
        max_windows: Score at most this many windows, evenly spread (None: all).
        show_progress: Show a tqdm bar over batches.
        description: Label of the progress bar.

    Returns:
        `loss`, `perplexity`, `accuracy`, `sep_accuracy`, `dt_accuracy`, `dur_accuracy`, `pitch_accuracy`,
        `num_tokens` and `num_windows`.

    Raises:
        ValueError: No piece is as long as one context window.
    """
    model.eval()
    context_notes = int(model.config.max_position_embeddings) // 4
    windows = evenly_spaced(note_windows(pieces, context_notes), max_windows)
    if not windows:
        raise ValueError(f"No validation piece holds a full window of {context_notes} notes; cannot score.")
    device = next(model.parameters()).device
    predictions, targets, losses, fields = [], [], [], []
    batches = range(0, len(windows), batch_size)
    for start in tqdm(batches, desc=description, unit="batch", disable=not show_progress, leave=False):
        ids = torch.tensor(windows[start : start + batch_size], dtype=torch.long, device=device)
        reduced = reduce_logits(model(input_ids=ids).logits, ids).cpu().numpy()
        array = ids.cpu().numpy()
        predictions.append(reduced[..., 0].astype(np.int64).ravel())
        losses.append(reduced[..., 1].ravel())
        targets.append(array[:, 1:].ravel())
        fields.append(note_fields(array)[:, 1:].ravel())
    result = _lm_metric().compute(
        predictions=np.concatenate(predictions),
        references=np.concatenate(targets),
        losses=np.concatenate(losses),
        fields=np.concatenate(fields),
    )
    result["num_windows"] = len(windows)
    return result


__all__ = ["evenly_spaced", "validation_metrics"]
