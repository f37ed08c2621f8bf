"""The `metrics/music_features` evaluate module: features of hand-made note lists, and set distances."""

from __future__ import annotations

import math
from pathlib import Path

import evaluate
import numpy as np
import pytest

from gigapiano.evaluation.features import feature_matrix, feature_names, music_features
from tokenization import GigaPianoTokenizer

METRIC_DIR = str(Path(__file__).resolve().parents[1] / "metrics" / "music_features")
M = music_features()


def ids(notes: list[tuple[int, int, int]]) -> list[int]:
    """`(dt, dur, pitch)` notes -> token ids."""
    return [token for note in notes for token in (127, *note)]


C_MAJOR = ids([(0 if i == 0 else 16, 8, pitch) for i, pitch in enumerate((60, 62, 64, 65, 67, 69, 71, 72))])
# C-E-G struck four times, 512 ms apart, each chord held 512 ms (chords are written high to low).
CHORDS = ids(
    [(32 if i and k == 0 else 0, 16, pitch) for i in range(4) for k, pitch in enumerate((67, 64, 60))]
)


def test_c_major_scale_has_the_expected_features():
    features = M.ids_features(C_MAJOR)
    assert features["scale_consistency"] == 1.0
    histogram = np.asarray(features["pitch_class_histogram"])
    assert histogram.sum() == pytest.approx(1.0)
    assert histogram[0] == pytest.approx(2 / 8)  # C4 and C5
    assert histogram[[2, 4, 5, 7, 9, 11]] == pytest.approx([1 / 8] * 6)
    assert histogram[[1, 3, 6, 8, 10]].sum() == 0
    assert features["pitch_range"] == 12
    assert features["pitch_mean"] == pytest.approx(np.mean([60, 62, 64, 65, 67, 69, 71, 72]))
    assert features["polyphony"] == 1.0  # each note ends as the next begins
    # 8 notes from 0 ms to the last offset 7 * 256 + 256 = 2048 ms.
    assert features["note_density"] == pytest.approx(8 / 2.048)
    ioi = np.asarray(features["ioi_histogram"])  # every IOI is 256 ms: the [256, 384) bin
    assert ioi[M.TIME_BIN_EDGES_MS.index(256)] == 1.0 and ioi.sum() == 1.0
    durations = np.asarray(features["duration_histogram"])
    assert durations[M.TIME_BIN_EDGES_MS.index(256)] == 1.0
    intervals = np.asarray(features["pitch_interval_histogram"])  # 2,2,1,2,2,2,1 semitones
    assert intervals[1] == pytest.approx(2 / 7) and intervals[2] == pytest.approx(5 / 7)
    # Seven distinct transitions, each once: log2(7) bits.
    assert features["pitch_class_transition_entropy"] == pytest.approx(math.log2(7))


def test_repeated_chord_polyphony_iois_and_entropy():
    features = M.ids_features(CHORDS)
    assert features["polyphony"] == 3.0
    assert features["pitch_range"] == 7
    assert features["note_density"] == pytest.approx(12 / 2.048)
    ioi = np.asarray(features["ioi_histogram"])  # chord notes share an onset; chords are 512 ms apart
    assert ioi[M.TIME_BIN_EDGES_MS.index(512)] == 1.0
    # Transitions G->E 4x, E->C 4x, C->G 3x.
    shares = np.asarray([4, 4, 3]) / 11
    assert features["pitch_class_transition_entropy"] == pytest.approx(-(shares * np.log2(shares)).sum())
    assert features["scale_consistency"] == 1.0


def test_held_bass_counts_in_polyphony_and_known_iois_fill_their_bins():
    # A bass note held 1024 ms under three 256 ms melody notes: two notes sound at each onset.
    held = ids([(0, 8, 72), (0, 32, 48), (16, 8, 74), (16, 8, 76)])
    assert M.ids_features(held)["polyphony"] == 2.0
    # Onsets 0, 64, 160, 288 ms: IOIs of 64, 96 and 128 ms land in three consecutive bins.
    iois = np.asarray(M.ids_features(ids([(0, 2, 60), (4, 2, 62), (6, 2, 64), (8, 2, 65)]))["ioi_histogram"])
    assert iois[1:4] == pytest.approx([1 / 3] * 3) and iois.sum() == pytest.approx(1.0)


