"""Key-normalised, tempo-relative features of a note window: what the style classifier sees.

A style classifier that reads absolute key or absolute tempo can be fooled (a Chopin model that merely plays
in flat keys, or slowly, would "sound like Chopin"), and it can flatter or punish a model whose prompt sits
in an unusual key. So every feature here is invariant to transposition and to a uniform change of tempo:

* Pitch content is measured relative to the window's own key, estimated with the Krumhansl-Kessler
  profiles (24 keys; integer arithmetic, so a transposed window gets exactly the same rotated histogram),
  or through pitch differences only (melodic, bass and chord intervals, pitch classes above the bass,
  register spread measured from the lowest note). No feature reads an absolute pitch.
* Time enters only as ratios: polyphony at onsets, legato (longest note of a chord over the gap to the next
  chord), the spread of log inter-onset intervals (IOIs), the mean size of IOI changes and the share of
  silence. Scaling every dt and duration by a factor leaves them unchanged (up to floating-point rounding
  for a factor of 2, up to token rounding otherwise). No feature reads milliseconds.

*Onset groups* (chords) are the tokenizer's own: a note with dt 0 starts together with the previous one.
Rounding a tempo change to the token grid keeps dt 0 at 0 and any other dt above 0 (for factors from 0.5
up), so the grouping, and with it every pitch feature, is exactly the same after such a change. Finer
time statistics (IOI and duration histograms relative to the median IOI) were tried and dropped: they added
no accuracy on held-out windows but made the label change under a tempo change of x0.67 or x1.5, because
token rounding of short notes moves them across bins.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tokenization.gigapiano_notes import note_groups

SEP_ID = 127
PITCH_MIN, PITCH_MAX = 1, 126
FIELD_MAX = 126

#: Krumhansl-Kessler key profiles (C major / C minor), times 100 so that key scores are exact integers.
MAJOR_PROFILE = np.array([635, 223, 348, 233, 438, 409, 252, 519, 239, 366, 229, 288], dtype=np.int64)
MINOR_PROFILE = np.array([633, 268, 352, 538, 260, 353, 254, 475, 398, 269, 334, 317], dtype=np.int64)
#: Absolute melodic-interval bins (semitones): 0..12 one each, then wider.
MELODY_BINS = 14
#: Bass-interval bin edges (semitones, left-closed).
BASS_EDGES = (0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 13, np.inf)

_SCALE_STEPS = ((0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 11))  # major, harmonic minor


def _scale_masks() -> np.ndarray:
    masks = np.zeros((24, 12), dtype=np.int64)
    for mode, steps in enumerate(_SCALE_STEPS):
        for tonic in range(12):
            masks[12 * mode + tonic, [(tonic + s) % 12 for s in steps]] = 1
    return masks


SCALE_MASKS = _scale_masks()


def _names() -> list[str]:
    names = [f"key_pc_hist[{i}]" for i in range(12)]
    names += ["major_mode", "key_clarity", "pc_entropy", "scale_consistency", "ic_transition_entropy"]
    names += [f"melody_interval_hist[{i}]" for i in range(MELODY_BINS)] + ["melody_up_share"]
    names += ["melody_repeat_share"]
    names += [f"bass_interval_hist[{i}]" for i in range(len(BASS_EDGES) - 1)]
    names += [f"chord_ic_hist[{i}]" for i in range(12)] + ["chord_wide_share"]
    names += [f"above_bass_pc_hist[{i}]" for i in range(1, 12)]
    names += ["chord_size_mean", "chord_share", "chord3_share"]
    names += ["pitch_std", "pitch_range", "group_span_mean"]
    names += ["polyphony", "legato", "ioi_log_std", "ioi_change_mean", "silence_share"]
    return names


#: Names of the entries of `style_features`, in order.
STYLE_FEATURE_NAMES: tuple[str, ...] = tuple(_names())


# ----------------------------------------------------------------------------------------------------------
# transformations used to test the features' (and the classifier's) robustness
# ----------------------------------------------------------------------------------------------------------


def notes_of(ids: Sequence[int] | np.ndarray) -> np.ndarray:
    """`(n, 3)` int64 `(dt, dur, pitch)` rows of the well-formed notes of an id sequence."""
    return note_groups(np.asarray(ids, dtype=np.int64))


def _to_ids(rows: np.ndarray) -> list[int]:
    out = np.empty((len(rows), 4), dtype=np.int64)
    out[:, 0] = SEP_ID
    out[:, 1] = np.clip(rows[:, 0], 0, FIELD_MAX)
    out[:, 2] = np.clip(rows[:, 1], 1, FIELD_MAX)
    out[:, 3] = np.clip(rows[:, 2], PITCH_MIN, PITCH_MAX)
    return out.ravel().tolist()


def transpose(ids: Sequence[int], semitones: int) -> list[int]:
    """The notes moved by `semitones` (pitches clipped to 1..126)."""
    rows = notes_of(ids).copy()
    rows[:, 2] += semitones
    return _to_ids(rows)


def scale_tempo(ids: Sequence[int], factor: float) -> list[int]:
    """The notes played `factor` times as long (1.5 = slower): every dt and duration scaled and rounded.

    Each field is rounded on its own (to the nearest step), as a tokenizer would quantise the slower or
    faster performance note by note; dt is clipped to 0..126 and duration to 1..126. A dt of 0 (a chord)
    stays 0 and, for factors of 0.5 and more, any other dt stays positive.
    """
    rows = notes_of(ids).copy()
    rows[:, 0] = np.rint(rows[:, 0] * factor).astype(np.int64)
    rows[:, 1] = np.rint(rows[:, 1] * factor).astype(np.int64)
    return _to_ids(rows)


# ----------------------------------------------------------------------------------------------------------
# key
# ----------------------------------------------------------------------------------------------------------


def _key_matrix() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rotated profiles `(24, 12)` (integers) with each row's mean and centred norm."""
    rows, means, norms = [], [], []
    for profile in (MAJOR_PROFILE, MINOR_PROFILE):
        for tonic in range(12):
            rows.append(np.roll(profile, tonic))
            means.append(float(profile.sum()) / 12.0)
            norms.append(float(np.sqrt(float(((12 * profile - profile.sum()) ** 2).sum()))) / 12.0)
    return np.stack(rows), np.asarray(means), np.asarray(norms)


