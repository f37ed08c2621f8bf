"""Anti-copy ("KNN") continuation: of several candidate notes, keep one that the piece has not just played.

Upstream's notebook offers a "KNN multiple continuation blocks" generator next to plain continuation. Here
each new note is sampled as `candidates` rows of one batch on the shared key/value cache; of those, the
first whose nearest neighbour among the notes of the last `memory_tokens` tokens (prompt and generated
notes, as (dt, duration, pitch) points in token units, Euclidean distance) lies at least `threshold` away
is kept, and every row continues from it. When no candidate is that far, the first candidate (the plain
sample) is kept, as upstream's rule picks the first of equally near candidates. With upstream's threshold
of 0.1 token units a candidate is refused exactly when it repeats a remembered note in all three fields,
which breaks the one-note and short-pattern loops a small model can fall into.

(Upstream's notebook code ranks the candidates by their distance to the prompt's notes and keeps the
nearest; this mode keeps the first far enough from what was just played, which is what stops loops.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where candidates are compared, so the settings stay light for `--help`
    import torch

#: Upper bound of candidates per note (each is one row of the decoding batch).
MAX_CANDIDATES = 16


@dataclass(frozen=True)
class AntiCopy:
    """How candidate notes are filtered (upstream's defaults).

    Attributes:
        candidates: notes sampled per step and per variation (rows of the batch).
        threshold: the least distance, in token units, from every remembered note for a candidate to pass.
        memory_tokens: how many of the most recent tokens (4 per note) are remembered.
    """

    candidates: int = 4
    threshold: float = 0.1
    memory_tokens: int = 256

    def __post_init__(self) -> None:
        if not 1 <= self.candidates <= MAX_CANDIDATES:
            raise ValueError(f"knn_candidates must be in 1..{MAX_CANDIDATES}, got {self.candidates}.")
        if not (math.isfinite(self.threshold) and self.threshold >= 0):
            raise ValueError(f"knn_threshold must be a number >= 0, got {self.threshold}.")
        if not 4 <= self.memory_tokens <= 8192:
            raise ValueError(f"knn_memory_tokens must be in 4..8192, got {self.memory_tokens}.")

    def choose(self, sequence: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Pick one candidate per group of `candidates` consecutive rows.

        Args:
            sequence: `(groups * candidates, T)` ids ending on a complete note (separator, dt, dur, pitch)
                at a multiple of 4; the rows of a group agree on everything before their last note.

        Returns:
            `(rows, fallbacks)`: for every row, the row to continue from (its group's chosen candidate), and
            how many groups had no candidate far enough (and kept their first).
        """
        import torch

        rows, length = sequence.shape
        groups = rows // self.candidates
        notes = sequence[:, -3:].to(torch.float32).view(groups, self.candidates, 3)
        remembered = min((length - 4) // 4, self.memory_tokens // 4)
        chosen = torch.zeros(groups, dtype=torch.long)
        fallbacks = 0
        if remembered > 0:
            history = sequence[:: self.candidates, length - 4 - 4 * remembered : length - 4]
            history = history.reshape(groups, remembered, 4)[..., 1:].to(torch.float32)
            nearest = torch.cdist(notes, history).amin(dim=-1)  # (groups, candidates)
            far = (nearest >= self.threshold).cpu()
            has_far = far.any(dim=1)
            chosen = torch.where(has_far, far.to(torch.int8).argmax(dim=1), chosen)
            fallbacks = int((~has_far).sum())
        first_rows = torch.arange(groups) * self.candidates + chosen
        return first_rows.repeat_interleave(self.candidates).to(sequence.device), fallbacks


__all__ = ["MAX_CANDIDATES", "AntiCopy"]