def test_chromatic_scale_consistency_and_empty_input():
    chromatic = ids([(8, 4, 60 + k) for k in range(12)])
    assert M.ids_features(chromatic)["scale_consistency"] == pytest.approx(7 / 12)
    empty = M.ids_features([])
    assert empty["pitch_range"] == 0.0 and sum(empty["pitch_class_histogram"]) == 0.0
    assert feature_matrix([C_MAJOR, []]).shape == (2, len(feature_names()))


def test_decoding_matches_the_tokenizer_including_malformed_groups():
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 127, size=400)
    tokens[rng.random(400) < 0.3] = 127  # separators at random: many malformed groups
    expected = GigaPianoTokenizer().ids_to_timed_notes(tokens.tolist())
    decoded = M.ids_to_note_array(tokens)
    assert len(expected) > 5
    assert decoded.tolist() == [[n.onset_ms, n.offset_ms, n.pitch] for n in expected]


def test_feature_vector_matches_its_names():
    vector = M.feature_vector(M.ids_features(C_MAJOR))
    names = M.feature_vector_names()
    assert len(vector) == len(names)
    assert vector[names.index("scale_consistency")] == 1.0
    assert vector[names.index("pitch_class_histogram[0]")] == pytest.approx(0.25)


def _random_pieces(seed: int, low: int, high: int, dt: int, count: int = 16) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [
        ids(
            [
                (int(rng.integers(0, dt)), int(rng.integers(1, 20)), int(rng.integers(low, high)))
                for _ in range(40)
            ]
        )
        for _ in range(count)
    ]


def test_overlap_is_one_for_identical_sets_and_near_zero_for_disjoint_ones():
    pieces = _random_pieces(1, 40, 80, 20)
    same = M.set_distances(M.feature_table(pieces), M.feature_table(pieces))
    for name in M.FEATURE_NAMES:
        assert same[f"{name}_overlap"] > 0.8, name
        assert same[f"{name}_mad"] == pytest.approx(0.0, abs=1e-12)
    # Low, slow pieces against high, fast ones: the register and tempo features do not overlap at all.
    low = M.feature_table(_random_pieces(2, 30, 50, 60))
    high = M.feature_table(_random_pieces(3, 80, 100, 4))
    apart = M.set_distances(low, high)
    for name in ("pitch_mean", "note_density", "ioi_histogram"):
        assert apart[f"{name}_overlap"] < 0.05, name
    assert apart["pitch_mean_mad"] > 30
    assert apart["overlap_mean"] < same["overlap_mean"] - 0.3


def test_overlap_area_edge_cases():
    rng = np.random.default_rng(0)
    sample = rng.normal(size=500)
    assert M.overlap_area(sample, sample) == pytest.approx(1.0, abs=1e-6)
    assert M.overlap_area(sample, sample + 20) < 1e-3
    assert 0.3 < M.overlap_area(sample, sample + 1) < 0.8
    assert M.overlap_area(np.zeros(5), np.zeros(7)) == 1.0
    assert math.isnan(M.overlap_area(np.zeros(0), sample))
    with pytest.raises(ValueError, match="at least 1 prediction and 2 references"):
        M.set_distances(M.feature_table([C_MAJOR]), M.feature_table([C_MAJOR]))


def test_evaluate_module_loads_offline_by_path_in_both_configurations():
    features = evaluate.load(METRIC_DIR, "features").compute(predictions=[C_MAJOR, CHORDS])["features"]
    assert features[0] == M.ids_features(C_MAJOR) and features[1]["polyphony"] == 3.0
    distances = evaluate.load(METRIC_DIR)
    pieces = _random_pieces(4, 40, 80, 20, count=6)
    one = distances.compute(predictions=[pieces[:2]], references=[pieces])  # sets of different sizes
    assert one["num_predictions"] == 2 and one["num_references"] == 6
    assert one == pytest.approx(
        {
            **M.set_distances(M.feature_table(pieces[:2]), M.feature_table(pieces)),
            "num_predictions": 2,
            "num_references": 6,
        }
    )
    two = distances.compute(predictions=[pieces[:2], [C_MAJOR]], references=[pieces, [C_MAJOR, CHORDS]])
    assert two["overlap_mean"][0] == pytest.approx(one["overlap_mean"]) and len(two["overlap_mean"]) == 2
    with pytest.raises(ValueError, match="configurations"):
        evaluate.load(METRIC_DIR, "nonsense")
