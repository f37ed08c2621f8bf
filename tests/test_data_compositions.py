"""Which performances are one composition (gigapiano.data.compositions) and how splits keep them whole.

The unit tests build catalogues and token ids by hand; the ``real_data`` tests run on the full MAESTRO
folder ``../shared/maestro/maestro-v3.0.0`` (its tokenisation is done once per session, ~10-20 s) and on
the thesis subset ``../shared/maestro-subset/maestro-v3.0.0``.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from pathlib import Path

import pytest

from gigapiano.data import build_style_dataset, split_pieces
from gigapiano.data.build import catalogue_groups
from gigapiano.data.compositions import (
    MAX_RUN_SPREAD,
    MIN_SHARED_RUNS,
    RUN_LENGTH,
    catalogue_numbers,
    composition_groups,
    composition_safe_maestro_split,
    folded_title,
    pitch_runs,
)
from gigapiano.data.maestro import MaestroPiece, read_maestro_csv

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"
FULL_MAESTRO = SHARED_DIR / "maestro" / "maestro-v3.0.0"
MAESTRO_SUBSET = SHARED_DIR / "maestro-subset" / "maestro-v3.0.0"

BACH = "Johann Sebastian Bach"
CHOPIN = "Frédéric Chopin"


def _piece(composer: str, title: str, name: str, split: str = "train") -> MaestroPiece:
    return MaestroPiece(composer, title, split, 2004, f"2004/{name}.midi", 100.0)


def _ids(pitches) -> list[int]:
    """Token ids ``[127, dt, dur, pitch]`` of a melody (timing is irrelevant to pitch runs)."""
    ids: list[int] = []
    for pitch in pitches:
        ids += [127, 10, 20, int(pitch)]
    return ids


def _melody(seed: int, length: int = 200) -> list[int]:
    """A random melody: every 16-note run of it is varied (many pitches and intervals) and its own."""
    rng = random.Random(seed)
    return [rng.randint(36, 96) for _ in range(length)]


def _same_group(groups: dict[str, int], *pieces: MaestroPiece) -> bool:
    return len({groups[p.midi_filename] for p in pieces}) == 1


# --------------------------------------------------------------------------------------------------------
# Titles and catalogue numbers.
# --------------------------------------------------------------------------------------------------------


def test_folded_title_makes_enharmonic_keys_equal_but_keeps_modes_apart():
    sharp = folded_title("Prelude and Fugue in C-sharp Major, WTC I")
    assert sharp == folded_title("Prelude and Fugue in D-flat major, WTC I")
    assert sharp == folded_title("Prelude and Fugue in C sharp major, WTC I")
    assert sharp == folded_title("Prelude  and Fugue in C-Sharp Major,  WTC I")
    assert folded_title("Étude in A-flat Major") == folded_title("Etude in G-sharp major")
    assert sharp != folded_title("Prelude and Fugue in C-sharp Minor, WTC I")
    assert folded_title("Ballade in F Major") != folded_title("Ballade in F Minor")
    assert folded_title("Ballade in F Major") != folded_title("Ballade in F-sharp Major")


@pytest.mark.parametrize(
    ("title", "items", "sets"),
    [
        ("Prelude Op. 23/4", ["op23.4"], []),
        ("Preludes Op. 23, Nos. 2, 4 and 5", ["op23.2", "op23.4", "op23.5"], []),
        ("Moments Musicaux, Op. 16", [], ["op16"]),
        ("Etudes-Tableaux Opus 39", [], ["op39"]),
        ("Prelude and Fugue in C-sharp Major, WTC I, BWV 848", ["bwv848"], []),
        ("Sonata in F Major, K280", ["k280"], []),
        ("Sonata in A Major, KV 331", ["k331"], []),
        ("Impromptu Op. 90 No. 4 in A-flat Major, D. 899", ["d899", "op90.4"], []),
        ("Ballade No. 1 in G Minor", [], []),
    ],
)
def test_catalogue_numbers(title, items, sets):
    found_items, found_sets = catalogue_numbers(title)
    assert sorted(found_items) == sorted(items) and found_sets == sets


@pytest.mark.xfail(
    strict=True,
    reason="reported bug: the '1' of '1st Movement' is read as a second item number (op31.1); fixing it "
    "moves 7 Beethoven performances of the base model's split (train -> test), so the lead decides",
)
def test_catalogue_numbers_ignore_movement_ordinals():
    assert catalogue_numbers("Sonata No. 17 in D Minor, Op. 31 No. 2, 1st Movement") == (["op31.2"], [])


# --------------------------------------------------------------------------------------------------------
# Groups from titles and catalogue numbers.
# --------------------------------------------------------------------------------------------------------


def test_groups_link_enharmonic_titles_and_shared_bwv_numbers():
    pieces = [
        _piece(BACH, "Prelude and Fugue in C-sharp Major, WTC I, BWV 848", "a"),
        _piece(BACH, "Prelude and Fugue in D-flat major, WTC I, BWV 848", "b"),
        _piece(BACH, "Prelude & Fugue, BWV 848", "c"),  # only the number in common
        _piece(BACH, "Prelude and Fugue in C-sharp Major, WTC I", "d"),  # only the (enharmonic) title
        _piece(BACH, "Prelude and Fugue in D-flat Major, WTC I", "e"),
        _piece(BACH, "Prelude and Fugue in C-sharp Minor, WTC I", "f"),  # another mode: another work
        _piece(BACH, "Partita No. 2 in C Minor, BWV 826", "g"),
    ]
    groups = composition_groups(pieces)
    assert _same_group(groups, *pieces[:3]) and _same_group(groups, *pieces[3:5])
    assert len({groups[p.midi_filename] for p in pieces}) == 4  # notes, not titles, join d and e to a
    # Ids are the first member's index in file-name order: stable, whatever order the pieces come in.
    assert composition_groups(list(reversed(pieces))) == groups
    assert groups["2004/a.midi"] == 0 and groups["2004/e.midi"] == 3


def test_a_whole_opus_links_all_its_items_but_items_stay_apart_without_it():
    rachmaninoff = "Sergei Rachmaninoff"
    items = [
        _piece(rachmaninoff, "Prelude Op. 23/4", "a"),
        _piece(rachmaninoff, "Prelude in D Major, Op. 23, No. 4", "b"),
        _piece(rachmaninoff, "Prelude Op. 23, No. 2", "c"),
        _piece(rachmaninoff, "Preludes Op. 23, Nos. 2, 4 and 5", "d"),
        _piece(rachmaninoff, "Prelude Op. 23 No. 7", "e"),
        _piece(rachmaninoff, "Prelude Op. 32 No. 5", "f"),
    ]
    groups = composition_groups(items)
    assert _same_group(groups, *items[:4])  # "Nos. 2, 4 and 5" joins No. 2 and No. 4
    assert not _same_group(groups, items[0], items[4]) and not _same_group(groups, items[0], items[5])
    complete = _piece(rachmaninoff, "Preludes, Op. 23", "g")
    groups = composition_groups([*items, complete])
    assert _same_group(groups, *items[:5], complete)  # the complete set contains every Op. 23 prelude
    assert not _same_group(groups, items[0], items[5])
    # Moments Musicaux Op. 16 as a set and two of its numbers: one group.
    moments = [
        _piece(rachmaninoff, "Moments Musicaux, Op. 16", "h"),
        _piece(rachmaninoff, "Moment Musical, Op. 16, No.4", "i"),
        _piece(rachmaninoff, "Moment Musicaux, Op. 16 No. 5", "j"),
    ]
    assert _same_group(composition_groups(moments), *moments)


def test_titles_and_numbers_link_only_performances_of_one_composer():
    pieces = [
        _piece(CHOPIN, "Ballade No. 1 in G Minor, Op. 23", "a"),
        _piece("Sergei Rachmaninoff", "Prelude Op. 23/4", "b"),
        _piece("Sergei Rachmaninoff", "Preludes, Op. 23", "c"),
        _piece("Franz Liszt", "Sonata in B Minor", "d"),
        _piece("Frédéric Chopin", "Sonata in B Minor", "e"),
    ]
    groups = composition_groups(pieces)
    assert len(set(groups.values())) == 4
    assert _same_group(groups, pieces[1], pieces[2])


def test_an_arrangement_shares_compositions_with_each_credited_composer():
    original = _piece(BACH, "Chaconne in D minor", "a")
    arranged = _piece(f"{BACH} / Ferruccio Busoni", "Chaconne in D Minor", "b")
    other = _piece("Ferruccio Busoni", "Chaconne in D Minor", "c")
    groups = composition_groups([original, arranged, other])
    assert _same_group(groups, original, arranged, other)


# --------------------------------------------------------------------------------------------------------
# Groups from shared pitch runs.
# --------------------------------------------------------------------------------------------------------


def test_pitch_runs_skip_scales_arpeggios_and_trills():
    assert len(pitch_runs(_ids(_melody(0, 40)))) == 40 - RUN_LENGTH + 1
    assert len(pitch_runs(_ids(_melody(0, RUN_LENGTH - 1)))) == 0
    c_major = [0, 2, 4, 5, 7, 9, 11]
    scale = [36 + 12 * octave + step for octave in range(4) for step in c_major]
    arpeggio = [36 + 12 * octave + step for octave in range(6) for step in (0, 4, 7)]
    trill = [60, 62] * 20
    for run in (scale, arpeggio, trill, scale[::-1]):
        assert len(pitch_runs(_ids(run))) == 0


def _performances(composers, passage, *, shared_length=None):
    """One performance per composer: its own random melody with ``passage`` in the middle."""
    pieces, ids = [], {}
    for index, composer in enumerate(composers):
        piece = _piece(composer, f"Untitled work {index}", f"p{index:02d}")
        melody = _melody(100 + index)
        pieces.append(piece)
        ids[piece.midi_filename] = _ids(melody[:90] + passage[:shared_length] + melody[90:])
    return pieces, ids


def test_shared_pitch_runs_link_differently_titled_performances():
    passage = _melody(7, 40)  # 25 shared runs of 16 notes
    pieces, ids = _performances([CHOPIN, CHOPIN, CHOPIN], passage)
    unrelated = _piece(CHOPIN, "Something else", "z")
    ids[unrelated.midi_filename] = _ids(_melody(999))
    groups = composition_groups([*pieces, unrelated], ids)
    assert _same_group(groups, *pieces) and not _same_group(groups, pieces[0], unrelated)
    assert len(set(composition_groups([*pieces, unrelated]).values())) == 4  # titles alone: all apart


def test_shared_pitch_runs_need_min_shared_runs():
    passage = _melody(7, 40)
    enough = RUN_LENGTH + MIN_SHARED_RUNS - 1  # this many notes hold MIN_SHARED_RUNS runs
    pieces, ids = _performances([CHOPIN, CHOPIN], passage, shared_length=enough)
    assert _same_group(composition_groups(pieces, ids), *pieces)
    pieces, ids = _performances([CHOPIN, CHOPIN], passage, shared_length=enough - 1)
    assert not _same_group(composition_groups(pieces, ids), *pieces)


def test_shared_pitch_runs_do_not_link_different_composers():
    pieces, ids = _performances([CHOPIN, "Franz Liszt"], _melody(7, 40))
    assert not _same_group(composition_groups(pieces, ids), *pieces)


def test_shared_scales_arpeggios_and_trills_do_not_link():
    c_major = [0, 2, 4, 5, 7, 9, 11]
    scale = [36 + 12 * octave + step for octave in range(5) for step in c_major]
    arpeggio = [36 + 12 * octave + step for octave in range(5) for step in (0, 3, 7)]
    for passage in (scale, scale[::-1], arpeggio, [60, 62] * 20):
        pieces, ids = _performances([CHOPIN, CHOPIN], passage)
        assert not _same_group(composition_groups(pieces, ids), *pieces), passage


def test_a_passage_common_to_many_performances_is_no_evidence():
    passage = _melody(7, 40)
    pieces, ids = _performances([CHOPIN] * (MAX_RUN_SPREAD + 1), passage)
    assert len(set(composition_groups(pieces, ids).values())) == len(pieces)
    pieces, ids = _performances([CHOPIN] * MAX_RUN_SPREAD, passage)
    assert len(set(composition_groups(pieces, ids).values())) == 1


# --------------------------------------------------------------------------------------------------------
# Splits that keep groups whole.
# --------------------------------------------------------------------------------------------------------


def test_composition_safe_maestro_split_moves_a_spanning_group_to_its_majority():
    pieces = [
        _piece(BACH, "Partita No. 2, BWV 826", "a", "train"),
        _piece(BACH, "Partita No. 2 in C Minor, BWV 826", "b", "train"),
        _piece(BACH, "Partita No. 2 in C minor, BWV 826", "c", "test"),
        _piece(BACH, "French Suite No. 5, BWV 816", "d", "validation"),  # alone: stays
        _piece(BACH, "Toccata, BWV 914", "e", "train"),  # a tie goes to test
        _piece(BACH, "Toccata in E Minor, BWV 914", "f", "test"),
        _piece(BACH, "English Suite No. 3, BWV 808", "g", "train"),  # a tie goes to validation
        _piece(BACH, "English Suite No. 3, BWV 808", "h", "validation"),
        _piece(BACH, "Invention No. 1, BWV 772", "i", "validation"),  # test beats validation
        _piece(BACH, "Invention No. 1, BWV 772", "j", "test"),
    ]
    assignment = composition_safe_maestro_split(pieces, composition_groups(pieces))
    moved = {name[5]: split for name, split in assignment.items()}
    assert moved == {
        "a": "train", "b": "train", "c": "train", "d": "validation", "e": "test", "f": "test",
        "g": "validation", "h": "validation", "i": "test", "j": "test",
    }  # fmt: skip


def _grouped_catalogue(seed: int, n_groups: int = 30) -> tuple[list[MaestroPiece], dict[str, int]]:
    rng = random.Random(seed)
    pieces, groups = [], {}
    for group in range(n_groups):
        for member in range(rng.choice((1, 1, 2, 3, 5))):
            split = rng.choice(("train", "train", "train", "validation", "test"))
            piece = _piece(f"Composer {group % 4}", f"Work {group}-{member}", f"g{group:02d}m{member}", split)
            pieces.append(piece)
            groups[piece.midi_filename] = group
    return pieces, groups


def _splits_of_groups(splits, groups) -> dict[int, set[str]]:
    where: dict[int, set[str]] = defaultdict(set)
    for split, members in splits.items():
        for piece in members:
            where[groups[piece.midi_filename]].add(split)
    return where


@pytest.mark.parametrize("split_by", ["piece", "maestro"])
def test_split_pieces_keeps_every_group_whole(split_by):
    for seed in range(10):
        pieces, groups = _grouped_catalogue(seed)
        splits = split_pieces(pieces, split_by=split_by, groups=groups, seed=seed, validation_fraction=0.2)
        assert sorted(p.midi_filename for m in splits.values() for p in m) == sorted(groups)
        assert all(len(where) == 1 for where in _splits_of_groups(splits, groups).values()), seed
        assert splits["train"] and splits["validation"] and splits["test"]


def test_split_by_maestro_votes_over_the_catalogue_so_selections_agree():
    pieces, groups = _grouped_catalogue(3)
    whole = split_pieces(pieces, split_by="maestro", groups=groups)
    side = {p.midi_filename: split for split, members in whole.items() for p in members}
    for composer in range(4):
        selection = [p for p in pieces if p.composer == f"Composer {composer}"][::2]  # part of some groups
        splits = split_pieces(selection, split_by="maestro", groups=groups, catalogue=pieces)
        assert all(side[p.midi_filename] == split for split, members in splits.items() for p in members)


def test_split_pieces_needs_a_group_for_every_piece():
    pieces, groups = _grouped_catalogue(0)
    del groups[pieces[0].midi_filename]
    for split_by in ("piece", "maestro"):
        with pytest.raises(ValueError, match="no composition group"):
            split_pieces(pieces, split_by=split_by, groups=groups)
    with pytest.raises(ValueError, match="resolved"):
        split_pieces(pieces, split_by="auto")


# --------------------------------------------------------------------------------------------------------
# The real MAESTRO catalogue.
# --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def real_data_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tokenisation cache for all real-data tests of this module (the full folder takes ~10-20 s)."""
    return tmp_path_factory.mktemp("compositions-cache")


