"""Music features of GIGA-Piano note sequences and distances between two sets of them: an `evaluate` module.

Load it offline by path: `evaluate.load("metrics/music_features")` compares a set of generated sequences with
a set of real ones; `evaluate.load("metrics/music_features", "features")` returns each sequence's features.
This file is self-contained (numpy only) because `evaluate` copies it into its module cache; the project's
`gigapiano.evaluation` package imports it by path, so the feature code exists in this one place.

Features of one piece or window (notes decoded the way `GigaPianoTokenizer` decodes: onsets accumulate
`dt * 16` ms, durations are `dur * 32` ms, malformed groups are skipped):

* `pitch_class_histogram` (12): share of notes per pitch class C, C#, ..., B.
* `pitch_range` (semitones, highest minus lowest pitch) and `pitch_mean` (MIDI pitch).
* `note_density`: notes per second over the span from the first onset to the last offset.
* `polyphony`: mean number of notes sounding at each distinct onset time (a note sounds on
  `[onset, offset)`, so every note counts at its own onset and the value is at least 1). Sampling at onsets
  rather than over the whole timeline keeps rests and long decays from pulling the value down.
* `ioi_histogram` (12): inter-onset intervals between consecutive *distinct* onset times (chord notes share
  an onset and add nothing), binned with `TIME_BIN_EDGES_MS`.
* `duration_histogram` (12): note durations binned with the same edges.
* `pitch_interval_histogram` (13): absolute pitch steps between consecutive notes in sequence order (chords
  are read high to low), binned with `INTERVAL_BIN_EDGES`: one bin per interval up to a fifth, then sixths,
  sevenths, the octave, up to two octaves, and wider.
* `scale_consistency`: the largest share of notes that fall in one of 24 scales: the 12 major and the 12
  harmonic minor scales. (A natural minor scale holds the same pitch classes as its relative major, so it
  would add nothing; the harmonic minor's raised seventh makes the 24 sets distinct.)
* `pitch_class_transition_entropy` (bits): Shannon entropy of the 12 x 12 distribution of
  (pitch class, next note's pitch class) over consecutive notes in sequence order (0 for a repeated note,
  at most log2(144) = 7.17).

Distances between a set P (predictions) and a set R (references), per feature, in the style of MGEval
(Yang & Lerch, 2018): each feature becomes a distance between two pieces (absolute difference of scalars,
Euclidean distance of histograms). The *intra-set* distances are those between pairs of distinct reference
pieces; the *inter-set* distances are those between every prediction and every reference. Both samples are
smoothed with a Gaussian kernel density estimate and the overlapping area of the two densities
(integral of their pointwise minimum, in [0, 1]) is reported. When P is drawn from the same distribution as R
a prediction sits among the references as closely as another reference does and the overlap is close to 1;
when P lies elsewhere the inter-set distances grow and the overlap falls towards 0. Comparing distances rather
than the raw feature values makes every feature, scalar or histogram, one number on a common [0, 1] scale and
rewards predictions that are as varied as the references. Next to it, `mad` is the plain mean absolute
difference between the feature means of the two sets (averaged over the bins of a histogram), in the
feature's own unit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import datasets
import evaluate
import numpy as np

SEP_ID = 127
MAX_FIELD = 126
TIME_STEP_MS = 16
DURATION_STEP_MS = 32

#: Bin edges (ms) of the inter-onset and duration histograms: left-closed bins, the last one open-ended. The
#: edges grow by alternating factors of 1.5 and 4/3 (about half an octave of tempo per bin): 64 ms is a fast
#: run, 128 ms a semiquaver and 512 ms a crotchet at 120 bpm.
TIME_BIN_EDGES_MS: tuple[float, ...] = (0, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, math.inf)
#: Bin edges (semitones) of the pitch-interval histogram: left-closed bins, the last one open-ended.
INTERVAL_BIN_EDGES: tuple[float, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 13, 25, math.inf)
#: Scalar features, in the order of `feature_vector`.
SCALAR_FEATURES: tuple[str, ...] = (
    "pitch_range",
    "pitch_mean",
    "note_density",
    "polyphony",
    "scale_consistency",
    "pitch_class_transition_entropy",
)
#: Histogram features and their number of bins, in the order of `feature_vector`.
HISTOGRAM_FEATURES: dict[str, int] = {
    "pitch_class_histogram": 12,
    "ioi_histogram": len(TIME_BIN_EDGES_MS) - 1,
    "duration_histogram": len(TIME_BIN_EDGES_MS) - 1,
    "pitch_interval_histogram": len(INTERVAL_BIN_EDGES) - 1,
}
FEATURE_NAMES: tuple[str, ...] = SCALAR_FEATURES + tuple(HISTOGRAM_FEATURES)

_MAJOR_STEPS = (0, 2, 4, 5, 7, 9, 11)
_HARMONIC_MINOR_STEPS = (0, 2, 3, 5, 7, 8, 11)


def _scale_masks() -> np.ndarray:
    """`(24, 12)` boolean masks: the 12 major scales, then the 12 harmonic minor scales (tonic C first)."""
    masks = np.zeros((24, 12), dtype=bool)
    for tonic in range(12):
        masks[tonic, [(tonic + step) % 12 for step in _MAJOR_STEPS]] = True
        masks[12 + tonic, [(tonic + step) % 12 for step in _HARMONIC_MINOR_STEPS]] = True
    return masks


SCALE_MASKS = _scale_masks()


# ----------------------------------------------------------------------------------------------------------
# ids -> notes
# ----------------------------------------------------------------------------------------------------------


def ids_to_note_array(ids: Sequence[int] | np.ndarray) -> np.ndarray:
    """Decodes GIGA-Piano ids to notes, as the project's tokenizer does, without importing it.

    A note is a run of exactly three ids in 0..126 between separators (127); any other run is skipped.

    Args:
        ids: A 1-D sequence of token ids.

    Returns:
        An `(n, 3)` float64 array of `(onset_ms, offset_ms, pitch)` rows in sequence order.
    """
    values = np.asarray(ids, dtype=np.int64).reshape(-1)
    if values.size == 0:
        return np.zeros((0, 3))
    separators = np.flatnonzero(values == SEP_ID)
    starts = np.concatenate(([0], separators + 1))
    ends = np.concatenate((separators, [values.size]))
    starts = starts[(ends - starts) == 3]
    rows = values[starts[:, None] + np.arange(3)] if starts.size else np.zeros((0, 3), dtype=np.int64)
    rows = rows[np.all((rows >= 0) & (rows <= MAX_FIELD), axis=1)]
    onsets = np.cumsum(rows[:, 0]) * TIME_STEP_MS
    offsets = onsets + rows[:, 1] * DURATION_STEP_MS
    return np.stack([onsets, offsets, rows[:, 2]], axis=1).astype(np.float64)


# ----------------------------------------------------------------------------------------------------------
# features of one piece
# ----------------------------------------------------------------------------------------------------------


def _histogram(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Normalised histogram (sums to 1, or all zeros when there are no values) over left-closed bins."""
    counts = np.bincount(np.searchsorted(edges, values, side="right") - 1, minlength=len(edges) - 1)
    counts = counts[: len(edges) - 1].astype(np.float64)
    total = counts.sum()
    return counts / total if total else counts


