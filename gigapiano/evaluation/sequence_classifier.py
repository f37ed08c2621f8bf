"""A second style classifier that learns from the note sequence itself: a check on the forest's ceiling.

The evaluation's forest reads 79 hand-made, key-normalised, tempo-relative features. If it recognises only
about half of the real Rachmaninoff windows, is that the features' fault or the task's? This classifier
answers by learning its own features: a small dilated 1-D convolutional network over the window's notes,
each note given only what the forest's invariances allow:

* its pitch class relative to the tonic of the window's key (the same integer Krumhansl-Kessler estimate as
  the forest's, with the mode), its pitch relative to the window's median pitch and its melodic step from
  the previous note: integers, so a transposed window is encoded bit for bit the same;
* whether it starts with the previous note (dt 0, the tokenizer's chord), and its dt and duration as log2
  ratios to the window's median non-zero dt: a uniform tempo change moves them only by token rounding.

It trains on overlapping windows of the TRAIN performances with random tempo changes (x0.67 .. x1.5,
rounded to the token grid, as `scale_tempo` does), balanced class weights, and keeps the epoch with the best
balanced accuracy on the VALIDATION windows; TEST windows are its unbiased score.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .classifier import LabelledWindows
from .invariant_features import estimate_key, notes_of, scale_tempo

logger = logging.getLogger(__name__)

#: Notes between the starts of the network's training windows, and its epochs (the evaluation's defaults).
DEFAULT_STRIDE_NOTES = 32
DEFAULT_EPOCHS = 3
#: Tempo factors drawn for each training window (1.0 twice: half of the windows keep their tempo).
TRAIN_TEMPO_FACTORS = (0.67, 0.8, 1.0, 1.0, 1.25, 1.5)
RELATIVE_PITCH_LIMIT = 36  # semitones from the window's median pitch
STEP_LIMIT = 24  # semitones of melodic step
CATEGORY_SIZES = (24, 2 * RELATIVE_PITCH_LIMIT + 1, 2 * STEP_LIMIT + 1)


def encode_window(ids: Sequence[int], notes: int) -> tuple[np.ndarray, np.ndarray]:
    """The network's view of one window: `(notes, 3)` int64 categories and `(notes, 3)` float32 values.

    Categories: key-relative pitch class (+12 in minor), pitch minus the median pitch, melodic step.
    Values: chord flag (dt 0), log2 dt and log2 duration relative to the median non-zero dt (halved).
    Windows with fewer notes are zero-padded at the end; longer ones are cut.
    """
    categories = np.zeros((notes, 3), dtype=np.int64)
    values = np.zeros((notes, 3), dtype=np.float32)
    rows = notes_of(ids)[:notes]
    if rows.shape[0] == 0:
        return categories, values
    dt, dur, pitch = rows[:, 0], rows[:, 1], rows[:, 2]
    tonic, major, _ = estimate_key(pitch)
    median = np.sort(pitch)[(pitch.size - 1) // 2]  # an integer: transposition-exact
    n = pitch.size
    categories[:n, 0] = (pitch - tonic) % 12 + (0 if major else 12)
    categories[:n, 1] = (
        np.clip(pitch - median, -RELATIVE_PITCH_LIMIT, RELATIVE_PITCH_LIMIT) + RELATIVE_PITCH_LIMIT
    )
    categories[:n, 2] = np.clip(np.diff(pitch, prepend=pitch[0]), -STEP_LIMIT, STEP_LIMIT) + STEP_LIMIT
    moving = dt[dt > 0]
    unit = float(np.median(moving)) if moving.size else 1.0
    values[:n, 0] = dt == 0
    values[:n, 1] = np.where(dt > 0, np.clip(np.log2(np.maximum(dt, 1) / unit), -4, 4), 0.0) / 2
    values[:n, 2] = np.clip(np.log2(2 * dur / unit), -5, 5) / 2  # durations are 32 ms steps, dt 16 ms
    return categories, values


def encode_windows(windows: Sequence[Sequence[int]], notes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`encode_window` of many windows, stacked as tensors."""
    encoded = [encode_window(ids, notes) for ids in windows]
    categories = np.stack([c for c, _ in encoded]) if encoded else np.zeros((0, notes, 3), dtype=np.int64)
    values = np.stack([v for _, v in encoded]) if encoded else np.zeros((0, notes, 3), dtype=np.float32)
    return torch.from_numpy(categories), torch.from_numpy(values)


