"""Training windows and the upstream chunk filter (gigapiano.data.windows, gigapiano.data.chunk_filter)."""

from __future__ import annotations

import gzip
import json
import random
from collections import Counter, defaultdict

import pytest
from datasets import Dataset, DatasetDict

from gigapiano.data.chunk_filter import (
    chunk_rejection_reason,
    ids_to_triples,
    keeps_window,
    upstream_chunk_verdicts,
)
from gigapiano.data.windows import make_windows, window_dataset

# Upstream's reason names in chunk_filter_synthetic.json / tokens_meta.json -> ours.
REFERENCE_REASONS = {
    "repetitive": "repetitive",
    "no_zero_time(melody)": "no_zero_time",
    "too_fast_or_slow": "too_fast_or_slow",
}
# tokens_meta.json keeps upstream's (Spanish) style names.
REFERENCE_STYLES = {"barroco": "baroque", "romanticistmo": "romantic", "vanguardias": "rachmaninoff"}


def _piece(n_notes: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    ids = []
    for _ in range(n_notes):
        ids += [127, rng.choice((0, 0, 3, 8, 20)), rng.randint(1, 126), rng.randint(21, 108)]
    return ids


@pytest.mark.parametrize(("length", "stride"), [(1024, None), (64, 32), (16, 4), (40, 100)])
def test_windows_start_on_a_separator_and_have_the_requested_length(length, stride):
    ids = _piece(300)
    windows = make_windows(ids, window_length=length, stride=stride)
    step = stride or length
    assert [start for start, _ in windows] == list(range(0, len(ids) - length + 1, step))
    assert windows, "a 1200-token piece must give at least one window"
    for start, window in windows:
        assert len(window) == length
        assert window[0] == 127 and window[::4] == [127] * (length // 4)
        assert window == ids[start : start + length]


def test_short_piece_gives_no_window():
    assert make_windows(_piece(10), window_length=64) == []


@pytest.mark.parametrize(
    ("length", "stride", "fragment"),
    [
        (1022, None, "window_length=1022"),
        (0, None, "window_length=0"),
        (64, 6, "window_stride=6"),
        (64, 0, "window_stride=0"),
    ],
)
def test_window_arguments_must_keep_whole_notes(length, stride, fragment):
    with pytest.raises(ValueError, match=fragment):
        make_windows(_piece(50), window_length=length, stride=stride)


def test_malformed_ids_are_rejected():
    ids = _piece(40)
    with pytest.raises(ValueError, match="not a sequence of"):
        make_windows(ids[1:], window_length=16)
    with pytest.raises(ValueError, match="expected the note separator"):
        ids_to_triples(ids[:4] + [1, 2, 3, 4])


def test_window_dataset_adds_labels_and_keeps_provenance():
    pieces = DatasetDict(
        {
            "train": Dataset.from_dict(
                {"midi_filename": ["a.midi", "b.midi"], "input_ids": [_piece(40, 1), _piece(9, 2)]}
            ),
            "validation": Dataset.from_dict({"midi_filename": ["c.midi"], "input_ids": [_piece(33, 3)]}),
        }
    )
    windows = window_dataset(pieces, window_length=32, stride=16)
    assert set(windows) == {"train", "validation"}
    train = windows["train"]
    # 160 tokens -> starts 0,16,...,128 = 9 windows; 36 tokens -> starts 0 = 1 window.
    assert Counter(train["midi_filename"]) == {"a.midi": 9, "b.midi": 1}
    assert train.features["input_ids"].feature.dtype == "int64"
    for row in train:
        assert (
            row["labels"] == row["input_ids"] and len(row["input_ids"]) == 32 and row["input_ids"][0] == 127
        )
    assert train["window_start"][:3] == [0, 16, 32]
    assert len(windows["validation"]) == (33 * 4 - 32) // 16 + 1


def test_window_dataset_requires_input_ids():
    with pytest.raises(ValueError, match="no `input_ids` column"):
        window_dataset(Dataset.from_dict({"midi_filename": ["a"]}), window_length=16)


def test_chunk_filter_reasons_in_upstream_order():
    chord_notes = [(0 if i % 2 else 4, 1 + i % 60, 30 + i % 70) for i in range(256)]
    assert chunk_rejection_reason(chord_notes) is None
    melody = [(4, d, p) for _, d, p in chord_notes]
    assert chunk_rejection_reason(melody) == "no_zero_time"
    repetitive = [(0, 1, 30 + i % 54) for i in range(256)]
    assert (
        chunk_rejection_reason(repetitive) == "repetitive"
    )  # also has no plausible speed: first reason wins
    too_fast = [(0, 1 + i % 60, 30 + i % 70) for i in range(256)]
    assert chunk_rejection_reason(too_fast) == "too_fast_or_slow"


def test_distinct_notes_count_whole_triples_not_pitches():
    # 62 distinct (dt, dur, pitch) triples over only 2 pitches: kept, because upstream counts triples.
    notes = [((i % 2) * 3, 1 + i % 31, 60 + i % 2) for i in range(256)]
    assert len(set(notes)) == 62
    assert len({p for _, _, p in notes}) == 2
    assert chunk_rejection_reason(notes) is None


def test_chunk_filter_on_windows_keeps_only_passing_windows():
    ids = _piece(600, seed=4)
    kept_starts = [start for start, _ in make_windows(ids, 1024, chunk_filter=True)]
    expected = [i * 1024 for i in upstream_chunk_verdicts(ids_to_triples(ids))[1]]
    assert kept_starts == expected
    melody = [t if i % 4 != 1 else 5 for i, t in enumerate(ids)]  # every dt = 5: no chord anywhere
    assert make_windows(melody, 1024, chunk_filter=True) == []
    assert not keeps_window(melody[:1024])


@pytest.fixture
def reference_dir(shared_dir):
    folder = shared_dir / "reference"
    if not (folder / "chunk_filter_synthetic.json").is_file():
        pytest.skip(f"needs the upstream reference files in {folder}")
    return folder


@pytest.mark.real_data
def test_chunk_filter_agrees_with_upstream_on_every_synthetic_case(reference_dir):
    cases = json.loads((reference_dir / "chunk_filter_synthetic.json").read_text())
    assert len(cases) == 10
    for name, case in cases.items():
        notes = case["melody_chords"]
        total, kept = upstream_chunk_verdicts(notes)
        assert (total, kept) == (case["total_chunks"], case["kept_chunk_indices"]), name
        reasons = Counter(chunk_rejection_reason(notes[i * 256 : (i + 1) * 256]) for i in range(total))
        expected = {
            REFERENCE_REASONS[key]: count for key, count in case["first_failing_reason"].items() if count
        }
        assert {k: v for k, v in reasons.items() if k} == expected, name
        # The same verdicts through the windowing path (tokens, 1024-token windows, no overlap).
        ids = [token for note in notes for token in (127, *note)]
        starts = [start // 1024 for start, _ in make_windows(ids, 1024, chunk_filter=True)]
        assert starts == case["kept_chunk_indices"], name


@pytest.mark.real_data
def test_chunk_filter_counts_per_style_equal_upstream(reference_dir):
    meta = json.loads((reference_dir / "tokens_meta.json").read_text())
    with gzip.open(reference_dir / "tokens.json.gz", "rt") as handle:
        tokens = json.load(handle)
    totals = defaultdict(lambda: [0, 0])
    for filename, ids in tokens.items():
        style = meta["files"][filename]["style"]
        windows = make_windows(ids, 1024, chunk_filter=True)
        total, kept = upstream_chunk_verdicts(ids_to_triples(ids))
        per_file = meta["chunk_filter"][style]["per_file"][filename]
        assert (total, kept) == (per_file["total"], per_file["kept_chunk_indices"]), filename
        assert [start // 1024 for start, _ in windows] == kept, filename
        totals[style][0] += total
        totals[style][1] += len(windows)
    for style, (total, kept) in totals.items():
        reference = meta["chunk_filter"][style]
        assert (total, kept) == (reference["total_chunks"], reference["kept_chunks"]), REFERENCE_STYLES[style]
    assert {REFERENCE_STYLES[s]: tuple(v) for s, v in totals.items()} == {
        "baroque": (413, 409),
        "romantic": (869, 869),
        "rachmaninoff": (776, 776),
    }
