"""Musical statistics of one continuation given its prompt: what a listener would notice first.

Per continuation (generated or real), all computed from the token ids:

* `notes_per_second`: notes over the time from the first onset to the last offset.
* `pitch_range`: highest minus lowest pitch (semitones).
* `polyphony`: mean number of notes sounding at each onset group (see `invariant_features.onset_groups`).
* `in_key_share`: share of notes inside the key estimated on the *prompt* (Krumhansl-Kessler); a major key's
  scale is its 7 pitch classes, a minor key's its natural and harmonic minor (8 pitch classes).
* `motif_reuse`: share of the continuation's interval 3-grams (4-note motifs, signed semitone steps in token
  order) that also occur in the prompt: does the music develop its own material?
* `repeated_4grams`: share of the continuation's interval 4-grams that occur more than once inside it
  (repetition; a looping model scores high).
* `dissonant_chord_pairs`: share of the note pairs sounding in one onset group (a chord) whose interval is a
  semitone (minor second, major seventh, minor ninth, ... : interval class 1) or a tritone (class 6).
* `outside_piano`: notes below A0 (21) or above C8 (108), which a piano cannot play.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from .invariant_features import estimate_key, notes_of, onset_groups

PIANO_LOW, PIANO_HIGH = 21, 108
MOTIF_INTERVALS = 3
REPEAT_INTERVALS = 4
#: Name of the copying statistic the runner adds (longest run found in the base style's training data).
COPY_STAT = "longest_copied_run"
STAT_NAMES: tuple[str, ...] = (
    "notes_per_second",
    "pitch_range",
    "polyphony",
    "in_key_share",
    "motif_reuse",
    "repeated_4grams",
    "dissonant_chord_pairs",
    "outside_piano",
)
_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10, 11)


def interval_ngrams(pitches: np.ndarray, n: int) -> list[tuple[int, ...]]:
    """Every run of `n` consecutive signed pitch steps."""
    steps = np.diff(np.asarray(pitches, dtype=np.int64)).tolist()
    return [tuple(steps[i : i + n]) for i in range(len(steps) - n + 1)]


def key_pitch_classes(prompt_pitches: Sequence[int]) -> set[int]:
    """Pitch classes of the scale of the key estimated on the prompt's pitches."""
    tonic, major, _ = estimate_key(prompt_pitches)
    return {(tonic + step) % 12 for step in (_MAJOR if major else _MINOR)}


def continuation_stats(prompt: Sequence[int], continuation: Sequence[int]) -> dict[str, float]:
    """The statistics of the module docstring for one continuation (NaN where undefined, e.g. no chords)."""
    prompt_rows, rows = notes_of(prompt), notes_of(continuation)
    nan = float("nan")
    if rows.shape[0] == 0:
        return {name: nan for name in STAT_NAMES} | {"outside_piano": 0.0}
    dt, dur, pitches = rows[:, 0], rows[:, 1], rows[:, 2]
    onsets = np.cumsum(dt) * 16.0
    offsets = onsets + dur * 32.0
    span_s = max(float(offsets.max() - onsets[0]), 32.0) / 1000.0
    group = onset_groups(dt)
    first = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    group_onsets = onsets[first]
    sounding = np.searchsorted(np.sort(onsets), group_onsets, side="right") - np.searchsorted(
        np.sort(offsets), group_onsets, side="right"
    )
    scale = key_pitch_classes(prompt_rows[:, 2]) if prompt_rows.shape[0] else set(range(12))
    prompt_motifs = set(interval_ngrams(prompt_rows[:, 2], MOTIF_INTERVALS))
    motifs = interval_ngrams(pitches, MOTIF_INTERVALS)
    grams = interval_ngrams(pitches, REPEAT_INTERVALS)
    counts = Counter(grams)
    pairs = dissonant = 0
    for g in np.unique(group):
        chord = pitches[group == g]
        if chord.size < 2:
            continue
        gaps = np.abs(chord[:, None] - chord[None, :])[np.triu_indices(chord.size, k=1)]
        pairs += gaps.size
        dissonant += int(np.isin(gaps % 12, (1, 11, 6)).sum())
    return {
        "notes_per_second": pitches.size / span_s,
        "pitch_range": float(pitches.max() - pitches.min()),
        "polyphony": float(sounding.mean()),
        "in_key_share": float(np.isin(pitches % 12, sorted(scale)).mean()),
        "motif_reuse": float(np.mean([m in prompt_motifs for m in motifs])) if motifs else nan,
        "repeated_4grams": float(np.mean([counts[g] > 1 for g in grams])) if grams else nan,
        "dissonant_chord_pairs": dissonant / pairs if pairs else nan,
        "outside_piano": float(((pitches < PIANO_LOW) | (pitches > PIANO_HIGH)).sum()),
    }


__all__ = [
    "COPY_STAT",
    "PIANO_HIGH",
    "PIANO_LOW",
    "STAT_NAMES",
    "continuation_stats",
    "interval_ngrams",
    "key_pitch_classes",
]
