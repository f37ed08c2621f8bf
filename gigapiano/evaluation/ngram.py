"""A music-aware n-gram language model over GIGA-Piano tokens: the baseline every model loss is judged by.

A loss of "2.1 nats per token" means little alone: much of it is easy (every fourth token is a separator;
durations follow the rhythm). This baseline shows what counting alone achieves on the same windows and
tokens as a model, trained on the same performances. It predicts every token, separators included, with a
proper distribution over all 128 ids (so its loss is comparable with the model's cross-entropy):

* separator: the share of separators after a pitch in training (in practice 1);
* dt: counts conditioned on the previous one and two dts, and on the previous dt and duration;
* duration: counts conditioned on the note's dt, the previous duration(s) and both;
* pitch: a mixture of absolute pitch (unconditioned, given the previous pitch, the previous two pitches, the
  previous pitch and whether the note is in a chord) and *interval* from the previous pitch (given whether
  the note is in a chord and the previous one or two intervals, renormalised over the 128 ids), plus a
  cache of the window's last 64 pitches (which tracks the key and register of the piece at hand).

Every component is a table of counts with add-k smoothing (`(count + k) / (total + 128 k)`), so no id ever
has probability 0. The components of a field are mixed by linear interpolation whose weights depend on how
often the most specific context was seen (Jelinek-Mercer with count buckets), fitted by EM on held-out
training performances (every tenth, whose counts are subtracted while fitting), and the counts are then
taken from all training performances. (Held out are whole compositions: with another performance of a
held-out composition among the counts, long contexts would look more reliable than they are on new
music.) Counting and scoring run on non-overlapping windows of the model's
context length, so like the model the n-gram has no history before a window's first note.

A style baseline (`background=`) mixes the components counted on the style's performances with the whole
base n-gram (the base model's data) as one more component, under weights fitted on held-out style
performances (taken out of the base counts meanwhile): it is trained on exactly what the fine-tuned style
model saw, base data plus style data, and can fall back on the base n-gram where the style's counts are thin.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

logger = logging.getLogger(__name__)

VOCAB = 128
SEP_ID = 127
PHASES: tuple[str, ...] = ("sep", "dt", "dur", "pitch")  # phase of token position p is p % 4
_NO_DT, _NO_VALUE, _NO_IV1, _NO_IV2 = 127, 0, 49, 25
_BUCKETS = 12
_EM_ITERATIONS = 60
_EM_TARGETS = 200_000  # held-out targets per field used to fit the weights (evenly spread)


@dataclass
class _Contexts:
    """Per-note fields and histories of `(n, L)` windows (missing history gets a reserved value)."""

    dt: np.ndarray
    dur: np.ndarray
    pitch: np.ndarray
    next_sep: np.ndarray  # token at every separator position after the first: `(n, N - 1)`
    values: dict[str, np.ndarray] = field(default_factory=dict)


def _shift(array: np.ndarray, steps: int, fill: int) -> np.ndarray:
    out = np.full_like(array, fill)
    if steps < array.shape[1]:
        out[:, steps:] = array[:, :-steps]
    return out


def note_contexts(windows: np.ndarray) -> _Contexts:
    """Fields and histories of every note of `(n, L)` windows that start on a separator (`L % 4 == 0`)."""
    windows = np.asarray(windows, dtype=np.int64)
    if windows.ndim != 2 or windows.shape[1] % 4:
        raise ValueError(f"n-gram windows must be (n, 4 * notes), got shape {windows.shape}.")
    clipped = np.clip(windows, 0, VOCAB - 1)
    dt, dur, pitch = clipped[:, 1::4], clipped[:, 2::4], clipped[:, 3::4]
    p1, p2, p3 = _shift(pitch, 1, _NO_VALUE), _shift(pitch, 2, _NO_VALUE), _shift(pitch, 3, _NO_VALUE)
    iv1 = np.where((p1 > 0) & (p2 > 0), np.clip(p1 - p2, -24, 24) + 24, _NO_IV1)
    iv2 = np.where((p2 > 0) & (p3 > 0), np.clip(p2 - p3, -12, 12) + 12, _NO_IV2)
    values = {
        "dt1": _shift(dt, 1, _NO_DT),
        "dt2": _shift(dt, 2, _NO_DT),
        "dur1": _shift(dur, 1, _NO_VALUE),
        "dur2": _shift(dur, 2, _NO_VALUE),
        "p1": p1,
        "p2": p2,
        "iv1": iv1,
        "iv2": iv2,
        "chord": (dt == 0).astype(np.int64),
    }
    return _Contexts(dt, dur, pitch, clipped[:, 4::4], values)


Context = Callable[[_Contexts], np.ndarray]


def _zeros(c: _Contexts) -> np.ndarray:
    return np.zeros_like(c.dt)


#: Absolute components: name -> (phase, context index function, number of contexts).
ABSOLUTE: dict[str, tuple[str, Context, int]] = {
    "sep": ("sep", lambda c: np.zeros_like(c.next_sep), 1),
    "dt": ("dt", _zeros, 1),
    "dt|dt1": ("dt", lambda c: c.values["dt1"], VOCAB),
    "dt|dt1,dt2": ("dt", lambda c: c.values["dt1"] * VOCAB + c.values["dt2"], VOCAB**2),
    "dt|dt1,dur1": ("dt", lambda c: c.values["dt1"] * VOCAB + c.values["dur1"], VOCAB**2),
    "dur": ("dur", _zeros, 1),
    "dur|dt": ("dur", lambda c: c.dt, VOCAB),
    "dur|dur1": ("dur", lambda c: c.values["dur1"], VOCAB),
    "dur|dt,dur1": ("dur", lambda c: c.dt * VOCAB + c.values["dur1"], VOCAB**2),
    "dur|dur1,dur2": ("dur", lambda c: c.values["dur1"] * VOCAB + c.values["dur2"], VOCAB**2),
    "pitch": ("pitch", _zeros, 1),
    "pitch|p1": ("pitch", lambda c: c.values["p1"], VOCAB),
    "pitch|p1,p2": ("pitch", lambda c: c.values["p1"] * VOCAB + c.values["p2"], VOCAB**2),
    "pitch|p1,chord": ("pitch", lambda c: c.values["p1"] * 2 + c.values["chord"], 2 * VOCAB),
}
#: Interval components of the pitch (relative to the previous pitch): name -> (context function, contexts).
INTERVAL: dict[str, tuple[Context, int]] = {
    "interval|chord": (lambda c: c.values["chord"], 2),
    "interval|chord,iv1": (lambda c: c.values["chord"] * 50 + c.values["iv1"], 100),
    "interval|chord,iv1,iv2": (
        lambda c: (c.values["chord"] * 50 + c.values["iv1"]) * 26 + c.values["iv2"],
        2600,
    ),
}
#: The component whose context count picks the interpolation-weight bucket of each phase.
BUCKET_BY: dict[str, str | None] = {
    "sep": None,
    "dt": "dt|dt1,dt2",
    "dur": "dur|dt,dur1",
    "pitch": "pitch|p1,p2",
}


def _target(c: _Contexts, phase: str) -> np.ndarray:
    return {"sep": c.next_sep, "dt": c.dt, "dur": c.dur, "pitch": c.pitch}[phase]


@dataclass
class NgramCounts:
    """Count tables of every component: absolute `(contexts, 128)`, interval `(contexts, 255)`."""

    tables: dict[str, np.ndarray]
    windows: int = 0

    @classmethod
    def count(cls, windows: np.ndarray) -> NgramCounts:
        """Counts every component over `(n, L)` windows."""
        c = note_contexts(windows)
        tables: dict[str, np.ndarray] = {}
        for name, (phase, context, size) in ABSOLUTE.items():
            keys = context(c).ravel() * VOCAB + _target(c, phase).ravel()
            tables[name] = np.bincount(keys, minlength=size * VOCAB).reshape(size, VOCAB)
        has_previous = c.values["p1"] > 0
        offsets = (c.pitch - c.values["p1"] + VOCAB - 1)[has_previous]
        for name, (context, size) in INTERVAL.items():
            keys = context(c)[has_previous] * (2 * VOCAB - 1) + offsets
            tables[name] = np.bincount(keys, minlength=size * (2 * VOCAB - 1)).reshape(size, 2 * VOCAB - 1)
        return cls(tables, len(windows))

    def __sub__(self, other: NgramCounts) -> NgramCounts:
        tables = {name: table - other.tables[name] for name, table in self.tables.items()}
        if any(table.min() < 0 for table in tables.values()):
            raise ValueError("Subtracting n-gram counts that were not part of these counts.")
        return NgramCounts(tables, self.windows - other.windows)


class _Scorer:
    """Probabilities of the targets under each component of one count set (add-k smoothed)."""

    def __init__(self, counts: NgramCounts, k: float) -> None:
        self.k = k
        self.tables = counts.tables
        self.totals = {name: table.sum(axis=1) for name, table in counts.tables.items()}
        self.prefix = {}
        for name in INTERVAL:
            table = counts.tables[name].astype(np.float64)
            self.prefix[name] = np.concatenate(
                [np.zeros((table.shape[0], 1)), np.cumsum(table, axis=1)], axis=1
            )

    def absolute(self, name: str, c: _Contexts) -> np.ndarray:
        phase, context, _ = ABSOLUTE[name]
        rows, target = context(c), _target(c, phase)
        return (self.tables[name][rows, target] + self.k) / (self.totals[name][rows] + VOCAB * self.k)

    def interval(self, name: str, c: _Contexts) -> np.ndarray:
        rows, previous = INTERVAL[name][0](c), c.values["p1"]
        offset = c.pitch - previous + VOCAB - 1
        # normaliser: the counts of the intervals that land on one of the 128 ids, given the previous pitch
        low, high = VOCAB - 1 - previous, 2 * VOCAB - 2 - previous
        total = self.prefix[name][rows, high + 1] - self.prefix[name][rows, low] + VOCAB * self.k
        probs = (self.tables[name][rows, offset] + self.k) / total
        return np.where(previous > 0, probs, 1.0 / VOCAB)

    def bucket(self, phase: str, c: _Contexts) -> np.ndarray:
        name = BUCKET_BY[phase]
        if name is None:
            return np.zeros_like(_target(c, phase))
        seen = self.totals[name][ABSOLUTE[name][1](c)]
        return np.minimum(np.log2(1.0 + seen).astype(np.int64), _BUCKETS - 1)


def cache_probs(pitch: np.ndarray, notes: int, k: float) -> np.ndarray:
    """Add-k probability of each note's pitch among the window's previous `notes` pitches."""
    hits = np.zeros(pitch.shape, dtype=np.float64)
    for lag in range(1, min(notes, pitch.shape[1] - 1) + 1):
        hits[:, lag:] += pitch[:, lag:] == pitch[:, :-lag]
    seen = np.minimum(np.arange(pitch.shape[1]), notes)[None, :]
    return (hits + k) / (seen + VOCAB * k)


def _em(probs: np.ndarray, iterations: int = _EM_ITERATIONS) -> np.ndarray:
    """Mixture weights maximising the likelihood of held-out targets; `probs` is `(targets, components)`."""
    weights = np.full(probs.shape[1], 1.0 / probs.shape[1])
    for _ in range(iterations):
        inverse = 1.0 / (probs @ weights)
        weights = weights * (inverse @ probs) / probs.shape[0]
    weights = np.maximum(weights, 1e-6)
    return weights / weights.sum()


def piece_windows(pieces: Sequence[Sequence[int]], window_tokens: int) -> np.ndarray:
    """Non-overlapping `(n, window_tokens)` windows of every piece (tails dropped)."""
    rows = []
    for ids in pieces:
        array = np.asarray(ids, dtype=np.int64)
        whole = len(array) // window_tokens
        if whole:
            rows.append(array[: whole * window_tokens].reshape(whole, window_tokens))
    return np.concatenate(rows) if rows else np.zeros((0, window_tokens), dtype=np.int64)


def _held_out_pieces(windows: Sequence[np.ndarray], groups: Sequence[int | str] | None) -> list[int]:
    """Indices of the pieces held out for the weights: whole groups, about a tenth of the windows."""
    keys = list(range(len(windows))) if groups is None else list(groups)
    distinct = list(dict.fromkeys(keys))
    total = sum(len(w) for w in windows)
    chosen, held = set(), 0
    for index in np.random.default_rng(0).permutation(len(distinct)):
        if held >= total / 10 or len(chosen) == len(distinct) - 1:
            break
        chosen.add(distinct[index])
        held += sum(len(w) for w, key in zip(windows, keys, strict=True) if key == distinct[index])
    return [i for i, key in enumerate(keys) if key in chosen] or [len(windows) - 1]


class NoteNgram:
    """The interpolated, add-k smoothed music n-gram (see the module docstring). Build it with `fit`.

    Args:
        counts: Count tables of the model's own training data.
        weights: Phase -> `(buckets, components)` interpolation weights.
        k: Add-k constant.
        cache_notes: Notes of the pitch cache.
        background: A fitted n-gram of other training data (the base data for a style model), mixed in as one
            more component (its whole predictive distribution).
    """

    def __init__(
        self,
        counts: NgramCounts,
        weights: dict[str, np.ndarray],
        k: float,
        cache_notes: int,
        background: NoteNgram | None = None,
    ) -> None:
        self.counts = counts
        self.weights = weights
        self.k = k
        self.cache_notes = cache_notes
        self.background = background
        self._scorer = _Scorer(counts, k)

    def without(self, counts: NgramCounts) -> NoteNgram:
        """The same model with `counts` (data it must not have seen, e.g. held-out pieces) taken out."""
        return NoteNgram(self.counts - counts, self.weights, self.k, self.cache_notes, self.background)

    def _columns(self, phase: str, c: _Contexts) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities of the targets of `phase` under every component (last axis), and their buckets."""
        scorer = self._scorer
        columns = [scorer.absolute(name, c) for name, spec in ABSOLUTE.items() if spec[0] == phase]
        if phase == "pitch":
            columns += [scorer.interval(name, c) for name in INTERVAL]
            columns.append(cache_probs(c.pitch, self.cache_notes, self.k))
        if self.background is not None:
            columns.append(self.background._mixed(phase, c))
        return np.stack(columns, axis=-1), scorer.bucket(phase, c)

    def _mixed(self, phase: str, c: _Contexts) -> np.ndarray:
        probs, buckets = self._columns(phase, c)
        return (probs * self.weights[phase][buckets]).sum(axis=-1)

    @classmethod
    def fit(
        cls,
        pieces: Sequence[Sequence[int]],
        *,
        groups: Sequence[int | str] | None = None,
        window_tokens: int = 1024,
        background: NoteNgram | None = None,
        background_holds_pieces: bool = False,
        k: float = 0.05,
        cache_notes: int = 64,
    ) -> NoteNgram:
        """Counts the training pieces and fits the interpolation weights on held-out ones.

        Args:
            pieces: Token ids of the training performances, in a fixed order.
            groups: The composition group of each piece. Whole groups (drawn in a fixed random order until a
                tenth of the windows is reached) are held out for the weights, so that no held-out
                performance has another performance of its composition among the counts (which would make
                long contexts look more reliable than they are on new music). Default: one group per piece.
            window_tokens: Window length (the model's context): counts and scores never cross a window start.
            background: A fitted n-gram of other training data mixed in (the base n-gram for a style n-gram).
                The weights can fall back on it entirely, so the result is never much worse than it.
            background_holds_pieces: `pieces` are part of the background's data; the held-out ones are then
                taken out of the background while the weights are fitted.
            k: Add-k constant of every component.
            cache_notes: Length of the pitch cache.

        Returns:
            The fitted model.

        Raises:
            ValueError: No training window.
        """
        windows = [piece_windows([ids], window_tokens) for ids in pieces]
        if not any(len(w) for w in windows):
            raise ValueError(f"No training piece holds a window of {window_tokens} tokens for the n-gram.")
        everything = np.concatenate(windows)
        if len(windows) == 1:  # one piece: hold out its last tenth of windows
            held_part = windows[0][max(1, len(windows[0]) * 9 // 10) :]
        else:
            held_part = np.concatenate([windows[i] for i in _held_out_pieces(windows, groups)])
        if len(held_part) == 0:
            held_part = everything[-1:]
        total = NgramCounts.count(everything)
        held_counts = NgramCounts.count(held_part)
        unseen_background = background
        if background is not None and background_holds_pieces:
            unseen_background = background.without(held_counts)
        fitting = cls(total - held_counts, {}, k, cache_notes, unseen_background)
        c = note_contexts(held_part)
        weights = {}
        for phase in PHASES:
            probs, buckets = fitting._columns(phase, c)
            probs, buckets = probs.reshape(-1, probs.shape[-1]), buckets.ravel()
            keep = np.linspace(0, len(buckets) - 1, min(len(buckets), _EM_TARGETS)).astype(np.int64)
            probs, buckets = probs[keep], buckets[keep]
            overall = _em(probs)
            table = np.tile(overall, (_BUCKETS, 1))
            for bucket in range(_BUCKETS):
                chosen = buckets == bucket
                if chosen.sum() >= 50:
                    table[bucket] = _em(probs[chosen])
            weights[phase] = table
        logger.info(
            "n-gram: %d training windows of %d tokens (%d held out for the weights)%s.",
            len(everything),
            window_tokens,
            len(held_part),
            " + background n-gram" if background is not None else "",
        )
        return cls(total, weights, k, cache_notes, background)

    def token_log_probs(self, windows: np.ndarray) -> np.ndarray:
        """Natural-log probability of every token after the first of each window: `(n, L - 1)`.

        Token `t` of a window is predicted from tokens `0..t-1` only, as a causal LM predicts it.
        """
        windows = np.asarray(windows, dtype=np.int64)
        c = note_contexts(windows)
        out = np.zeros((windows.shape[0], windows.shape[1] - 1))
        for offset, phase in enumerate(PHASES):
            positions = np.arange(4 if offset == 0 else offset, windows.shape[1], 4)
            out[:, positions - 1] = np.log(self._mixed(phase, c))
        return out

    def window_losses(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per window: summed nats over its predicted tokens, and the number of those tokens."""
        log_probs = self.token_log_probs(windows)
        return -log_probs.sum(axis=1), np.full(log_probs.shape[0], log_probs.shape[1], dtype=np.float64)

    def next_token_distribution(self, prefix: Sequence[int]) -> np.ndarray:
        """The model's probabilities of all 128 ids for the token after `prefix` (which starts a window).

        Scores each candidate in the position after `prefix` (padding the note with arbitrary legal values,
        which a causal model never reads), so it is the very computation `token_log_probs` performs.
        """
        prefix = [int(token) for token in prefix]
        if not prefix or prefix[0] != SEP_ID:
            raise ValueError("An n-gram window starts on a separator (127).")
        position = len(prefix)
        length = (position // 4 + 1) * 4
        candidates = np.tile(np.asarray(prefix + [0] * (length - position), dtype=np.int64), (VOCAB, 1))
        candidates[:, position] = np.arange(VOCAB)
        for pad in range(position + 1, length):
            candidates[:, pad] = (1, 1, 60, SEP_ID)[pad % 4 - 1] if pad % 4 else SEP_ID
        return np.exp(self.token_log_probs(candidates)[:, position - 1])


__all__ = ["NgramCounts", "NoteNgram", "note_contexts", "piece_windows"]
