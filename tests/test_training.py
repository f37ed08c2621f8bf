"""train.py end to end on a tiny model and test-written MIDI: loss, freezing, LoRA, LR finder, resume, DDP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from gigapiano.training import parse_training_args, run_training
from gigapiano.training.model_setup import prepare_model

REPO = Path(__file__).resolve().parents[1]
OFFLINE_ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def train_args(maestro_root: Path, output_dir: Path, *extra: str) -> list[str]:
    """A few quick steps on the fake MAESTRO folder; `extra` flags override."""
    return [
        "--composer",
        "Johann Sebastian Bach",
        "Frédéric Chopin",
        "--maestro_dir",
        str(maestro_root),
        "--cache_dir",
        str(output_dir.parent / "data-cache"),
        "--output_dir",
        str(output_dir),
        "--window_length",
        "64",
        "--window_stride",
        "32",
        "--validation_fraction",
        "0.2",
        "--per_device_train_batch_size",
        "4",
        "--per_device_eval_batch_size",
        "8",
        "--learning_rate",
        "3e-3",
        "--max_steps",
        "12",
        "--logging_steps",
        "1",
        "--eval_strategy",
        "no",
        "--save_steps",
        "1000",
        "--report_to",
        "none",
        "--disable_tqdm",
        "true",
        "--dropout",
        "0",
        "--seed",
        "7",
        *extra,
    ]


def train(maestro_root: Path, output_dir: Path, *extra: str, callbacks=()):
    model_args, data_args, training_args = parse_training_args(train_args(maestro_root, output_dir, *extra))
    return run_training(model_args, data_args, training_args, callbacks=callbacks)


def logged_losses(output_dir: Path) -> list[float]:
    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    return [entry["loss"] for entry in history if "loss" in entry]


def test_training_from_scratch_lowers_the_loss_and_writes_a_complete_run(trained_tiny_run):
    out = trained_tiny_run
    losses = logged_losses(out)
    assert len(losses) == 40
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5, losses
    metrics = json.loads((out / "all_results.json").read_text())
    assert metrics["eval_perplexity"] == pytest.approx(
        torch.tensor(metrics["eval_loss"]).exp().item(), rel=1e-4
    )
    assert 0 < metrics["eval_accuracy"] < 1 and metrics["eval_sep_accuracy"] > 0.9
    for name in (
        "config.json",
        "model.safetensors",
        "modeling_gigapiano.py",
        "tokenizer_config.json",
        "trainer_state.json",
        "loss_curves.png",
        "pieces.json",
        "style.yaml",
        "run_info.json",
        "README.md",
    ):
        assert (out / name).exists(), name
    assert (out / "loss_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pieces = json.loads((out / "pieces.json").read_text())
    assert pieces["train"] and pieces["validation"] and not set(pieces["train"]) & set(pieces["validation"])
    info = json.loads((out / "run_info.json").read_text())
    assert info["arguments"]["model"]["base_model"] == "scratch:tiny" and "torch" in info["versions"]
    assert json.loads((out / "config.json").read_text())["pad_token_id"] is None  # 127 is no padding


def test_run_folder_loads_in_a_fresh_offline_process(trained_tiny_run, tmp_path):
    script = (
        "import sys, torch\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f"m = AutoModelForCausalLM.from_pretrained({str(trained_tiny_run)!r}, trust_remote_code=True)\n"
        f"t = AutoTokenizer.from_pretrained({str(trained_tiny_run)!r}, trust_remote_code=True)\n"
        "assert type(m).__module__.startswith('transformers_modules')\n"
        "ids = t.notes_to_ids([(0, 10, 60), (8, 10, 64), (0, 10, 67)])\n"
        "out = m.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False)\n"
        "print(out.shape[1])\n"
    )
    env = {**OFFLINE_ENV, "PYTHONPATH": "", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "20"


def test_frozen_blocks_stay_bit_identical(trained_tiny_run, fake_maestro_root, tmp_path):
    out = tmp_path / "frozen"
    train(
        fake_maestro_root,
        out,
        "--base_model",
        str(trained_tiny_run),
        "--trainable_blocks",
        "1",
        "--max_steps",
        "4",
    )
    before = load_file(trained_tiny_run / "model.safetensors")
    after = load_file(out / "model.safetensors")
    assert before.keys() == after.keys()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    trainable = {name for name in before if name.startswith("model.layers.1.")}
    assert changed == trainable  # every top-block tensor moved, nothing else did
    info = json.loads((out / "run_info.json").read_text())
    assert info["training_method"].startswith("top 1 blocks")


def test_only_top_blocks_require_grad(trained_tiny_run):
    model_args, _, _ = parse_training_args(
        [
            "--style",
            "baroque",
            "--base_model",
            str(trained_tiny_run),
            "--trainable_blocks",
            "1",
            "--train_head",
        ]
    )
    model = prepare_model(model_args)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert all(n.startswith(("model.layers.1.", "model.norm.", "lm_head.")) for n in trainable)
    assert "lm_head.weight" in trainable and "model.embed_tokens.weight" not in trainable


def test_lora_trains_only_adapters_and_merge_equals_base_plus_adapter(
    trained_tiny_run, fake_maestro_root, tmp_path
):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "lora"
    train(
        fake_maestro_root,
        out,
        "--base_model",
        str(trained_tiny_run),
        "--lora",
        "--lora_rank",
        "4",
        "--merge_lora",
        "--learning_rate",
        "1e-2",
        "--max_steps",
        "6",
    )
    adapter = load_file(out / "adapter" / "adapter_model.safetensors")
    assert adapter and all("lora_" in name for name in adapter)
    assert any(
        tensor.abs().sum() > 0 for name, tensor in adapter.items() if "lora_B" in name
    )  # B starts at 0
    adapter_config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert Path(adapter_config["base_model_name_or_path"]) == trained_tiny_run.resolve()

    base = AutoModelForCausalLM.from_pretrained(trained_tiny_run, trust_remote_code=True).eval()
    with_adapter = PeftModel.from_pretrained(base, out / "adapter").eval()
    merged = AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True).eval()
    ids = torch.randint(0, 128, (2, 48), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = with_adapter(ids).logits
        got = merged(ids).logits
        plain = (
            AutoModelForCausalLM.from_pretrained(trained_tiny_run, trust_remote_code=True).eval()(ids).logits
        )
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert (got - plain).abs().max() > 1e-4  # the adapter really changed the model


def test_lora_adapter_run_folder_loads_with_auto_class(trained_tiny_run, fake_maestro_root, tmp_path):
    out = tmp_path / "lora-adapter"
    train(fake_maestro_root, out, "--base_model", str(trained_tiny_run), "--lora", "--max_steps", "2")
    assert (out / "adapter_config.json").exists() and not (out / "model.safetensors").exists()
    script = (
        "from transformers import AutoModelForCausalLM\n"
        f"m = AutoModelForCausalLM.from_pretrained({str(out)!r}, trust_remote_code=True)\n"
        "print(sum('lora_' in n for n, _ in m.named_parameters()) > 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=OFFLINE_ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("True")


def test_learning_rate_auto_runs_a_range_test(trained_tiny_run, fake_maestro_root, tmp_path):
    out = tmp_path / "auto-lr"
    outcome = train(
        fake_maestro_root,
        out,
        "--base_model",
        str(trained_tiny_run),
        "--learning_rate",
        "auto",
        "--trainable_blocks",
        "1",
        "--lr_find_steps",
        "25",
        "--max_steps",
        "2",
    )
    assert torch.isfinite(torch.tensor(outcome.learning_rate)) and 1e-6 <= outcome.learning_rate <= 1e-1
    assert (out / "lr_find.png").read_bytes()[:4] == b"\x89PNG"
    found = json.loads((out / "lr_find.json").read_text())
    assert (
        found["suggested_lr"] == pytest.approx(found["valley_lr"] / 2) == pytest.approx(outcome.learning_rate)
    )


class CrashAtStep(TrainerCallback):
    """Simulates a killed job right after a given step."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt("simulated crash")


