"""Splitting by piece (gigapiano.data.splits)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gigapiano.data.maestro import MaestroPiece, read_maestro_csv
from gigapiano.data.splits import composition_key, split_pieces


def _pieces(n: int, titles: int | None = None) -> list[MaestroPiece]:
    titles = titles or n
    return [
        MaestroPiece("Composer", f"Work {i % titles}", "train", 2004, f"2004/file-{i:04d}.midi", 100.0)
        for i in range(n)
    ]


def _names(splits):
    return {split: [p.midi_filename for p in members] for split, members in splits.items()}


def test_splits_are_disjoint_complete_and_sized():
    pieces = _pieces(50)
    splits = split_pieces(pieces, validation_fraction=0.1, test_fraction=0.1, seed=0)
    names = _names(splits)
    assert set(names) == {"train", "validation", "test"}
    assert (len(names["train"]), len(names["validation"]), len(names["test"])) == (40, 5, 5)
    everything = names["train"] + names["validation"] + names["test"]
    assert sorted(everything) == sorted(p.midi_filename for p in pieces)


def test_split_is_stable_and_independent_of_input_order():
    pieces = _pieces(40)
    reference = _names(split_pieces(pieces, seed=7))
    shuffled = list(pieces)
    random.Random(1).shuffle(shuffled)
    assert _names(split_pieces(shuffled, seed=7)) == reference
    assert _names(split_pieces(pieces, seed=7)) == reference


def test_seed_changes_the_split():
    pieces = _pieces(40)
    assert _names(split_pieces(pieces, seed=1)) != _names(split_pieces(pieces, seed=2))


def test_fractions_are_configurable():
    splits = split_pieces(_pieces(20), validation_fraction=0.25, test_fraction=0.0, seed=3)
    assert (len(splits["train"]), len(splits["validation"]), len(splits["test"])) == (15, 5, 0)


def test_performances_of_one_composition_stay_together(fake_maestro_root):
    catalogue = read_maestro_csv(fake_maestro_root)
    for seed in range(20):
        splits = split_pieces(catalogue, validation_fraction=0.3, test_fraction=0.3, seed=seed)
        owners: dict[str, set[str]] = {}
        for split, members in splits.items():
            for piece in members:
                owners.setdefault(composition_key(piece), set()).add(split)
        assert len(owners) == 12  # 13 files: "Partita No. 2 in C Minor" / "in C minor" are one work
        assert all(len(where) == 1 for where in owners.values()), (seed, owners)


def test_split_by_maestro_follows_the_csv_column(fake_maestro_root):
    catalogue = read_maestro_csv(fake_maestro_root)
    splits = split_pieces(catalogue, split_by="maestro", seed=123)
    for split, members in splits.items():
        assert members and all(p.maestro_split == split for p in members)
    assert sum(len(m) for m in splits.values()) == len(catalogue)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"validation_fraction": 1.5}, "validation_fraction=1.5"),
        ({"test_fraction": -0.1}, "test_fraction=-0.1"),
        ({"validation_fraction": 0.5, "test_fraction": 0.5}, "leaves no training"),
        ({"split_by": "year"}, "split_by='year'"),
    ],
)
def test_bad_split_arguments_name_the_value(kwargs, fragment):
    with pytest.raises(ValueError) as info:
        split_pieces(_pieces(10), **kwargs)
    assert fragment in str(info.value)


def test_duplicate_pieces_are_rejected():
    pieces = _pieces(3)
    with pytest.raises(ValueError, match="file-0000"):
        split_pieces(pieces + pieces[:1])


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 80),
    titles=st.integers(1, 80),
    validation=st.floats(0, 0.45),
    test=st.floats(0, 0.45),
    seed=st.integers(0, 2**31),
)
def test_any_split_partitions_the_pieces_by_composition(n, titles, validation, test, seed):
    pieces = _pieces(n, min(titles, n))
    splits = split_pieces(pieces, validation_fraction=validation, test_fraction=test, seed=seed)
    files = [p.midi_filename for members in splits.values() for p in members]
    assert sorted(files) == sorted(p.midi_filename for p in pieces)
    groups = [{composition_key(p) for p in members} for members in splits.values()]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
