"""Evaluation metrics during training: loss, accuracy, perplexity and per-field accuracy.

The numbers come from the repo's `evaluate` module `metrics/gigapiano_lm` (loaded offline by path).
To keep evaluation memory small, the full logits are reduced on the fly to two numbers per target token:
the argmax prediction and the target's cross-entropy.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import evaluate
import numpy as np
import torch
from transformers import EvalPrediction

from tokenization import SEP_ID

METRIC_PATH = Path(__file__).resolve().parents[2] / "metrics" / "gigapiano_lm"


def reduce_logits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per target token (shifted by one): `[argmax id, cross-entropy]`, shape `(batch, T - 1, 2)`."""
    if isinstance(logits, tuple):
        logits = logits[0]
    shifted = logits[:, :-1].float()
    targets = labels[:, 1:]
    losses = torch.nn.functional.cross_entropy(
        shifted.reshape(-1, shifted.shape[-1]), targets.reshape(-1).clamp(min=0), reduction="none"
    ).view(targets.shape)
    return torch.stack([shifted.argmax(-1).float(), losses], dim=-1)


def note_fields(ids: np.ndarray) -> np.ndarray:
    """Field of every token in `(batch, T)` windows: 0 separator, 1 dt, 2 duration, 3 pitch.

    The phase of each row is read off its first separator (training windows start on one).
    """
    first_separator = np.argmax(ids == SEP_ID, axis=1)
    return (np.arange(ids.shape[1])[None, :] - first_separator[:, None]) % 4


def build_compute_metrics() -> Callable[[EvalPrediction], dict[str, float]]:
    """A `Trainer` `compute_metrics` function over the output of `reduce_logits`."""
    metric = evaluate.load(str(METRIC_PATH))

    def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
        reduced = np.asarray(prediction.predictions)
        labels = np.asarray(prediction.label_ids)
        fields = note_fields(labels)[:, 1:]
        targets = labels[:, 1:]
        keep = targets != -100
        result = metric.compute(
            predictions=reduced[..., 0][keep].astype(np.int64),
            references=targets[keep],
            losses=reduced[..., 1][keep],
            fields=fields[keep],
        )
        result.pop("num_tokens", None)
        result.pop("loss", None)  # Trainer reports the same mean cross-entropy as eval_loss
        return result

    return compute_metrics