@pytest.fixture(scope="session")
def full_maestro(real_data_cache):
    """``(root, catalogue, groups)`` of the full MAESTRO v3.0.0 folder; skips when it is absent."""
    if not (FULL_MAESTRO / "maestro-v3.0.0.csv").is_file():
        pytest.skip(f"needs the full MAESTRO v3.0.0 folder at {FULL_MAESTRO} (absent on this machine)")
    tokenization = pytest.importorskip("tokenization", reason="needs the project's tokenizer")
    catalogue = read_maestro_csv(FULL_MAESTRO)
    groups = catalogue_groups(
        catalogue,
        FULL_MAESTRO,
        tokenizer=tokenization.GigaPianoTokenizer(),
        cache_dir=real_data_cache,
        num_proc=2,
    )
    return FULL_MAESTRO, catalogue, groups


def _group_of(full_maestro, composer_part: str, predicate) -> tuple[set[int], list[MaestroPiece]]:
    _, catalogue, groups = full_maestro
    members = [p for p in catalogue if composer_part in p.composer and predicate(p.title)]
    return {groups[p.midi_filename] for p in members}, members


@pytest.mark.real_data
def test_real_bwv_848_is_one_group_whatever_its_key_is_called(full_maestro):
    def is_848(title: str) -> bool:
        folded = title.lower().replace("-", " ")
        in_wtc_1 = re.search(r"\bwtc i\b", folded) is not None
        return "bwv 848" in folded or (in_wtc_1 and ("c sharp major" in folded or "d flat major" in folded))

    found, members = _group_of(full_maestro, "Bach", is_848)
    titles = {p.title for p in members}
    assert len(members) >= 10 and len(found) == 1, titles
    assert any("D-flat" in t for t in titles) and any("BWV" not in t for t in titles)
    assert any("C sharp major" in t for t in titles)


