"""Style YAMLs and their loader (gigapiano.data.styles)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from gigapiano.data.styles import (
    GigaPianoStyle,
    UnknownStyleError,
    available_styles,
    default_styles_dir,
    load_style,
    normalize_name,
)

EXPECTED = {
    "baroque": "Johann Sebastian Bach",
    "romantic": "Frédéric Chopin",
    "rachmaninoff": "Sergei Rachmaninoff",
}


def test_the_three_upstream_styles_ship_with_50_thesis_pieces():
    assert set(EXPECTED) <= set(available_styles())
    for name, composer in EXPECTED.items():
        style = load_style(name)
        assert style.name == name
        assert style.composers == (composer,)
        assert style.pieces == "thesis"
        assert len(style.thesis_pieces) == 50 == len(set(style.thesis_pieces))
        assert all(p.endswith(".midi") and p[:4].isdigit() for p in style.thesis_pieces)
        assert style.display_name and style.display_name != name


@pytest.mark.real_data
def test_thesis_pieces_equal_the_shared_manifest(shared_dir):
    manifest = json.loads((shared_dir / "maestro-subset" / "thesis_manifest.json").read_text())
    for name in EXPECTED:
        assert sorted(load_style(name).thesis_pieces) == sorted(manifest[name])


def test_unknown_style_names_the_style_and_the_available_ones():
    with pytest.raises(UnknownStyleError, match="'barocco'") as info:
        load_style("barocco")
    message = str(info.value)
    assert "Did you mean 'baroque'" in message
    assert "romantic" in message and "--composer" in message
    assert isinstance(info.value, ValueError)


def test_style_from_a_yaml_path_and_a_custom_folder(tmp_path):
    path = tmp_path / "impressionist.yaml"
    path.write_text(
        yaml.safe_dump({"name": "impressionist", "composers": ["Claude Debussy", "Maurice Ravel"]})
    )
    by_path = load_style(path)
    by_name = load_style("impressionist", styles_dir=tmp_path)
    assert by_path == by_name
    assert by_path.pieces == "all" and by_path.composers == ("Claude Debussy", "Maurice Ravel")
    assert available_styles(tmp_path) == ["impressionist"]


def test_styles_dir_environment_override(tmp_path, monkeypatch):
    monkeypatch.setenv("GIGAPIANO_STYLES_DIR", str(tmp_path))
    assert default_styles_dir() == tmp_path
    with pytest.raises(UnknownStyleError):
        load_style("baroque")


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"name": "x", "composers": []}, "non-empty list `composers`"),
        ({"name": "x", "composers": ["A"], "pieces": "some"}, "pieces='some'"),
        ({"name": "x", "composers": ["A"], "pieces": "thesis"}, "lists no `thesis_pieces`"),
        ({"name": "x", "composers": ["A"], "thesis_pieces": ["a.midi", "a.midi"]}, "twice"),
        ({"name": "bad name", "composers": ["A"]}, "'bad name'"),
        ({"name": "x", "composers": ["A"], "composer": "typo"}, "Unknown style keys ['composer']"),
    ],
)
def test_invalid_styles_are_rejected_with_the_bad_value(tmp_path, data, fragment):
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match="broken.yaml") as info:
        load_style(path)
    assert fragment in str(info.value)


def test_missing_style_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.yaml"):
        load_style(tmp_path / "nowhere.yaml")


def test_ad_hoc_style_from_composers():
    style = GigaPianoStyle.from_composers(["Franz Liszt"])
    assert (style.name, style.pieces, style.composers) == ("liszt", "all", ("Franz Liszt",))
    assert GigaPianoStyle.from_composers(["Frédéric Chopin", "Franz Liszt"]).name == "chopin-liszt"
    with pytest.raises(ValueError, match="--composer"):
        GigaPianoStyle.from_composers([])


def test_with_pieces_overrides_the_selection_only():
    style = load_style("romantic")
    assert style.with_pieces("all").pieces == "all"
    assert style.with_pieces("all").thesis_pieces == style.thesis_pieces
    assert style.with_pieces(None) is style
    assert GigaPianoStyle.from_dict(style.to_dict()) == dataclasses.replace(style, source=None)


def test_normalize_name_ignores_accents_case_and_spacing():
    assert normalize_name("  Frédéric   CHOPIN ") == "frederic chopin"
    assert normalize_name("Antonín Dvořák") == normalize_name("antonin dvorak")