def test_interrupted_run_resumes_to_the_same_weights(trained_tiny_run, fake_maestro_root, tmp_path):
    common = (
        "--base_model",
        str(trained_tiny_run),
        "--trainable_blocks",
        "2",
        "--max_steps",
        "6",
        "--save_steps",
        "3",
        "--dropout",
        "0.1",
    )
    straight = tmp_path / "straight"
    train(fake_maestro_root, straight, *common)
    resumed = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        train(fake_maestro_root, resumed, *common, callbacks=[CrashAtStep(4)])
    assert (resumed / "checkpoint-3").is_dir() and not (resumed / "model.safetensors").exists()
    train(fake_maestro_root, resumed, *common)  # same command again: resumes from checkpoint-3
    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=0, msg=name)
    assert logged_losses(straight)[-1] == pytest.approx(logged_losses(resumed)[-1], abs=1e-6)


def test_finished_run_is_not_overwritten(trained_tiny_run, fake_maestro_root, tmp_path):
    out = tmp_path / "done"
    shutil.copytree(trained_tiny_run, out, ignore=shutil.ignore_patterns("checkpoint-*"))
    with pytest.raises(FileExistsError, match="--overwrite_output_dir"):
        train(fake_maestro_root, out, "--base_model", "scratch:tiny")


