"""Memorisation check: the longest run of consecutive notes a continuation shares with any training piece.

Fine-tuning on about 40 pieces invites copying, so for every continuation we look for the longest run of
consecutive notes that also appears, note for note, somewhere in the training pieces of its model's style.
A note is compared by its `(dt, dur, pitch)` (pitch and rhythm; key `"dt_dur_pitch"`) or, ignoring
articulation, by `(dt, pitch)` (key `"dt_pitch"`).

Method: every note becomes one integer; the training pieces are joined into one array with a separator value
that no note takes, so no run can cross from one piece into the next. A run of length `L` is found through
64-bit polynomial rolling hashes of all `L`-note windows (computed for all windows at once from prefix
hashes; arithmetic wraps modulo 2**64): the corpus hashes of one length are sorted once and cached, and a
query's windows are looked up with a binary search. Whether some run of length `L` is shared is monotone in
`L`, so the longest one is found by a binary search over `L`: about `log2(len(query))` lookups per
continuation instead of comparing every pair of positions. Equal hashes of different runs are vanishingly
rare (about `n_windows / 2**64` per lookup), and the reported run is checked note by note.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tokenization.gigapiano_notes import note_groups

logger = logging.getLogger(__name__)

COPY_KEYS: tuple[str, ...] = ("dt_dur_pitch", "dt_pitch")
#: Odd multiplier of the polynomial hash (odd, so it is invertible modulo 2**64).
_BASE = np.uint64(0x9E3779B97F4A7C15)
_SEPARATOR_KEY = 0


def note_keys(ids: Sequence[int], key: str = "dt_dur_pitch") -> np.ndarray:
    """One positive integer per well-formed note of an id sequence, equal for notes that count as the same.

    Args:
        ids: Token ids (`127, dt, dur, pitch` per note; malformed groups are skipped as the tokenizer does).
        key: `"dt_dur_pitch"` (pitch and rhythm) or `"dt_pitch"` (durations ignored).

    Returns:
        A uint64 array, one entry per note, never 0 (0 separates pieces in the corpus).
    """
    if key not in COPY_KEYS:
        raise ValueError(f"copy key must be one of {', '.join(COPY_KEYS)}, got {key!r}.")
    rows = note_groups(ids).astype(np.uint64)
    if key == "dt_pitch":
        values = rows[:, 0] * np.uint64(128) + rows[:, 2]
    else:
        values = (rows[:, 0] * np.uint64(128) + rows[:, 1]) * np.uint64(128) + rows[:, 2]
    return values + np.uint64(1)


def _prefix_hashes(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`(prefix, powers)`: `prefix[i]` hashes `keys[:i]` and `powers[i] = BASE**i` (both modulo 2**64).

    `prefix[i] = sum_j keys[j] * BASE**(i - 1 - j)`, computed without a Python loop as
    `BASE**(i - 1) * cumsum(keys[j] * BASE**-j)`, which works because an odd BASE is invertible mod 2**64.
    """
    n = keys.size
    inverse = np.uint64(pow(int(_BASE), -1, 2**64))
    one = np.ones(1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        powers = np.cumprod(np.concatenate((one, np.full(n, _BASE, dtype=np.uint64))), dtype=np.uint64)
        inverse_powers = np.cumprod(
            np.concatenate((one, np.full(max(n - 1, 0), inverse, dtype=np.uint64))), dtype=np.uint64
        )
        sums = np.cumsum(keys * inverse_powers[:n], dtype=np.uint64)
        # powers[m] * sums[m] = sum_{j <= m} keys[j] * BASE**(m - j) = prefix[m + 1]
        prefix = np.concatenate(([np.uint64(0)], powers[:n] * sums))
    return prefix, powers


def _window_hashes(prefix: np.ndarray, powers: np.ndarray, length: int) -> np.ndarray:
    """Hashes of every window of `length` keys: `prefix[i + length] - prefix[i] * BASE**length`."""
    with np.errstate(over="ignore"):
        return prefix[length:] - prefix[:-length] * powers[length]


@dataclass(frozen=True)
class CopiedRun:
    """The longest run of a query's notes found in the corpus.

    Attributes:
        length: Number of consecutive notes (0 when not even one note occurs in the corpus).
        query_start: Index of the run's first note in the query.
        source: Name of the corpus piece holding the run (`""` when `length == 0`).
        source_start: Index of the run's first note in that piece.
    """

    length: int
    query_start: int = 0
    source: str = ""
    source_start: int = 0


class CopyIndex:
    """An index of training pieces that answers "what is the longest run of this sequence found in them?".

    Args:
        pieces: Token id sequences of the training pieces.
        names: A name per piece (e.g. its MIDI file), reported with the match; defaults to `piece <i>`.
        key: What makes two notes equal (see `note_keys`).

    Example:
        ```python
        >>> index = CopyIndex(train_pieces, names=train_files)
        >>> index.longest_copied_run(continuation_ids).length
        ```
    """

    def __init__(
        self, pieces: Sequence[Sequence[int]], names: Sequence[str] | None = None, key: str = "dt_dur_pitch"
    ) -> None:
        self.key = key
        self.names = list(names) if names is not None else [f"piece {i}" for i in range(len(pieces))]
        if len(self.names) != len(pieces):
            raise ValueError(f"{len(self.names)} names for {len(pieces)} pieces; give one name per piece.")
        parts, starts, position = [], [], 0
        for ids in pieces:
            keys = note_keys(ids, key)
            starts.append(position)
            parts += [keys, np.asarray([_SEPARATOR_KEY], dtype=np.uint64)]
            position += keys.size + 1
        self._keys = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)
        self._piece_starts = np.asarray(starts, dtype=np.int64)
        self._prefix, self._powers = _prefix_hashes(self._keys)
        self._sorted: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def num_notes(self) -> int:
        """Notes in the corpus."""
        return int(self._keys.size - len(self._piece_starts))

    def _corpus_windows(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        """`(sorted hashes, their start positions)` of all corpus windows of `length` notes (cached)."""
        if length not in self._sorted:
            hashes = _window_hashes(self._prefix, self._powers, length) if length <= self._keys.size else None
            if hashes is None or hashes.size == 0:
                self._sorted[length] = (np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64))
            else:
                order = np.argsort(hashes, kind="stable")
                self._sorted[length] = (hashes[order], order)
        return self._sorted[length]

    def _find(self, prefix: np.ndarray, powers: np.ndarray, length: int) -> tuple[int, int] | None:
        """`(query start, corpus position)` of one run of `length` notes shared with the corpus, or None."""
        corpus, positions = self._corpus_windows(length)
        if corpus.size == 0:
            return None
        query = _window_hashes(prefix, powers, length)
        slots = np.minimum(np.searchsorted(corpus, query), corpus.size - 1)
        hits = np.flatnonzero(corpus[slots] == query)
        if hits.size == 0:
            return None
        return int(hits[0]), int(positions[slots[hits[0]]])

    def longest_copied_run(self, ids: Sequence[int]) -> CopiedRun:
        """The longest run of consecutive notes of `ids` that occurs in one of the indexed pieces.

        Args:
            ids: Token ids of the sequence to check (e.g. a generated continuation without its prompt).

        Returns:
            The run's length and where it is in the query and in the corpus.
        """
        keys = note_keys(ids, self.key)
        if keys.size == 0 or self._keys.size == 0:
            return CopiedRun(0)
        prefix, powers = _prefix_hashes(keys)
        low, high, best = 0, int(keys.size), None  # a run of `low` notes is shared; `high + 1` is not
        while low < high:
            middle = (low + high + 1) // 2
            found = self._find(prefix, powers, middle)
            if found is None:
                high = middle - 1
            else:
                low, best = middle, found
        if best is None:
            return CopiedRun(0)
        query_start, position = best
        if not np.array_equal(keys[query_start : query_start + low], self._keys[position : position + low]):
            logger.warning("A 64-bit hash collision made a false match of %d notes; reported anyway.", low)
        piece = int(np.searchsorted(self._piece_starts, position, side="right") - 1)
        return CopiedRun(low, query_start, self.names[piece], position - int(self._piece_starts[piece]))


__all__ = ["COPY_KEYS", "CopiedRun", "CopyIndex", "note_keys"]
