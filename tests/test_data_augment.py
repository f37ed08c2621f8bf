"""On-the-fly pitch transposition (gigapiano.data.augment)."""

from __future__ import annotations

import pickle

import pytest
from datasets import Dataset, DatasetDict
from hypothesis import given, settings
from hypothesis import strategies as st

from gigapiano.data.augment import (
    RandomTranspose,
    add_transposition,
    allowed_shifts,
    pitch_positions,
    transpose_ids,
)

notes = st.lists(
    st.tuples(st.integers(0, 126), st.integers(1, 126), st.integers(1, 126)), min_size=1, max_size=64
)


def _ids(note_list):
    return [token for note in note_list for token in (127, *note)]


@settings(max_examples=200, deadline=None)
@given(note_list=notes, max_semitones=st.integers(0, 130), seed=st.integers(0, 2**32 - 1))
def test_transposition_keeps_pitches_in_range_and_timing_untouched(note_list, max_semitones, seed):
    ids = _ids(note_list)
    batch = {"input_ids": [ids], "labels": [list(ids)], "midi_filename": ["x.midi"]}
    out = RandomTranspose(max_semitones, seed=seed)(batch)
    new = out["input_ids"][0]
    assert len(new) == len(ids)
    assert new[0::4] == ids[0::4]  # separators
    assert new[1::4] == ids[1::4]  # dt
    assert new[2::4] == ids[2::4]  # durations
    assert all(1 <= p <= 126 for p in new[3::4])
    shifts = {b - a for a, b in zip(ids[3::4], new[3::4], strict=True)}
    assert len(shifts) == 1 and abs(shifts.pop()) <= max_semitones
    assert out["labels"][0] == new
    assert out["midi_filename"] == ["x.midi"]


def test_allowed_shifts_clip_to_the_piano_range():
    ids = _ids([(0, 5, 120), (3, 5, 10)])
    assert allowed_shifts(ids, 12) == (-9, 6)
    assert allowed_shifts(ids, 0) == (0, 0)
    assert allowed_shifts([], 5) == (0, 0)


def test_transpose_ids_refuses_to_leave_the_range():
    ids = _ids([(0, 5, 125)])
    assert transpose_ids(ids, 1) == _ids([(0, 5, 126)])
    with pytest.raises(ValueError, match="gives 127, outside 1..126"):
        transpose_ids(ids, 2)


def test_labels_keep_ignore_index_and_follow_input_ids():
    ids = _ids([(0, 5, 60), (2, 5, 64)])
    labels = list(ids)
    labels[3] = -100
    out = transpose_ids(labels, 3, positions=pitch_positions(ids))
    assert out[3] == -100 and out[7] == 67


def test_windows_not_starting_on_a_separator_are_handled():
    ids = _ids([(0, 5, 60), (2, 5, 64)])[2:]  # [dur, pitch, 127, dt, dur, pitch]
    assert pitch_positions(ids) == [5]
    assert transpose_ids(ids, 2)[1] == ids[1]  # the orphan pitch is not recognisable and left alone


def test_seeded_transform_is_reproducible_and_picklable():
    batch = {"input_ids": [_ids([(0, 5, 60 + i)]) for i in range(20)]}
    first = RandomTranspose(6, seed=1)(batch)["input_ids"]
    assert RandomTranspose(6, seed=1)(batch)["input_ids"] == first
    assert RandomTranspose(6, seed=2)(batch)["input_ids"] != first
    clone = pickle.loads(pickle.dumps(RandomTranspose(6, seed=1)))
    assert clone(batch)["input_ids"] == first
    with pytest.raises(ValueError, match="max_semitones=-1"):
        RandomTranspose(-1)


def test_only_the_training_split_is_augmented():
    window = _ids([(0, 5, 60 + i % 12) for i in range(16)])
    data = DatasetDict(
        {
            split: Dataset.from_dict({"input_ids": [window] * 30, "labels": [window] * 30})
            for split in ("train", "validation", "test")
        }
    )
    augmented = add_transposition(data, max_semitones=5, seed=0)
    train_rows = augmented["train"][:]
    assert any(row != window for row in train_rows["input_ids"])
    assert train_rows["labels"] == train_rows["input_ids"]
    for split in ("validation", "test"):
        assert augmented[split][:]["input_ids"] == [window] * 30
    assert data["train"][:]["input_ids"] == [window] * 30  # the input is not modified
    assert add_transposition(data, 0) is data
    with pytest.raises(ValueError, match="No split 'training'"):
        add_transposition(data, 3, split="training")