def run_train_cli(
    *args: str, launcher: list[str] | None = None, cwd: Path = REPO
) -> subprocess.CompletedProcess:
    command = (launcher or [sys.executable]) + [str(REPO / "train.py"), *args]
    return subprocess.run(command, cwd=cwd, env=OFFLINE_ENV, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_two_cpu_processes_match_one_process_on_the_first_step(trained_tiny_run, fake_maestro_root, tmp_path):
    """Two CPU processes (DDP over gloo, configs/accelerate/multi_cpu.yaml) vs one: same global batch
    (2 x 2 vs 1 x 4), same first loss."""
    common = train_args(
        fake_maestro_root,
        tmp_path / "x",
        "--base_model",
        str(trained_tiny_run),
        "--max_steps",
        "2",
        "--full_finetune",
    )
    single = run_train_cli(
        *common, "--output_dir", str(tmp_path / "one"), "--per_device_train_batch_size", "4"
    )
    assert single.returncode == 0, single.stderr[-3000:]
    launcher = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(REPO / "configs" / "accelerate" / "multi_cpu.yaml"),
        "--main_process_port",
        "29531",
    ]
    double = run_train_cli(
        *common,
        "--output_dir",
        str(tmp_path / "two"),
        "--per_device_train_batch_size",
        "2",
        launcher=launcher,
    )
    assert double.returncode == 0, double.stderr[-3000:]
    assert json.loads((tmp_path / "two" / "run_info.json").read_text())["world_size"] == 2
    first_single = logged_losses(tmp_path / "one")[0]
    first_double = logged_losses(tmp_path / "two")[0]
    assert first_double == pytest.approx(first_single, abs=1e-4)


def test_bad_arguments_give_one_line_errors(fake_maestro_root, tmp_path):
    result = run_train_cli(
        "--style",
        "no-such-style",
        "--maestro_dir",
        str(fake_maestro_root),
        "--output_dir",
        str(tmp_path / "x"),
        "--base_model",
        "scratch:tiny",
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error:") and "no-such-style" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_train_cli(
        "--style", "baroque", "--lora", "--full_finetune", "--output_dir", str(tmp_path / "y")
    )
    assert result.returncode == 2 and "--full_finetune and --lora" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "config", sorted((REPO / "configs" / "accelerate").glob("*.yaml")), ids=lambda p: p.stem
)
def test_accelerate_configs_parse(config):
    from accelerate.commands.config.config_args import load_config_from_file

    loaded = load_config_from_file(str(config))
    assert loaded.num_processes >= 1 and loaded.mixed_precision in ("no", "bf16", "fp16")


# gpu_recipe.yaml is read by gigapiano/training/gpu_recipe.py, not train.py (see tests/test_gpu_recipe.py)
TRAIN_CONFIGS = sorted(p for p in (REPO / "configs" / "train").glob("*.yaml") if p.stem != "gpu_recipe")


@pytest.mark.parametrize("config", TRAIN_CONFIGS, ids=lambda p: p.stem)
def test_training_recipes_parse(config):
    model_args, data_args, training_args = parse_training_args(["--config", str(config)])
    assert training_args.seed is not None and data_args.split_seed == 42
    assert model_args.base_model


def test_export_for_shipping_halves_weights_and_keeps_records(trained_tiny_run, tmp_path):
    from transformers import AutoModelForCausalLM

    from gigapiano.training.shipping import export_model

    target = export_model(trained_tiny_run, tmp_path / "gigapiano-tiny")
    weights = load_file(target / "model.safetensors")
    assert all(tensor.dtype == torch.float16 for tensor in weights.values())
    config = json.loads((target / "config.json").read_text())
    assert config["pad_token_id"] is None and config["auto_map"]["AutoModelForCausalLM"]
    for name in ("all_results.json", "run_info.json", "pieces.json", "README.md", "tokenizer_config.json"):
        assert (target / name).exists(), name
    original = load_file(trained_tiny_run / "model.safetensors")
    for name, tensor in original.items():
        torch.testing.assert_close(weights[name].float(), tensor, atol=2e-3, rtol=1e-3)
    model = AutoModelForCausalLM.from_pretrained(target, trust_remote_code=True, dtype=torch.float32)
    assert model.config.pad_token_id is None


