"""Training defaults that fit the starting model: window length = its context, trainable blocks = a share of
its depth, `scratch:<preset>` with every preset, an LR range test sized to the run, and clear failures
(a window or block count the model cannot take; offline without data). The README's fine-tuning line runs
a few steps on the shipped base and the real MAESTRO subset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gigapiano.training.arguments import parse_training_args, share_of_blocks
from gigapiano.training.lr_finder import range_test_steps
from modeling_gigapiano.configuration_gigapiano import PRESETS, GigaPianoConfig

REPO = Path(__file__).resolve().parents[1]
SHIPPED_BASE = REPO / "models" / "gigapiano-base"


def write_model_config(folder: Path, context: int, depth: int) -> Path:
    """A model folder as far as the defaults look: its config.json."""
    folder.mkdir(parents=True, exist_ok=True)
    config = GigaPianoConfig.from_preset(
        "tiny", max_position_embeddings=context, relative_attention_length=context, num_hidden_layers=depth
    )
    config.save_pretrained(folder)
    return folder


@pytest.mark.parametrize(
    ("context", "depth", "blocks"), [(512, 4, 2), (1024, 8, 4), (1024, 16, 8), (64, 2, 1)]
)
def test_default_recipe_follows_the_base_model(tmp_path, context, depth, blocks):
    base = write_model_config(tmp_path / "base", context, depth)
    model_args, data_args, training_args = parse_training_args(["--base_model", str(base)])
    assert data_args.window_length == context
    assert model_args.trainable_blocks == blocks == share_of_blocks(0.5, depth)
    assert any(f"top {blocks} of {depth}" in note for note in training_args.default_notes)
    model_args, _, _ = parse_training_args(["--base_model", str(base), "--trainable_share", "0.25"])
    assert model_args.trainable_blocks == max(1, depth // 4)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_scratch_works_with_every_preset(preset):
    model_args, data_args, _ = parse_training_args(["--base_model", f"scratch:{preset}"])
    assert data_args.window_length == PRESETS[preset].get("max_position_embeddings", 1024)
    assert model_args.trainable_blocks is None  # a scratch model trains every parameter


def test_given_values_win_and_impossible_ones_fail_before_any_data(tmp_path):
    base = write_model_config(tmp_path / "base", 512, 4)
    model_args, data_args, _ = parse_training_args(
        ["--base_model", str(base), "--window-length", "256", "--trainable_blocks", "3"]
    )
    assert data_args.window_length == 256 and model_args.trainable_blocks == 3
    with pytest.raises(ValueError, match="longer than the 512-token context"):
        parse_training_args(["--base_model", str(base), "--window_length", "1024"])
    with pytest.raises(ValueError, match="exceeds the 4 blocks"):
        parse_training_args(["--base_model", str(base), "--trainable_blocks", "5"])
    _, data_args, _ = parse_training_args(["--base_model", str(base), "--lora"])
    assert data_args.window_length == 512


def test_range_test_is_sized_to_the_run():
    assert range_test_steps(None, 5) == 5  # a 5-step run gets a 5-step test, not 60
    assert range_test_steps(None, 20) == 8
    assert range_test_steps(None, 100) == 25
    assert range_test_steps(None, 10_000) == 60
    assert range_test_steps(25, 5) == 25  # --lr_find_steps wins


def test_learning_rate_given_means_no_range_test():
    _, _, training_args = parse_training_args(["--base_model", "scratch:tiny", "--learning_rate", "1e-3"])
    assert not training_args.lr_auto and training_args.learning_rate == 1e-3


def run_train_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "train.py", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_offline_without_data_is_one_line_naming_maestro_dir(tmp_path):
    result = run_train_cli(
        "--style", "baroque", "--base_model", "scratch:tiny", "--output_dir", str(tmp_path / "run"),
        "--cache_dir", str(tmp_path / "empty-cache"), "--report_to", "none",
        env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "GIGAPIANO_CACHE": str(tmp_path / "empty")},
    )  # fmt: skip
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode != 0 and len(lines) == 1, result.stderr[-2000:]
    assert "--maestro_dir" in lines[0] and "maestro-v3.0.0-midi.zip" in lines[0]
    assert "Traceback" not in result.stderr and ".part" not in result.stderr


def _readme_finetune_line() -> list[str]:
    """The README's plain fine-tuning line, `train.py --style baroque` (default recipe), as arguments."""
    for line in (REPO / "README.md").read_text().splitlines():
        words = line.split("#")[0].split()
        if "train.py" in words and "--style" in words:
            arguments = words[words.index("train.py") + 1 :]
            if "--lora" not in arguments and "--bf16" not in arguments:
                return arguments
    raise AssertionError("README.md has no plain `train.py --style` line")


@pytest.mark.slow
@pytest.mark.real_data
@pytest.mark.timeout(1800)  # seconds on a laptop; a busy shared 2-core machine needs far longer
@pytest.mark.parametrize("base", ["shipped", "scratch:tiny"])
def test_readme_finetuning_line_runs_a_few_steps_on_the_subset(shared_dir, tmp_path, base):
    import torch

    from gigapiano.training import run_training

    if base == "shipped" and not (SHIPPED_BASE / "config.json").is_file():
        pytest.skip(f"the shipped base model {SHIPPED_BASE} is absent")
    argv = _readme_finetune_line() + [
        "--maestro_dir", str(shared_dir / "maestro-subset" / "maestro-v3.0.0"),
        "--cache_dir", str(tmp_path / "cache"), "--output_dir", str(tmp_path / "run"),
        "--max_steps", "2", "--per_device_train_batch_size", "1", "--per_device_eval_batch_size", "2",
        "--max_eval_windows", "2", "--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none",
        "--disable_tqdm", "true",
    ]  # fmt: skip
    if base != "shipped":
        argv += ["--base_model", base]
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        outcome = run_training(*parse_training_args(argv))
    finally:
        torch.set_num_threads(threads)
    info = json.loads((outcome.output_dir / "run_info.json").read_text())
    config = json.loads((outcome.output_dir / "config.json").read_text())
    assert info["arguments"]["data"]["window_length"] == config["max_position_embeddings"]
    lr_find = json.loads((outcome.output_dir / "lr_find.json").read_text())
    assert len(lr_find["learning_rates"]) <= 2  # sized to a 2-step run
    if base == "shipped":
        depth = config["num_hidden_layers"]
        assert info["arguments"]["model"]["trainable_blocks"] == share_of_blocks(0.5, depth)
        assert info["training_method"].startswith(f"top {share_of_blocks(0.5, depth)} blocks")