def _polyphony(onsets: np.ndarray, offsets: np.ndarray) -> float:
    """Mean number of notes sounding (`onset <= t < offset`) at each distinct onset time `t`."""
    times = np.unique(onsets)
    started = np.searchsorted(np.sort(onsets), times, side="right")
    ended = np.searchsorted(np.sort(offsets), times, side="right")
    return float(np.mean(started - ended))


def _transition_entropy(pitch_classes: np.ndarray) -> float:
    """Entropy in bits of the (pitch class, next pitch class) pairs of consecutive notes."""
    if pitch_classes.size < 2:
        return 0.0
    pairs = np.bincount(pitch_classes[:-1] * 12 + pitch_classes[1:], minlength=144).astype(np.float64)
    shares = pairs[pairs > 0] / pairs.sum()
    return float(-(shares * np.log2(shares)).sum())


def note_features(notes: np.ndarray | Sequence[Sequence[float]]) -> dict[str, Any]:
    """Features of one piece or window given as notes with absolute times (see the module docstring).

    Args:
        notes: `(n, 3)` rows of `(onset_ms, offset_ms, pitch)` in sequence order (chords high to low, as the
            tokenizer orders them; only the transition entropy depends on the order).

    Returns:
        A dict with every name of `FEATURE_NAMES`: floats for the scalars, lists for the histograms. A piece
        without notes gets zeros everywhere.
    """
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 3)
    if notes.shape[0] == 0:
        empty: dict[str, Any] = {name: 0.0 for name in SCALAR_FEATURES}
        empty.update({name: [0.0] * bins for name, bins in HISTOGRAM_FEATURES.items()})
        return empty
    onsets, offsets, pitches = notes[:, 0], notes[:, 1], notes[:, 2].astype(np.int64)
    pitch_classes = pitches % 12
    pc_histogram = np.bincount(pitch_classes, minlength=12) / pitches.size
    span_s = max(float(offsets.max() - onsets.min()), float(DURATION_STEP_MS)) / 1000.0
    distinct_onsets = np.unique(onsets)
    return {
        "pitch_range": float(pitches.max() - pitches.min()),
        "pitch_mean": float(pitches.mean()),
        "note_density": pitches.size / span_s,
        "polyphony": _polyphony(onsets, offsets),
        "scale_consistency": float((SCALE_MASKS.astype(np.float64) @ pc_histogram).max()),
        "pitch_class_transition_entropy": _transition_entropy(pitch_classes),
        "pitch_class_histogram": pc_histogram.tolist(),
        "ioi_histogram": _histogram(np.diff(distinct_onsets), TIME_BIN_EDGES_MS).tolist(),
        "duration_histogram": _histogram(offsets - onsets, TIME_BIN_EDGES_MS).tolist(),
        "pitch_interval_histogram": _histogram(np.abs(np.diff(pitches)), INTERVAL_BIN_EDGES).tolist(),
    }