def test_shipping_summary_reads_every_run_record(trained_tiny_run, tmp_path):
    from gigapiano.training.shipping import BASE_STAGES, write_summary

    runs = tmp_path / "runs"
    stages = [name for _, name in BASE_STAGES]
    for name in (*stages, "style-blocks-baroque", "style-lora-baroque"):
        shutil.copytree(trained_tiny_run, runs / name, ignore=shutil.ignore_patterns("checkpoint-*"))
    results = json.loads((trained_tiny_run / "all_results.json").read_text())
    (tmp_path / "models").mkdir()
    selection = {"baroque": {"validation_loss": {"blocks": 2.0, "lora": 1.9}, "shipped": "lora"}}
    summary = write_summary(selection, runs, tmp_path / "models").read_text()
    rows = [line for line in summary.splitlines() if line.startswith("| ") and not line.startswith("| run")]
    assert [row.split(" | ")[0] for row in rows] == [
        *(f"| base stage {i + 1} ({name})" for i, name in enumerate(stages)),
        "| baroque (blocks)",
        "| baroque (lora)",
    ]
    assert stages[-1] == "gigapiano-base"  # the last stage is the shipped base
    shipped = [row.rstrip().endswith("| yes |") for row in rows]
    assert shipped == [False] * (len(stages) - 1) + [True, False, True]
    assert f"{results['eval_loss']:.4f}" in rows[len(stages) - 1]


def test_a_multi_stage_base_card_lists_every_stage(trained_tiny_run, tmp_path):
    from gigapiano.training.shipping import STAGES_FILE, export_model, write_stages

    first, last = tmp_path / "stage-512", tmp_path / "stage-1024"
    for run in (first, last):
        shutil.copytree(trained_tiny_run, run, ignore=shutil.ignore_patterns("checkpoint-*"))
    info = json.loads((first / "run_info.json").read_text())
    info["arguments"]["data"]["transpose"] = 3
    info["arguments"]["model"]["base_model"] = "scratch:tiny"
    (first / "run_info.json").write_text(json.dumps(info))
    last_info = json.loads((last / "run_info.json").read_text())
    last_info["arguments"]["model"]["base_model"] = str(first)
    (last / "run_info.json").write_text(json.dumps(last_info))
    write_stages([("configs/a.yaml", first), ("configs/b.yaml", last)])
    records = json.loads((last / STAGES_FILE).read_text())
    assert [(r["config"], r["transpose"]) for r in records] == [("configs/a.yaml", 3), ("configs/b.yaml", 0)]
    data = info["arguments"]["data"]
    batch = info["arguments"]["training"]["per_device_train_batch_size"]
    assert records[0]["tokens"] == info["global_step"] * batch * data["window_length"]
    card = (export_model(last, tmp_path / "shipped") / "README.md").read_text()
    assert (tmp_path / "shipped" / STAGES_FILE).exists()
    assert "last of 2 training stages" in card and "| 1 | `configs/a.yaml` |" in card
    assert "trained from scratch in 2 stages" in card and "fine-tuned" not in card.split("\n## ")[0]
    assert "none in this last stage; earlier, random transposition of the training windows: stage 1" in card


# Smoothed losses of a real LR range test (compact base, romantic style, top 2 blocks, 1e-6 .. 3e-2 in 40
# geometric steps): flat and noisy for four decades, a shallow descent, then the blow-up.
ROMANTIC_SWEEP = [
    1.8821,
    1.9697,
    1.9656,
    1.9844,
    1.9782,
    1.9777,
    1.9753,
    1.9575,
    1.9815,
    1.98,
    1.9713,
    1.9808,
    1.9795,
    1.9828,
    1.974,
    1.9912,
    1.9941,
    1.9746,
    1.9727,
    1.9748,
    1.982,
    1.9708,
    1.9583,
    1.9523,
    1.9595,
    1.963,
    1.963,
    1.9503,
    1.96,
    1.9612,
    1.9587,
    1.9575,
    1.9589,
    1.966,
    1.959,
    1.9549,
    1.9506,
    1.9558,
    1.9855,
    2.0263,
]


def test_valley_ignores_noise_on_a_flat_start():
    """A contiguous-run rule picked 3.7e-6 here (an early noisy dip) and the fine-tune learned nothing; the
    valley must sit in the real descent before the blow-up."""
    from gigapiano.training.lr_finder import find_valley

    rates = [1e-6 * (3e4 ** (i / 39)) for i in range(40)]
    valley = rates[find_valley(ROMANTIC_SWEEP)]
    assert 1e-4 < valley < 1e-2, valley
    assert find_valley([3.0, 2.0, 1.0]) == 1 and find_valley([1.0]) == 0