KEY_MATRIX, _KEY_MEANS, _KEY_NORMS = _key_matrix()


def key_scores(pc_counts: np.ndarray) -> np.ndarray:
    """Krumhansl-Schmuckler correlation of a pitch-class count vector with each of the 24 keys.

    Entries 0..11 are the major keys on tonic C..B, 12..23 the minor keys. The dot products are integers
    and the rest is the same arithmetic for every key, so transposing the counts permutes the scores exactly.
    """
    counts = np.asarray(pc_counts, dtype=np.int64)
    total = int(counts.sum())
    spread = float(np.sqrt(float(((12 * counts - total) ** 2).sum()))) / 12.0
    if spread == 0.0:
        return np.zeros(24)
    return ((KEY_MATRIX @ counts) - total * _KEY_MEANS) / (spread * _KEY_NORMS)


def estimate_key(pitches: Sequence[int] | np.ndarray) -> tuple[int, bool, float]:
    """`(tonic pitch class, is_major, correlation)` of the best of the 24 keys for these pitches.

    An empty or evenly spread set of pitches gets C major with correlation 0.
    """
    counts = np.bincount(np.asarray(pitches, dtype=np.int64) % 12, minlength=12)
    scores = key_scores(counts)
    best = int(np.argmax(scores))
    return best % 12, best < 12, float(scores[best])


# ----------------------------------------------------------------------------------------------------------
# features
# ----------------------------------------------------------------------------------------------------------


def _share_histogram(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    bins = len(edges) - 1
    if values.size == 0:
        return np.zeros(bins)
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 1)
    return np.bincount(index, minlength=bins) / values.size


def _entropy(counts: np.ndarray) -> float:
    """Entropy in bits, summed in sorted order so that any permutation of `counts` gives the same bits."""
    counts = np.sort(np.asarray(counts, dtype=np.float64).ravel())
    counts = counts[counts > 0]
    if counts.size == 0:
        return 0.0
    shares = counts / counts.sum()
    return float(-(shares * np.log2(shares)).sum())


def onset_groups(dt: np.ndarray) -> np.ndarray:
    """Group index of every note: a note with dt 0 joins the previous note's group (the tokenizer's chord)."""
    starts = np.ones(dt.size, dtype=bool)
    starts[1:] = dt[1:] > 0
    return np.cumsum(starts) - 1