def ids_features(ids: Sequence[int] | np.ndarray) -> dict[str, Any]:
    """`note_features` of a token id sequence (see `ids_to_note_array`)."""
    return note_features(ids_to_note_array(ids))


def feature_vector(features: dict[str, Any]) -> np.ndarray:
    """Flattens a feature dict into one vector: the scalars, then each histogram (`feature_vector_names`)."""
    parts = [np.asarray([features[name] for name in SCALAR_FEATURES], dtype=np.float64)]
    parts += [np.asarray(features[name], dtype=np.float64) for name in HISTOGRAM_FEATURES]
    return np.concatenate(parts)


def feature_vector_names() -> list[str]:
    """Names of the entries of `feature_vector`, e.g. `pitch_class_histogram[3]`."""
    names = list(SCALAR_FEATURES)
    for name, bins in HISTOGRAM_FEATURES.items():
        names += [f"{name}[{index}]" for index in range(bins)]
    return names


def feature_table(sequences: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
    """Features of many id sequences, one array per feature (`(n,)` scalars, `(n, bins)` histograms)."""
    rows = [ids_features(ids) for ids in sequences]
    table: dict[str, np.ndarray] = {}
    for name in SCALAR_FEATURES:
        table[name] = np.asarray([row[name] for row in rows], dtype=np.float64).reshape(-1)
    for name, bins in HISTOGRAM_FEATURES.items():
        table[name] = np.asarray([row[name] for row in rows], dtype=np.float64).reshape(-1, bins)
    return table


# ----------------------------------------------------------------------------------------------------------
# distances between two sets
# ----------------------------------------------------------------------------------------------------------

#: Largest number of distances kept per sample for the density estimate; bigger samples are reduced to evenly
#: spaced order statistics, which keeps their distribution (and the result deterministic).
MAX_DISTANCES = 2000
_GRID_POINTS = 2048


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of `(n, d)` and `(m, d)` arrays, as an `(n, m)` array."""
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=-1))


def intra_inter_distances(predictions: np.ndarray, references: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Intra-set distances of the references (distinct pairs) and inter-set distances of predictions to them.

    Args:
        predictions: `(n,)` or `(n, d)` feature values.
        references: `(m,)` or `(m, d)` feature values, `m >= 2`.

    Returns:
        `(intra, inter)`: 1-D arrays of `m (m - 1) / 2` and `n m` distances.
    """
    pred = np.asarray(predictions, dtype=np.float64).reshape(len(predictions), -1)
    ref = np.asarray(references, dtype=np.float64).reshape(len(references), -1)
    within = _pairwise(ref, ref)
    intra = within[np.triu_indices(len(ref), k=1)]
    return intra, _pairwise(pred, ref).reshape(-1)


def _thin(values: np.ndarray) -> np.ndarray:
    """At most `MAX_DISTANCES` evenly spaced order statistics of `values`."""
    if values.size <= MAX_DISTANCES:
        return values
    ordered = np.sort(values)
    return ordered[np.linspace(0, ordered.size - 1, MAX_DISTANCES).round().astype(np.int64)]


def _scott_bandwidth(values: np.ndarray, floor: float) -> float:
    """Scott's rule `std * n ** (-1/5)`, at least `floor` (a sample of equal values still has a width)."""
    return max(float(values.std()) * values.size ** (-0.2), floor)


def _kde(values: np.ndarray, bandwidth: float, grid: np.ndarray) -> np.ndarray:
    """Gaussian kernel density of `values` evaluated on `grid`."""
    z = (grid[:, None] - values[None, :]) / bandwidth
    return np.exp(-0.5 * z**2).sum(axis=1) / (values.size * bandwidth * math.sqrt(2 * math.pi))


def overlap_area(a: np.ndarray, b: np.ndarray) -> float:
    """Overlapping area of the Gaussian kernel density estimates of two samples, in [0, 1].

    Bandwidths follow Scott's rule per sample, floored at 2% of the pooled standard deviation so that a
    sample of identical values is a narrow bump rather than a spike the integration grid would miss.

    Args:
        a: 1-D sample.
        b: 1-D sample.

    Returns:
        `integral min(p_a, p_b)`; 1.0 when both samples hold one and the same value, NaN when one is empty.
    """
    a, b = _thin(np.asarray(a, dtype=np.float64)), _thin(np.asarray(b, dtype=np.float64))
    if a.size == 0 or b.size == 0:
        return float("nan")
    pooled = float(np.concatenate([a, b]).std())
    if pooled == 0.0:
        return 1.0
    floor = 0.02 * pooled
    width_a, width_b = _scott_bandwidth(a, floor), _scott_bandwidth(b, floor)
    low = min(a.min() - 5 * width_a, b.min() - 5 * width_b)
    high = max(a.max() + 5 * width_a, b.max() + 5 * width_b)
    points = int(min(max(_GRID_POINTS, 4 * (high - low) / min(width_a, width_b)), 8 * _GRID_POINTS))
    grid = np.linspace(low, high, points)
    density = np.minimum(_kde(a, width_a, grid), _kde(b, width_b, grid))
    return float(min(np.trapezoid(density, grid), 1.0))


def set_distances(
    predictions: dict[str, np.ndarray],
    references: dict[str, np.ndarray],
    features: Sequence[str] = FEATURE_NAMES,
) -> dict[str, float]:
    """Per-feature distances between two sets of pieces (see the module docstring).

    Args:
        predictions: `feature_table` of the predictions (at least one piece).
        references: `feature_table` of the references (at least two pieces, for intra-set distances).
        features: Which features to compare.

    Returns:
        `<feature>_overlap` (MGEval-style overlapping area, 1 = same distribution) and `<feature>_mad` (mean
        absolute difference of the set means) for every feature, plus `overlap_mean` over the features.

    Raises:
        ValueError: Too few pieces in either set.
    """
    n_pred = len(next(iter(predictions.values()))) if predictions else 0
    n_ref = len(next(iter(references.values()))) if references else 0
    if n_pred < 1 or n_ref < 2:
        raise ValueError(
            f"music_features needs at least 1 prediction and 2 references, got {n_pred} and {n_ref}."
        )
    result: dict[str, float] = {}
    overlaps = []
    for name in features:
        pred, ref = np.asarray(predictions[name]), np.asarray(references[name])
        intra, inter = intra_inter_distances(pred, ref)
        result[f"{name}_overlap"] = overlap_area(intra, inter)
        result[f"{name}_mad"] = float(np.mean(np.abs(pred.mean(axis=0) - ref.mean(axis=0))))
        overlaps.append(result[f"{name}_overlap"])
    result["overlap_mean"] = float(np.mean(overlaps))
    return result


# ----------------------------------------------------------------------------------------------------------
# the evaluate module
# ----------------------------------------------------------------------------------------------------------

_DESCRIPTION = """
Music features of GIGA-Piano token sequences (`127, dt, dur, pitch` per note): pitch-class histogram, pitch
range and mean, note density, polyphony, inter-onset, duration and pitch-interval histograms, scale
consistency and pitch-class transition entropy; and, for two sets of sequences, MGEval-style overlapping areas
of the intra-set and inter-set distance distributions per feature, with mean absolute differences of the
feature means.
"""

_CITATION = "Yang & Lerch (2018), On the evaluation of generative models in music, Neural Comput. Appl."

_KWARGS_DESCRIPTION = """
Args:
    predictions: default configuration: `list[list[list[int]]]`, one entry per comparison, each a *set* of
        pieces given as token ids (e.g. a model's generated continuations); `features` configuration:
        `list[list[int]]`, the pieces whose features are wanted.
    references (`list[list[list[int]]]`): default configuration only: per comparison, the set of real pieces
        to compare with (at least two pieces; the sets may differ in size from the predictions').
Returns:
    default configuration: `<feature>_overlap` in [0, 1] (1 = same distribution), `<feature>_mad`,
    `overlap_mean`, `num_predictions` and `num_references`: numbers for one comparison, lists (one entry per
    comparison) for several.
    `features` configuration: `features`, one dict of feature values per piece.
Example:
    >>> scale = [t for p in (60, 62, 64, 65, 67, 69, 71, 72) for t in (127, 16, 8, p)]
    >>> features = evaluate.load("metrics/music_features", "features")
    >>> features.compute(predictions=[scale])["features"][0]["pitch_range"]
    12.0
    >>> distances = evaluate.load("metrics/music_features")
    >>> distances.compute(predictions=[[scale, scale]], references=[[scale, scale]])["overlap_mean"]
    1.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MusicFeatures(evaluate.Metric):
    """Music features of note sequences and MGEval-style distances between two sets of them.

    `evaluate` stores inputs as equal-length columns, while a generated set and a real set rarely have the
    same size; so in the default configuration one example is a whole set of pieces.
    """

    def _info(self) -> evaluate.MetricInfo:
        piece = datasets.Sequence(datasets.Value("int16"))
        if self.config_name == "features":
            columns = {"predictions": piece}
        elif self.config_name == "default":
            columns = {"predictions": datasets.Sequence(piece), "references": datasets.Sequence(piece)}
        else:
            raise ValueError(
                f"music_features has the configurations 'default' (distances) and 'features', got "
                f"{self.config_name!r}."
            )
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(columns),
        )

    def _compute(self, predictions, references=None) -> dict[str, Any]:
        if self.config_name == "features":
            return {"features": [ids_features(ids) for ids in predictions]}
        rows = []
        for predicted_set, reference_set in zip(predictions, references, strict=True):
            row: dict[str, Any] = set_distances(feature_table(predicted_set), feature_table(reference_set))
            row["num_predictions"] = len(predicted_set)
            row["num_references"] = len(reference_set)
            rows.append(row)
        if len(rows) == 1:
            return rows[0]
        return {key: [row[key] for row in rows] for key in rows[0]}