@pytest.mark.real_data
def test_real_rachmaninoff_sonata_2_is_one_group(full_maestro):
    found, members = _group_of(
        full_maestro, "Rachmaninoff", lambda t: "Op. 36" in t or "Op.36" in t or "Sonata No. 2" in t
    )
    titles = {p.title for p in members}
    assert "Sonata Op. 36" in titles and "Sonata No. 2 in B-flat Minor" in titles
    assert len(members) >= 10 and len(found) == 1, titles


@pytest.mark.real_data
def test_real_miscatalogued_bwv_847_joins_bwv_889(full_maestro):
    found, members = _group_of(full_maestro, "Bach", lambda t: "BWV 889" in t or "A Minor, WTC II" in t)
    assert "Prelude and Fugue in A Minor, WTC II, BWV 847" in {p.title for p in members}
    assert len(found) == 1
    c_minor, _ = _group_of(full_maestro, "Bach", lambda t: "BWV 847" in t and "C Minor" in t)
    assert not c_minor & found  # the real BWV 847 (C minor, WTC I) stays apart


@pytest.fixture(scope="session")
def full_style_splits(full_maestro, real_data_cache):
    """``style -> {split: set of midi_filename}`` for four styles built with ``pieces="all"``."""
    root, _, _ = full_maestro
    import tokenization

    tokenizer = tokenization.GigaPianoTokenizer()
    splits = {}
    for style in ("maestro", "baroque", "romantic", "rachmaninoff"):
        data = build_style_dataset(
            style, pieces="all", maestro_dir=root, cache_dir=real_data_cache, tokenizer=tokenizer, num_proc=2
        )
        splits[style] = {split: set(ds["midi_filename"]) for split, ds in data.items()}
    return splits


