"""The GPU recipe (gigapiano/training/gpu_recipe.py) run on the CPU: windows, transposition, a tiny run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from gigapiano.training import gpu_recipe
from gigapiano.training.gpu_data import _as_uint8
from gigapiano.training.gpu_recipe import RandomWindows, transpose_windows, warmup_cosine

SEP = 127


def note_stream(n_notes: int, seed: int, low: int = 40, high: int = 80) -> np.ndarray:
    """`n_notes` notes as [separator, dt, duration, pitch] tokens."""
    rng = np.random.default_rng(seed)
    notes = np.stack(
        [
            np.full(n_notes, SEP),
            rng.integers(0, 8, n_notes),
            rng.integers(1, 16, n_notes) + 0,
            rng.integers(low, high, n_notes),
        ],
        axis=1,
    )
    return notes.reshape(-1).astype(np.uint8)


def write_npz(path: Path, lengths: list[int], validation_windows: int = 3, window: int = 32) -> Path:
    streams = [note_stream(n, seed=i) for i, n in enumerate(lengths)]
    offsets = np.cumsum([0] + [len(s) for s in streams])
    validation = np.stack([note_stream(window // 4, seed=100 + i) for i in range(validation_windows)])
    np.savez_compressed(
        path, train_tokens=np.concatenate(streams), train_offsets=offsets, validation_windows=validation
    )
    return path


def test_random_windows_start_on_a_separator_inside_one_performance():
    streams = [note_stream(n, seed=i) for i, n in enumerate([3, 20, 9])]  # 12, 80 and 36 tokens
    offsets = np.cumsum([0] + [len(s) for s in streams])
    windows = RandomWindows(np.concatenate(streams), offsets, 16, torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    batch = windows.sample(400, generator)
    assert batch.shape == (400, 16)
    assert (batch[:, ::4] == SEP).all()
    # every window is a slice of the 80- or the 36-token performance, never of the 12-token one
    sources = {bytes(s.tobytes()) for s in streams}
    for row in batch[:50].numpy().astype(np.uint8):
        assert any(row.tobytes() in source for source in sources)
    assert not any(row.tobytes() in streams[0].tobytes() for row in batch.numpy().astype(np.uint8))
    # both eligible performances are drawn
    first_tokens = {tuple(row[:8]) for row in batch.numpy()}
    assert len(first_tokens) > 10


def test_random_windows_refuse_data_without_a_full_window():
    stream = note_stream(3, seed=0)
    with pytest.raises(ValueError, match="No training performance"):
        RandomWindows(stream, np.array([0, len(stream)]), 64, torch.device("cpu"))


def test_transposition_moves_only_pitches_and_stays_in_range():
    windows = torch.from_numpy(
        np.stack([note_stream(8, 0), note_stream(8, 1, low=120, high=126)]).astype(np.int64)
    )
    generator = torch.Generator().manual_seed(3)
    for _ in range(20):
        shifted = transpose_windows(windows, 6, generator)
        pitch = slice(3, None, 4)
        assert torch.equal(shifted[:, 0::4], windows[:, 0::4])
        assert torch.equal(shifted[:, 1::4], windows[:, 1::4])
        assert torch.equal(shifted[:, 2::4], windows[:, 2::4])
        moves = shifted[:, pitch] - windows[:, pitch]
        assert (moves == moves[:, :1]).all()  # one shift per window
        assert shifted[:, pitch].max() <= 126 and shifted[:, pitch].min() >= 1
        assert moves.abs().max() <= 6


def test_warmup_cosine_schedule():
    assert warmup_cosine(0.0, 0.1) == pytest.approx(0.01)
    assert warmup_cosine(0.05, 0.1) == pytest.approx(0.5)
    assert warmup_cosine(0.1, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(0.55, 0.1) == pytest.approx(0.5)
    assert warmup_cosine(1.0, 0.1) == pytest.approx(0.0, abs=1e-9)
    assert warmup_cosine(0.3, 0.1) > warmup_cosine(0.6, 0.1)


def test_uint8_export_refuses_ids_that_do_not_fit():
    assert _as_uint8([[1, 127]]).dtype == np.uint8
    with pytest.raises(ValueError, match="uint8"):
        _as_uint8([[300]])


def test_tiny_recipe_runs_every_phase(tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("maestro", "baroque"):
        write_npz(data / f"{name}.npz", [40, 60, 25, 80])
    config = {
        "window_length": 32,
        "seed": 0,
        "bf16": False,
        "eval_batch_size": 4,
        "base": {
            "init": "scratch",
            "preset": "tiny",
            "budget_seconds": 600,
            "max_steps": 120,
            "batch_size": 4,
            "learning_rate": 1e-2,
            "warmup_fraction": 0.05,
            "weight_decay": 0.01,
            "transpose": 2,
            "transpose_until": 0.5,
            "evaluations": 2,
        },
        "styles": {
            "names": ["baroque"],
            "methods": ["full", "blocks"],
            "budget_seconds": 5,
            "batch_size": 4,
            "learning_rate": [1e-3, 1e-4],
            "warmup_fraction": 0.05,
            "weight_decay": 0.01,
            "transpose": 0,
            "max_steps": 6,
            "eval_every": 3,
            "patience": 2,
        },
        "small": {
            "init": "scratch",
            "preset": "tiny",
            "budget_seconds": 600,
            "max_steps": 3,
            "batch_size": 2,
            "learning_rate": 1e-3,
            "warmup_fraction": 0.1,
            "weight_decay": 0.0,
            "evaluations": 1,
        },
        "throughput": {"presets": ["tiny"], "batch_size": 2, "steps": 2},
    }
    config_path = tmp_path / "recipe.yaml"
    config_path.write_text(yaml.safe_dump(config))
    output = tmp_path / "out"
    assert gpu_recipe.main(["--config", str(config_path), "--data", str(data), "--output", str(output)]) == 0
    results = json.loads((output / "results.json").read_text())
    base = results["base"]
    assert base["steps"] == 120 and base["validation_best"] <= base["validation_before"]
    assert base["validation_best"] < 4.0  # from ln(128) = 4.85 at random weights
    style = results["styles"]["baroque"]
    assert set(style["methods"]) == {"full@0.001", "full@0.0001", "blocks@0.001", "blocks@0.0001"}
    assert style["chosen"] in style["methods"]
    assert style["validation_best"] <= style["new_base"]
    assert results["small"]["steps"] == 3
    assert [row["precision"] for row in results["throughput"]] == ["fp32", "bf16 autocast"]
    for name in ("base", "baroque"):
        assert (output / f"{name}.safetensors").stat().st_size > 1000
    # a second run into the same folder would replace these weights: refused unless asked
    before = (output / "base.safetensors").read_bytes()
    assert gpu_recipe.main(["--config", str(config_path), "--data", str(data), "--output", str(output)]) == 1
    assert (output / "base.safetensors").read_bytes() == before


def test_export_refuses_to_overwrite(tmp_path: Path, capsys):
    from gigapiano.training import gpu_data

    (tmp_path / "manifest.json").write_text("[]")
    assert gpu_data.main(["--maestro_dir", str(tmp_path), "--output", str(tmp_path)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "manifest.json").read_text() == "[]"


def test_shipped_recipe_config_has_every_phase():
    config = yaml.safe_load((gpu_recipe.PROJECT_ROOT / "configs" / "train" / "gpu_recipe.yaml").read_text())
    assert config["window_length"] == 1024 and config["base"]["init"] == "models/gigapiano-base"
    assert set(config["styles"]["names"]) == {"baroque", "romantic", "rachmaninoff"}
    assert gpu_recipe.learning_rates(config["styles"]) == [1e-4, 3e-5]
    assert config["small"]["preset"] == "small" and config["throughput"]["presets"] == ["medium", "small"]


def test_missing_data_is_one_line_error(tmp_path: Path, capsys):
    code = gpu_recipe.main(["--data", str(tmp_path), "--output", str(tmp_path / "out"), "--phases", "base"])
    assert code == 1
    assert "gpu_data" in capsys.readouterr().err


def _fake_run(folder: Path, loss: float, method: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "run_info.json").write_text(
        json.dumps(
            {
                "training_method": method,
                "learning_rate": 1e-4,
                "global_step": 40,
                "wall_seconds": 12.0,
                "hardware": "1 x NVIDIA H200",
            }
        )
    )
    (folder / "all_results.json").write_text(
        json.dumps({"eval_loss": loss, "eval_accuracy": 0.5, "eval_perplexity": 4.5})
    )
    return folder


def test_gpu_stage_record_and_summary(tmp_path: Path):
    from gigapiano.training.gpu_shipping import SUMMARY_MARKER, gpu_stage_record, write_gpu_summary

    base = _fake_run(tmp_path / "runs" / "gpu-base", 1.48, "all parameters")
    style = _fake_run(tmp_path / "runs" / "gpu-baroque", 1.62, "all parameters")
    record = {
        "steps": 1820,
        "batch_size": 64,
        "tokens": 119275520,
        "learning_rate": 6e-4,
        "train_seconds": 151.2,
    }
    stage = gpu_stage_record(base, record, "models/gigapiano-base")
    assert stage["eval_loss"] == 1.48 and stage["tokens"] == 119275520
    assert stage["started_from"] == "models/gigapiano-base" and stage["config"].endswith("gpu_recipe.yaml")
    models = tmp_path / "models"
    models.mkdir()
    (models / "README.md").write_text("# Shipped models\n\n| a | b |\n|---|---|\n| base stage 8 | yes |\n")
    selection = {"baroque": {"shipped": "full@0.0001"}}
    for _ in range(2):  # rewriting replaces the GPU section instead of adding a second one
        text = write_gpu_summary(models, base, [style], selection).read_text()
    assert text.count(SUMMARY_MARKER) == 1
    assert "| base stage 8 |  |" in text  # the CPU rows stay, no longer shipped
    assert "| base stage 9 (gpu-base) | all parameters | 0.0001 | 40 | 12 | 1.4800 |" in text
    assert "| baroque (full@0.0001) |" in text and "1 x NVIDIA H200" in text
