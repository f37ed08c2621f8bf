"""95% intervals by bootstrap over pieces, and paired intervals for differences between two models.

Windows, prompts and continuations of one performance are not independent (same composition, same pianist,
same recording), so resampling them one by one would give intervals that are far too narrow. Every interval
here resamples whole *pieces* (performances) with replacement and recomputes the statistic as a ratio of
sums over the drawn pieces: a loss is `sum(nats) / sum(tokens)`, a share is `sum(hits) / sum(count)`. A
paired interval draws the same pieces for both models and takes the difference inside each resample, so the
variation shared by the two models (hard pieces are hard for both) cancels. Percentile intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

DEFAULT_RESAMPLES = 2000


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95% bootstrap interval.

    Attributes:
        value: The statistic on all the data.
        low: 2.5th percentile of the resampled statistic.
        high: 97.5th percentile.
        pieces: Number of pieces resampled.
    """

    value: float
    low: float
    high: float
    pieces: int

    @property
    def excludes_zero(self) -> bool:
        """True when the interval lies entirely above or entirely below 0."""
        return bool(self.low > 0 or self.high < 0)

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _piece_sums(pieces: Sequence[str], values: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Per distinct piece (in first-seen order), the sum of its items' values."""
    order = list(dict.fromkeys(pieces))
    index = {piece: i for i, piece in enumerate(order)}
    codes = np.asarray([index[piece] for piece in pieces], dtype=np.int64)
    return order, np.bincount(codes, weights=np.asarray(values, dtype=np.float64), minlength=len(order))


def resample_counts(num_pieces: int, resamples: int, seed: int) -> np.ndarray:
    """`(resamples, num_pieces)`: how often each piece is drawn in each resample (rows sum to num_pieces)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, num_pieces, size=(resamples, num_pieces))
    offsets = (np.arange(resamples) * num_pieces)[:, None]
    counts = np.bincount((draws + offsets).ravel(), minlength=resamples * num_pieces)
    return counts.reshape(resamples, num_pieces).astype(np.float64)


def _ratio(numerators: np.ndarray, denominators: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return numerators / denominators


def piece_bootstrap(
    pieces: Sequence[str],
    numerators: Sequence[float],
    denominators: Sequence[float] | None = None,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Estimate:
    """`sum(numerators) / sum(denominators)` with a 95% interval from resampling pieces.

    Args:
        pieces: The piece of every item (a window, a continuation).
        numerators: Per item, e.g. its summed nats or 1 for a hit.
        denominators: Per item, e.g. its token count; default 1 each (a mean).
        resamples: Bootstrap resamples.
        seed: Resampling seed (the same seed gives the same interval).

    Returns:
        The estimate; NaN everywhere when there are no items.
    """
    if denominators is None:
        denominators = np.ones(len(numerators))
    if len(pieces) == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    order, nums = _piece_sums(pieces, np.asarray(numerators))
    _, dens = _piece_sums(pieces, np.asarray(denominators))
    counts = resample_counts(len(order), resamples, seed)
    stats = _ratio(counts @ nums, counts @ dens)
    low, high = np.nanpercentile(stats, [2.5, 97.5])
    return Estimate(float(nums.sum() / dens.sum()), float(low), float(high), len(order))


def paired_bootstrap(
    pieces: Sequence[str],
    numerators_a: Sequence[float],
    numerators_b: Sequence[float],
    denominators_a: Sequence[float] | None = None,
    denominators_b: Sequence[float] | None = None,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Estimate:
    """The difference `ratio(a) - ratio(b)` of two statistics on the same items, resampling pieces jointly.

    Args:
        pieces: The piece of every item; item `i` of `a` and of `b` belong to the same piece (e.g. the style
            model's and the base model's continuation of the same prompt with the same seed, or their losses
            on the same window).
        numerators_a / numerators_b: Per item numerators of the two statistics.
        denominators_a / denominators_b: Per item denominators (default 1 each).
        resamples: Bootstrap resamples.
        seed: Resampling seed.

    Returns:
        The estimate of `a - b`.
    """
    n = len(pieces)
    if len(numerators_a) != n or len(numerators_b) != n:
        raise ValueError(
            f"Paired statistics need one value per item: {n} pieces, {len(numerators_a)} and "
            f"{len(numerators_b)} values."
        )
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    ones = np.ones(n)
    order, num_a = _piece_sums(pieces, np.asarray(numerators_a))
    _, num_b = _piece_sums(pieces, np.asarray(numerators_b))
    _, den_a = _piece_sums(pieces, ones if denominators_a is None else np.asarray(denominators_a))
    _, den_b = _piece_sums(pieces, ones if denominators_b is None else np.asarray(denominators_b))
    counts = resample_counts(len(order), resamples, seed)
    stats = _ratio(counts @ num_a, counts @ den_a) - _ratio(counts @ num_b, counts @ den_b)
    low, high = np.nanpercentile(stats, [2.5, 97.5])
    value = num_a.sum() / den_a.sum() - num_b.sum() / den_b.sum()
    return Estimate(float(value), float(low), float(high), len(order))


__all__ = ["DEFAULT_RESAMPLES", "Estimate", "paired_bootstrap", "piece_bootstrap", "resample_counts"]
