"""Held-out loss per window, for the models and for the n-gram baseline on exactly the same tokens.

Each style's validation performances are cut into non-overlapping windows of the model's context length
(starting on a separator, tails dropped, as in training), at most `per_piece` of them per performance,
evenly spread over it, so that long performances do not dominate and the run stays short. A model's loss on
a window is the summed cross-entropy of every token after the first (separators included), computed with
the training code's `reduce_logits`, so it means what the training run's `eval_loss` means; the n-gram
scores the same targets. The report divides summed nats by summed tokens over the drawn pieces.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from gigapiano.data import make_windows
from gigapiano.training.metrics import reduce_logits

from .classifier import evenly

logger = logging.getLogger(__name__)


@dataclass
class ScoredWindows:
    """Windows of held-out performances and the performance each comes from."""

    windows: np.ndarray  # (n, window_tokens) int64
    pieces: list[str]

    @classmethod
    def from_pieces(
        cls, pieces: Sequence[tuple[str, Sequence[int]]], window_tokens: int, per_piece: int | None
    ) -> ScoredWindows:
        """At most `per_piece` evenly spread non-overlapping windows of each `(name, ids)` piece.

        Raises:
            ValueError: No piece holds a whole window.
        """
        rows, names = [], []
        for name, ids in pieces:
            ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
            windows = [window for _, window in make_windows(ids, window_tokens, window_tokens)]
            for window in evenly(windows, per_piece):
                rows.append(window)
                names.append(name)
        if not rows:
            raise ValueError(
                f"No held-out piece holds a full window of {window_tokens} tokens; cannot score."
            )
        return cls(np.asarray(rows, dtype=np.int64), names)


@torch.no_grad()
def model_window_losses(
    model: torch.nn.Module,
    windows: np.ndarray,
    batch_size: int = 8,
    show_progress: bool = False,
    description: str = "validation",
) -> tuple[np.ndarray, np.ndarray]:
    """Per window: summed cross-entropy (nats) of its tokens after the first, and their number.

    Args:
        model: A GIGA-Piano causal LM (put in eval mode here) whose context holds a window.
        windows: `(n, L)` token ids.
        batch_size: Windows per forward pass.
        show_progress: Show a tqdm bar over batches.
        description: Label of the progress bar.

    Returns:
        `(nats, tokens)`, two float64 arrays of length n.
    """
    model.eval()
    context = int(model.config.max_position_embeddings)
    if windows.shape[1] > context:
        raise ValueError(f"Windows of {windows.shape[1]} tokens do not fit the model's context of {context}.")
    device = next(model.parameters()).device
    sums = []
    batches = range(0, len(windows), batch_size)
    for start in tqdm(batches, desc=description, unit="batch", disable=not show_progress, leave=False):
        ids = torch.as_tensor(windows[start : start + batch_size], dtype=torch.long, device=device)
        reduced = reduce_logits(model(input_ids=ids).logits, ids)
        sums.append(reduced[..., 1].sum(dim=1).double().cpu().numpy())
    nats = np.concatenate(sums) if sums else np.zeros(0)
    return nats, np.full(len(nats), windows.shape[1] - 1, dtype=np.float64)


__all__ = ["ScoredWindows", "model_window_losses"]