@pytest.mark.real_data
def test_real_no_held_out_composition_of_any_style_is_in_the_base_models_training(
    full_maestro, full_style_splits
):
    _, catalogue, groups = full_maestro
    base = full_style_splits["maestro"]
    assert sum(len(files) for files in base.values()) == len(catalogue)
    trained_groups = {groups[name] for name in base["train"]}
    for style, splits in full_style_splits.items():
        held_out = splits["validation"] | splits["test"]
        assert held_out, style
        leaked = sorted(name for name in held_out if groups[name] in trained_groups)
        assert not leaked, (style, leaked[:5])
        assert splits["train"] <= base["train"], style
        assert splits["validation"] <= base["validation"] and splits["test"] <= base["test"], style


@pytest.mark.real_data
@pytest.mark.skipif(not (MAESTRO_SUBSET / "maestro-v3.0.0.csv").is_file(), reason=f"needs {MAESTRO_SUBSET}")
def test_real_thesis_selection_is_split_by_piece_with_whole_groups(real_data_cache):
    tokenization = pytest.importorskip("tokenization", reason="needs the project's tokenizer")
    tokenizer = tokenization.GigaPianoTokenizer()
    catalogue = read_maestro_csv(MAESTRO_SUBSET)
    groups = catalogue_groups(catalogue, MAESTRO_SUBSET, tokenizer=tokenizer, cache_dir=real_data_cache)
    for style in ("baroque", "romantic", "rachmaninoff"):
        data = build_style_dataset(
            style, maestro_dir=MAESTRO_SUBSET, cache_dir=real_data_cache, tokenizer=tokenizer
        )
        files = {split: ds["midi_filename"] for split, ds in data.items()}
        assert sum(len(names) for names in files.values()) == 50, style
        assert all(files.values()), style
        where = _splits_of_groups({s: [_named(n) for n in names] for s, names in files.items()}, groups)
        assert all(len(splits) == 1 for splits in where.values()), style
        # Split by piece (seeded), not MAESTRO's column: at least one piece sits outside its MAESTRO split.
        assert any(split != m for split, ds in data.items() for m in ds["maestro_split"]), style


def _named(midi_filename: str) -> MaestroPiece:
    return MaestroPiece("", "", "", 0, midi_filename, 0.0)
