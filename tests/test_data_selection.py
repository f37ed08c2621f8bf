"""MAESTRO catalogue reading, style selection and missing-file handling (gigapiano.data.maestro)."""

from __future__ import annotations

import json
import logging

import pytest

from gigapiano.data.maestro import (
    MissingMidiFilesError,
    NoPiecesError,
    check_midi_files,
    find_maestro_root,
    read_maestro_csv,
    select_pieces,
)
from gigapiano.data.styles import GigaPianoStyle, load_style


def _style(*composers, **kwargs):
    return GigaPianoStyle(name="test", display_name="Test", composers=composers, **kwargs)


def test_find_root_accepts_the_root_or_its_parent(fake_maestro_root, tmp_path):
    assert find_maestro_root(fake_maestro_root) == fake_maestro_root
    assert find_maestro_root(fake_maestro_root.parent) == fake_maestro_root
    with pytest.raises(FileNotFoundError, match="maestro-v3.0.0.csv"):
        find_maestro_root(tmp_path)
    with pytest.raises(FileNotFoundError, match="--maestro_dir"):
        find_maestro_root(tmp_path / "absent")


def test_read_csv_parses_every_row(fake_maestro_root):
    catalogue = read_maestro_csv(fake_maestro_root)
    assert len(catalogue) == 13
    first = catalogue[0]
    assert first.composer == "Johann Sebastian Bach" and first.year == 2004 and first.maestro_split == "train"
    assert first.midi_filename.startswith("2004/") and isinstance(first.duration, float)


def test_csv_without_maestro_columns_is_rejected(tmp_path):
    (tmp_path / "maestro-v3.0.0.csv").write_text("composer,title\nA,B\n")
    with pytest.raises(ValueError, match=r"lacks the MAESTRO columns \['canonical_composer'"):
        read_maestro_csv(tmp_path)


def test_all_pieces_of_a_composer_exact_match_only(fake_maestro_root):
    catalogue = read_maestro_csv(fake_maestro_root)
    bach = select_pieces(catalogue, _style("Johann Sebastian Bach"))
    assert len(bach) == 6
    assert {p.composer for p in bach} == {"Johann Sebastian Bach"}
    assert [p.midi_filename for p in bach] == sorted(p.midi_filename for p in bach)
    with_arrangements = select_pieces(catalogue, _style("Johann Sebastian Bach", include_arrangements=True))
    assert len(with_arrangements) == 7
    assert "Johann Sebastian Bach / Ferruccio Busoni" in {p.composer for p in with_arrangements}


def test_composer_matching_ignores_accents_and_case(fake_maestro_root):
    catalogue = read_maestro_csv(fake_maestro_root)
    chopin = select_pieces(catalogue, _style("frederic chopin"))
    assert len(chopin) == 4 and {p.composer for p in chopin} == {"Frédéric Chopin"}
    both = select_pieces(catalogue, _style("Frédéric Chopin", "Franz Liszt"))
    assert len(both) == 6


def test_composer_with_no_pieces_names_it_and_suggests_close_names(fake_maestro_root):
    catalogue = read_maestro_csv(fake_maestro_root)
    with pytest.raises(NoPiecesError, match="'Franz List'") as info:
        select_pieces(catalogue, _style("Franz List"))
    assert "Franz Liszt" in str(info.value) and "canonical_composer" in str(info.value)
    with pytest.raises(NoPiecesError, match="'Claude Debussy'"):
        select_pieces(catalogue, _style("Franz Liszt", "Claude Debussy"))


def test_thesis_selection_is_exactly_the_listed_files(fake_maestro_root):
    catalogue = read_maestro_csv(fake_maestro_root)
    listed = (catalogue[3].midi_filename, catalogue[1].midi_filename)
    chosen = select_pieces(catalogue, _style("Johann Sebastian Bach", pieces="thesis", thesis_pieces=listed))
    assert [p.midi_filename for p in chosen] == sorted(listed)


def test_thesis_piece_absent_from_the_csv_is_an_error(fake_maestro_root):
    catalogue = read_maestro_csv(fake_maestro_root)
    style = _style("Johann Sebastian Bach", pieces="thesis", thesis_pieces=("2099/not-in-maestro.midi",))
    with pytest.raises(NoPiecesError, match="2099/not-in-maestro.midi"):
        select_pieces(catalogue, style)


def test_missing_file_is_reported_by_name(make_fake_maestro):
    root = make_fake_maestro()
    pieces = read_maestro_csv(root)
    gone = pieces[2].midi_filename
    (root / gone).unlink()
    with pytest.raises(MissingMidiFilesError, match="--skip_missing") as info:
        check_midi_files(root, pieces)
    assert gone in str(info.value) and info.value.missing == [gone]
    assert isinstance(info.value, FileNotFoundError)


def test_missing_file_is_skipped_with_a_warning_when_allowed(make_fake_maestro, caplog):
    root = make_fake_maestro()
    pieces = read_maestro_csv(root)
    gone = pieces[2].midi_filename
    (root / gone).unlink()
    with caplog.at_level(logging.WARNING, logger="gigapiano.data.maestro"):
        kept = check_midi_files(root, pieces, on_missing="skip")
    assert len(kept) == len(pieces) - 1 and gone not in {p.midi_filename for p in kept}
    assert gone in caplog.text


def test_all_files_missing_is_an_empty_result_error(make_fake_maestro):
    root = make_fake_maestro(write_files=False)
    with pytest.raises(NoPiecesError, match="None of the 13 selected MIDI files"):
        check_midi_files(root, read_maestro_csv(root), on_missing="skip")


@pytest.mark.real_data
@pytest.mark.parametrize("style_name", ["baroque", "romantic", "rachmaninoff"])
def test_real_styles_select_exactly_the_50_manifest_pieces(shared_dir, style_name):
    root = find_maestro_root(shared_dir / "maestro-subset" / "maestro-v3.0.0")
    manifest = json.loads((shared_dir / "maestro-subset" / "thesis_manifest.json").read_text())
    chosen = check_midi_files(root, select_pieces(read_maestro_csv(root), load_style(style_name)))
    assert [p.midi_filename for p in chosen] == sorted(manifest[style_name])
    assert {p.composer for p in chosen} == set(load_style(style_name).composers)


@pytest.mark.real_data
def test_real_catalogue_counts_match_the_design_notes(shared_dir):
    catalogue = read_maestro_csv(shared_dir / "maestro-subset" / "maestro-v3.0.0-full.csv")
    assert len(catalogue) == 1276
    for style_name, expected in (("baroque", 145), ("romantic", 201), ("rachmaninoff", 59)):
        assert len(select_pieces(catalogue, load_style(style_name).with_pieces("all"))) == expected
    assert len(select_pieces(catalogue, GigaPianoStyle.from_composers(["Franz Liszt"]))) == 131