def _pitch_features(pitches: np.ndarray, group: np.ndarray) -> list[float]:
    counts = np.bincount(pitches % 12, minlength=12)
    scores = key_scores(counts)
    best = int(np.argmax(scores))
    tonic = best % 12
    key_hist = np.roll(counts, -tonic) / pitches.size
    scale = int((SCALE_MASKS @ counts).max()) / pitches.size
    ic = (pitches - tonic) % 12
    transitions = np.bincount(ic[:-1] * 12 + ic[1:], minlength=144) if pitches.size > 1 else np.zeros(144)
    out = [*key_hist, float(best < 12), float(scores[best]), _entropy(counts), scale, _entropy(transitions)]

    first = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    top, low = np.maximum.reduceat(pitches, first), np.minimum.reduceat(pitches, first)
    melody = np.diff(top)
    out += list(_share_histogram(np.minimum(np.abs(melody), MELODY_BINS - 1), np.arange(MELODY_BINS + 1)))
    out += [
        float((melody > 0).mean()) if melody.size else 0.0,
        float((melody == 0).mean()) if melody.size else 0.0,
    ]
    out += list(_share_histogram(np.abs(np.diff(low)), BASS_EDGES))

    order = np.lexsort((pitches, group))
    sorted_pitches, sorted_groups = pitches[order], group[order]
    same = sorted_groups[1:] == sorted_groups[:-1]
    steps = np.diff(sorted_pitches)[same]
    steps = steps[steps > 0]
    chord_ic = np.bincount(steps % 12, minlength=12) / steps.size if steps.size else np.zeros(12)
    out += [*chord_ic, float((steps > 12).mean()) if steps.size else 0.0]
    # pitch classes above the bass of every chord (onset group with two or more pitch classes)
    above_bass = (pitches - low[group]) % 12
    in_chord = np.bincount(group)[group] >= 2
    voiced = np.bincount(above_bass[in_chord & (above_bass > 0)], minlength=12)[1:]
    out += list(voiced / voiced.sum()) if voiced.sum() else [0.0] * 11
    sizes = np.bincount(group)
    out += [float(sizes.mean()), float((sizes >= 2).mean()), float((sizes >= 3).mean())]
    relative = pitches - pitches.min()  # integer offsets: a transposition cannot change a single bit
    out += [float(relative.std()), float(relative.max()), float((top - low).mean())]
    return out


_TIME_FEATURES = 5


def _time_features(dt: np.ndarray, dur: np.ndarray, group: np.ndarray) -> list[float]:
    onsets = np.cumsum(dt)
    onsets = onsets - onsets[0]
    offsets = onsets + 2 * dur  # durations are 32 ms steps, dt 16 ms steps
    first = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    group_onsets = onsets[first]
    gaps = np.diff(group_onsets)
    if gaps.size == 0:
        return [0.0] * _TIME_FEATURES
    sorted_on, sorted_off = np.sort(onsets), np.sort(offsets)
    sounding = np.searchsorted(sorted_on, group_onsets, side="right") - np.searchsorted(
        sorted_off, group_onsets, side="right"
    )
    longest = np.maximum.reduceat(2 * dur, first)
    log_gaps = np.log2(gaps)
    # silence: the part of [first onset, last offset) where no note sounds
    end = float(offsets.max())
    order = np.argsort(onsets, kind="stable")
    reach = np.maximum.accumulate(offsets[order])
    silent = np.maximum(onsets[order][1:] - reach[:-1], 0).sum()
    return [
        float(sounding.mean()),
        float(np.mean(np.log2(longest[:-1] / gaps))),
        float(log_gaps.std()),
        float(np.abs(np.diff(log_gaps)).mean()) if gaps.size > 1 else 0.0,
        float(silent / end) if end > 0 else 0.0,
    ]


def style_features(ids: Sequence[int] | np.ndarray) -> np.ndarray:
    """The feature vector of one window (names in `STYLE_FEATURE_NAMES`); zeros for a window without notes.

    Args:
        ids: Token ids (`127, dt, dur, pitch` per note); malformed groups are skipped.

    Returns:
        A float64 vector, invariant to transposition and to a uniform tempo change (see the module docstring).
    """
    rows = notes_of(ids)
    if rows.shape[0] == 0:
        return np.zeros(len(STYLE_FEATURE_NAMES))
    dt, dur, pitches = rows[:, 0], rows[:, 1], rows[:, 2]
    group = onset_groups(dt)
    vector = np.asarray(_pitch_features(pitches, group) + _time_features(dt, dur, group), dtype=np.float64)
    return vector


def style_feature_matrix(windows: Sequence[Sequence[int]]) -> np.ndarray:
    """`style_features` of many windows, one row each."""
    if not windows:
        return np.zeros((0, len(STYLE_FEATURE_NAMES)))
    return np.stack([style_features(ids) for ids in windows])


__all__ = [
    "STYLE_FEATURE_NAMES",
    "estimate_key",
    "key_scores",
    "notes_of",
    "onset_groups",
    "scale_tempo",
    "style_feature_matrix",
    "style_features",
    "transpose",
]
