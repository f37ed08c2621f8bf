"""`publish.py dataset`: Parquet per style and split, a card whose configs `datasets.load_dataset` follows."""

from __future__ import annotations

import json

import pytest
from datasets import load_dataset
from huggingface_hub import DatasetCard

import publish
from gigapiano.data import build_style_dataset
from gigapiano.hub.dataset import DatasetBuildSettings, assemble_dataset_repo, parquet_path

REPO_ID = "someone/gigapiano-maestro-styles"


@pytest.fixture(scope="module")
def dataset_repo(fake_maestro_root, tmp_path_factory):
    settings = DatasetBuildSettings(
        maestro_dir=str(fake_maestro_root),
        cache_dir=str(tmp_path_factory.mktemp("data-cache")),
        pieces="all",
        validation_fraction=0.2,
        test_fraction=0.2,
    )
    folder = assemble_dataset_repo(
        tmp_path_factory.mktemp("dataset") / "repo", REPO_ID, ["baroque", "romantic"], settings
    )
    return folder, settings


def test_every_style_loads_as_a_config_with_the_same_pieces_as_the_data_module(dataset_repo, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    folder, settings = dataset_repo
    for style in ("baroque", "romantic"):
        loaded = load_dataset(str(folder.path), style)
        expected = build_style_dataset(
            style,
            pieces="all",
            maestro_dir=settings.maestro_dir,
            cache_dir=settings.cache_dir,
            validation_fraction=0.2,
            test_fraction=0.2,
        )
        assert set(loaded) == {"train", "validation", "test"}
        for split in loaded:
            assert loaded[split]["midi_filename"] == expected[split]["midi_filename"]
            assert loaded[split]["input_ids"] == expected[split]["input_ids"]
            assert folder.counts[style][split] == len(expected[split])
        assert not set(loaded["train"]["midi_filename"]) & set(loaded["validation"]["midi_filename"])
    assert {*folder.counts} == {"baroque", "romantic"}
    assert load_dataset(str(folder.path))["train"]["composer"][0] == "Johann Sebastian Bach"  # default config


def test_dataset_card_metadata_and_records(dataset_repo):
    folder, _ = dataset_repo
    card = DatasetCard.load(folder.path / "README.md")
    assert card.data.license == "cc-by-nc-sa-4.0"
    assert {"music", "midi", "piano", "symbolic-music"} <= set(card.data.tags)
    configs = card.data.to_dict()["configs"]
    assert [c["config_name"] for c in configs] == ["baroque", "romantic"] and configs[0]["default"] is True
    for config in configs:
        assert [f["split"] for f in config["data_files"]] == ["train", "validation", "test"]
    assert f'load_dataset("{REPO_ID}", "baroque")' in card.text
    for style, counts in folder.counts.items():
        row = f"| `{style}` |"
        assert (
            row in card.text
            and f"| {counts['train']} | {counts['validation']} | {counts['test']} |" in card.text
        )
        for split in counts:
            assert parquet_path(style, split) in folder.files
        assert f"styles/{style}.yaml" in folder.files
    info = json.loads((folder.path / "build_info.json").read_text())
    assert info["rows"] == folder.counts and info["settings"]["split_seed"] == 42
    assert "maestro_dir" not in info["settings"]  # no local paths on the Hub


def test_dataset_command_dry_run_and_overwrite_guard(fake_maestro_root, tmp_path, capsys):
    out = tmp_path / "ds"
    argv = ["dataset", "--repo_id", REPO_ID, "--styles", "romantic", "--pieces", "all",
            "--maestro_dir", str(fake_maestro_root), "--cache_dir", str(tmp_path / "cache"),
            "--dry_run", "--output_dir", str(out), "--log_level", "error"]  # fmt: skip
    assert publish.main(argv) == 0
    assert capsys.readouterr().out.strip() == str(out.resolve())
    assert (out / parquet_path("romantic", "train")).is_file()
    assert publish.main(argv) == 1  # the folder is not empty now
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "--overwrite" in err and len(err.splitlines()) == 1
    assert publish.main([*argv[:4], "no-such-style", *argv[5:]]) == 1
    assert "no-such-style" in capsys.readouterr().err
