"""On-the-fly pitch transposition for small training sets.

Each time a training window is read, all its pitches move by one random number of semitones. The shift
is drawn from the requested range intersected with the shifts that keep every pitch of that window
inside 1..126, so no note is ever clamped (clamping would turn a transposition into wrong notes); dt and
duration tokens are never touched. The transform is attached with ``Dataset.with_transform`` to the
training split only: validation and test stay as recorded.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence

from datasets import DatasetDict

from .chunk_filter import SEP_ID

PITCH_MIN = 1
PITCH_MAX = 126


def pitch_positions(ids: Sequence[int]) -> list[int]:
    """Returns the indices of pitch tokens: the third id after each separator 127.

    127 appears only as the separator, so the ``[127, dt, dur, pitch]`` structure identifies pitches
    unambiguously; the pitch of a partial note before the first separator cannot be recognised and is
    left out (windows made by ``window_dataset`` always start on a separator).
    """
    return [i + 3 for i, token in enumerate(ids) if token == SEP_ID and i + 3 < len(ids)]


def allowed_shifts(ids: Sequence[int], max_semitones: int) -> tuple[int, int]:
    """Returns the inclusive shift range ``[low, high]`` within ``±max_semitones`` keeping pitches in 1..126.

    Args:
        ids: Token ids.
        max_semitones: Largest transposition asked for, in semitones (>= 0).

    Returns:
        ``(low, high)`` with ``low <= 0 <= high``.
    """
    if max_semitones < 0:
        raise ValueError(f"max_semitones={max_semitones} must be >= 0.")
    pitches = [ids[i] for i in pitch_positions(ids)]
    if not pitches:
        return 0, 0
    return max(-max_semitones, PITCH_MIN - min(pitches)), min(max_semitones, PITCH_MAX - max(pitches))


def transpose_ids(ids: Sequence[int], semitones: int, positions: Sequence[int] | None = None) -> list[int]:
    """Returns a copy of ``ids`` with every pitch moved by ``semitones``.

    Args:
        ids: Token ids (``labels`` may contain -100; those positions are left alone).
        semitones: The shift.
        positions: Pitch positions; computed from ``ids`` when omitted (pass the ``input_ids`` positions
            to shift ``labels`` identically).

    Returns:
        The transposed ids.

    Raises:
        ValueError: A pitch would leave 1..126 (use :func:`allowed_shifts` to pick a safe shift).
    """
    out = list(ids)
    for i in pitch_positions(ids) if positions is None else positions:
        if i >= len(out) or out[i] < 0:
            continue
        shifted = out[i] + semitones
        if not PITCH_MIN <= shifted <= PITCH_MAX:
            raise ValueError(
                f"Transposing pitch {out[i]} at position {i} by {semitones} gives {shifted}, outside "
                f"{PITCH_MIN}..{PITCH_MAX}; choose the shift with allowed_shifts()."
            )
        out[i] = shifted
    return out


class RandomTranspose:
    """A ``datasets`` transform transposing each example of a batch by a random safe shift.

    Picklable, so it works with ``DataLoader`` workers; each worker process reseeds from ``(seed, pid)``
    so workers do not repeat each other's shifts.

    Args:
        max_semitones: Shifts are drawn uniformly from ``[-max_semitones, max_semitones]`` (clipped per
            window to keep pitches in 1..126).
        seed: Seed for reproducible shifts within one process; ``None`` for fresh entropy.
        columns: Columns to transpose; the first one locates the pitches, the others (``labels``) get the
            same shift.
    """

    def __init__(
        self,
        max_semitones: int = 6,
        seed: int | None = None,
        columns: Sequence[str] = ("input_ids", "labels"),
    ):
        if max_semitones < 0:
            raise ValueError(f"max_semitones={max_semitones} must be >= 0 (0 disables transposition).")
        if not columns:
            raise ValueError("RandomTranspose needs at least one column to transpose, e.g. 'input_ids'.")
        self.max_semitones = max_semitones
        self.seed = seed
        self.columns = tuple(columns)
        self._pid = os.getpid()
        self._rng = random.Random(seed)

    def _generator(self) -> random.Random:
        # A DataLoader worker is another process holding a copy of this object: give it its own stream.
        pid = os.getpid()
        if pid != self._pid:
            self._pid = pid
            self._rng = random.Random(None if self.seed is None else hash((self.seed, pid)))
        return self._rng

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        present = [c for c in self.columns if c in batch]
        if not present:
            return batch
        rng = self._generator()
        out = dict(batch)
        reference = present[0]
        results: dict[str, list] = {c: [] for c in present}
        for row in range(len(batch[reference])):
            ids = batch[reference][row]
            positions = pitch_positions(ids)
            low, high = allowed_shifts(ids, self.max_semitones)
            shift = rng.randint(low, high)
            for column in present:
                results[column].append(transpose_ids(batch[column][row], shift, positions))
        out.update(results)
        return out


def add_transposition(
    data: DatasetDict, max_semitones: int, seed: int | None = None, split: str = "train"
) -> DatasetDict:
    """Attaches :class:`RandomTranspose` to one split (training by default), leaving the others untouched.

    Args:
        data: Windows dataset (``input_ids``/``labels``).
        max_semitones: Largest shift in semitones; 0 returns ``data`` unchanged.
        seed: Transform seed.
        split: The split to augment.

    Returns:
        A new ``DatasetDict`` whose ``split`` is formatted with the transform.
    """
    if max_semitones == 0:
        return data
    if split not in data:
        raise ValueError(f"No split {split!r} to augment; available: {list(data)}.")
    augmented = DatasetDict(dict(data))
    augmented[split] = data[split].with_transform(RandomTranspose(max_semitones, seed))
    return augmented