class SequenceStyleNet(nn.Module):
    """Embeddings of the note categories plus a projection of the values, residual dilated convolutions
    (receptive field of about 60 notes), mean and max pooling over the notes, a linear head."""

    def __init__(self, num_styles: int, width: int = 96, layers: int = 4, dropout: float = 0.2):
        super().__init__()
        self.embeddings = nn.ModuleList([nn.Embedding(size, width) for size in CATEGORY_SIZES])
        self.values = nn.Linear(3, width)
        self.norms = nn.ModuleList([nn.LayerNorm(width) for _ in range(layers)])
        self.convs = nn.ModuleList(
            [nn.Conv1d(width, width, 5, padding=2 * 2**i, dilation=2**i) for i in range(layers)]
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * width, num_styles)

    def forward(self, categories: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Style logits `(batch, num_styles)` of encoded windows `(batch, notes, 3)`."""
        x = self.values(values) + sum(emb(categories[..., i]) for i, emb in enumerate(self.embeddings))
        for norm, conv in zip(self.norms, self.convs, strict=True):
            x = x + self.dropout(F.gelu(conv(norm(x).transpose(1, 2)).transpose(1, 2)))
        return self.head(self.dropout(torch.cat([x.mean(1), x.amax(1)], dim=1)))


@dataclass
class SequenceStyleClassifier:
    """A fitted sequence classifier, with the same `styles` / `predict` interface as `StyleClassifier`.

    Attributes:
        styles: Class names, in the order of the logits.
        net: The trained network (in eval mode).
        window_notes: Notes per window it reads.
        history: Per epoch, the training loss and the validation balanced accuracy.
        best_epoch: The epoch whose weights it keeps.
    """

    styles: list[str]
    net: SequenceStyleNet
    window_notes: int
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0

    @torch.no_grad()
    def predict_proba(self, sequences: Sequence[Sequence[int]], batch_size: int = 512) -> np.ndarray:
        """`(n, len(styles))` style probabilities of each id sequence."""
        self.net.eval()
        categories, values = encode_windows(sequences, self.window_notes)
        chunks = [
            F.softmax(self.net(categories[i : i + batch_size], values[i : i + batch_size]), dim=-1)
            for i in range(0, len(categories), batch_size)
        ]
        return torch.cat(chunks).numpy() if chunks else np.zeros((0, len(self.styles)))

    def predict(self, sequences: Sequence[Sequence[int]]) -> list[str]:
        """The most likely style of each id sequence."""
        if not sequences:
            return []
        return [self.styles[i] for i in self.predict_proba(sequences).argmax(1)]


def balanced_accuracy(predicted: Sequence[str], truth: Sequence[str]) -> float:
    """Mean over the true styles of the share of their windows predicted right."""
    styles = sorted(set(truth))
    return float(
        np.mean([np.mean([p == s for p, t in zip(predicted, truth, strict=True) if t == s]) for s in styles])
    )


def _tempo_jittered(windows: Sequence[Sequence[int]], rng: np.random.Generator) -> list:
    factors = rng.choice(TRAIN_TEMPO_FACTORS, size=len(windows))
    return [ids if f == 1.0 else scale_tempo(ids, float(f)) for ids, f in zip(windows, factors, strict=True)]


def train_sequence_classifier(
    train: LabelledWindows,
    validation: LabelledWindows,
    *,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = 128,
    learning_rate: float = 2e-3,
    seed: int = 0,
    progress: bool = True,
) -> SequenceStyleClassifier:
    """Fits the network (one-cycle AdamW, balanced class weights, fresh tempo jitter every epoch) and keeps
    the epoch with the best validation balanced accuracy.

    Raises:
        ValueError: Fewer than two styles, or no validation windows.
    """
    styles = list(dict.fromkeys(train.styles))
    if len(styles) < 2:
        raise ValueError(f"A style classifier needs windows of at least two styles, got {styles}.")
    if not validation.windows:
        raise ValueError("The sequence classifier needs validation windows to choose its epoch.")
    notes = len(train.windows[0]) // 4
    labels = torch.tensor([styles.index(s) for s in train.styles])
    counts = torch.bincount(labels, minlength=len(styles)).float()
    class_weights = len(labels) / (len(styles) * counts.clamp(min=1))
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = SequenceStyleNet(len(styles))
    steps_per_epoch = max(len(labels) // batch_size, 1)
    optimizer = torch.optim.AdamW(net.parameters(), lr=learning_rate, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, learning_rate, total_steps=epochs * steps_per_epoch
    )
    classifier = SequenceStyleClassifier(styles, net, notes)
    best_score, best_state = -1.0, None
    for epoch in range(epochs):
        categories, values = encode_windows(_tempo_jittered(train.windows, rng), notes)
        order = torch.randperm(len(labels))
        net.train()
        losses = []
        for step in tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{epochs}", disable=not progress):
            batch = order[step * batch_size : (step + 1) * batch_size]
            loss = F.cross_entropy(net(categories[batch], values[batch]), labels[batch], weight=class_weights)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        score = balanced_accuracy(classifier.predict(validation.windows), validation.styles)
        classifier.history.append(
            {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "validation": score}
        )
        logger.info(
            "Epoch %d: train loss %.3f, validation balanced accuracy %.3f.", epoch + 1, losses[-1], score
        )
        if score > best_score:
            best_score, best_state = score, {k: v.clone() for k, v in net.state_dict().items()}
            classifier.best_epoch = epoch + 1
    net.load_state_dict(best_state)
    net.eval()
    return classifier


__all__ = [
    "DEFAULT_EPOCHS",
    "DEFAULT_STRIDE_NOTES",
    "SequenceStyleClassifier",
    "SequenceStyleNet",
    "balanced_accuracy",
    "encode_window",
    "encode_windows",
    "train_sequence_classifier",
]
