"""Ship what the GPU recipe trained: run folders with the project's own records, then `models/`.

`gpu_recipe.py` returns bare fp16 weights and a `results.json`. This step gives each model the records a
`train.py` run leaves, so the export, the model card and `models/README.md` treat it like any other run:

* `runs/gpu-base` and `runs/gpu-<style>`: `config.json` + the weights; `all_results.json` from the same
  `Trainer` evaluation `train.py` ends with (the config's validation windows, the same metrics), computed
  here; `pieces.json` and `style.yaml` of the same data; `run_info.json` with the arguments of the config
  the data came from, overridden by what the GPU recipe really did (batch, steps, peak learning rate, which
  parameters trained), the GPU's name as hardware and the recipe's own record (`gpu_recipe`);
* the base's `training_stages.json`: the CPU base's stages, plus this stage;
* then `shipping.export_model` into `models/`, `models/selection.json` (every fine-tune compared) and a
  section of `models/README.md` for the GPU runs.

    python -m gigapiano.training.gpu_shipping --base_results gpu_out/base --style_results gpu_out/styles \\
        --maestro_dir ../shared/maestro/maestro-v3.0.0
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from modeling_gigapiano import GigaPianoForCausalLM

from ..hub.model_card import STAGES_FILE
from .arguments import PROJECT_ROOT, parse_training_args
from .shipping import STYLES, export_model, run_row

logger = logging.getLogger(__name__)

GPU_CONFIG = "configs/train/gpu_recipe.yaml"
BASE_DATA_CONFIG = "configs/train/base_medium_1024_final.yaml"
STYLE_DATA_CONFIG = "configs/train/style_medium_full.yaml"
SUMMARY_MARKER = "## GPU stage"


def _load_results(folder: Path) -> dict[str, Any]:
    path = folder / "results.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: pass the folder `gpu_recipe.py --output` wrote.")
    return json.loads(path.read_text())


def build_run(
    run_dir: Path,
    weights: Path,
    start_from: Path,
    data_argv: list[str],
    record: dict[str, Any],
    method: str,
    machine: dict[str, Any],
) -> Path:
    """One run folder for GPU-trained `weights` (the architecture of `start_from`), evaluated here."""
    from safetensors.torch import load_file
    from transformers import default_data_collator

    from tokenization import GigaPianoTokenizer

    from .metrics import build_compute_metrics, reduce_logits
    from .records import library_versions, plot_loss_curves, write_run_info, write_styles
    from .trainer import GigaPianoTrainer, load_windows, training_method

    if not weights.exists():
        raise FileNotFoundError(f"{weights} is missing: the GPU call did not finish this model.")
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    model = GigaPianoForCausalLM.from_pretrained(start_from, dtype=torch.float32)
    model.load_state_dict({k: v.float() for k, v in load_file(str(weights)).items()}, strict=True)
    model.save_pretrained(run_dir)
    model_args, data_args, training_args = parse_training_args(
        [*data_argv, "--base_model", str(start_from), "--output_dir", str(run_dir), "--report_to", "none"]
    )
    training_args.per_device_train_batch_size = int(record["batch_size"])
    training_args.max_steps = int(record["steps"])
    training_args.learning_rate = float(record["learning_rate"])
    training_args.config_file = GPU_CONFIG
    training_args.schedule = "warm-up + cosine"  # gpu_recipe.warmup_cosine, not a train.py choice
    data_args.transpose = int(record.get("transpose", 0))
    model_args.full_finetune = method == "full"
    if method == "blocks":
        model_args.trainable_blocks = model.config.num_hidden_layers // 2
        model_args.train_head = True
    windows, styles = load_windows(data_args, training_args, run_dir)
    trainer = GigaPianoTrainer(
        model=model,
        args=training_args,
        eval_dataset=windows["validation"],
        data_collator=default_data_collator,
        processing_class=GigaPianoTokenizer(),
        compute_metrics=build_compute_metrics(),
        preprocess_logits_for_metrics=reduce_logits,
    )
    metrics = trainer.evaluate()
    metrics["eval_windows"] = len(windows["validation"])
    metrics["train_windows"] = len(windows["train"])  # the training data in 1024-token windows
    metrics["train_tokens"] = int(record.get("tokens") or record["steps"] * record["batch_size"] * 1024)
    (run_dir / "all_results.json").write_text(json.dumps(metrics, indent=4, sort_keys=True) + "\n")
    write_styles(run_dir, styles)
    curve = record.get("curve", [])
    history = [{"step": p["step"], "eval_loss": p["validation_loss"]} for p in curve]
    history += [{"step": p["step"], "loss": p["loss"]} for p in record.get("training_loss", [])]
    plot_loss_curves(sorted(history, key=lambda entry: entry["step"]), run_dir / "loss_curves.png")
    write_run_info(
        run_dir,
        {
            "model": dataclasses.asdict(model_args),
            "data": dataclasses.asdict(data_args),
            "training": training_args.to_dict(),
        },
        {
            "learning_rate": float(record["learning_rate"]),
            "training_method": training_method(model_args),
            "global_step": int(record["steps"]),
            "world_size": 1,
            "wall_seconds": record.get("train_seconds", record.get("seconds")),
            "config_file": GPU_CONFIG,
            "hardware": f"1 x {machine.get('device', 'GPU')}",
            "versions": {
                **library_versions(),
                **{k: machine[k] for k in ("torch", "transformers") if k in machine},
            },
            "gpu_recipe": {
                "machine": machine,
                **{k: v for k, v in record.items() if k not in ("training_loss",)},
            },
        },
    )
    logger.info(
        "%s: validation loss %.4f on %d windows",
        run_dir.name,
        metrics["eval_loss"],
        len(windows["validation"]),
    )
    return run_dir


def gpu_stage_record(run_dir: Path, record: dict[str, Any], started_from: str) -> dict[str, Any]:
    """The GPU stage as a row of `training_stages.json` (the fields `shipping.stage_record` writes)."""
    results = json.loads((run_dir / "all_results.json").read_text())
    return {
        "run": run_dir.name,
        "config": GPU_CONFIG,
        "started_from": started_from,
        "steps": record["steps"],
        "window_length": 1024,
        "batch_size": record["batch_size"],
        "tokens": record["tokens"],
        "learning_rate": record["learning_rate"],
        "transpose": record.get("transpose", 0),
        "wall_seconds": record["train_seconds"],
        "eval_loss": results["eval_loss"],
    }


def _trained_on_gpu(model_dir: Path) -> bool:
    """Whether a model folder's last training stage is this recipe's (so it is not the CPU base)."""
    path = model_dir / STAGES_FILE
    stages = json.loads(path.read_text()) if path.exists() else []
    return bool(stages) and stages[-1].get("config") == GPU_CONFIG


def ship_gpu(
    base_results: Path,
    style_results: Path,
    maestro_dir: str,
    runs_dir: Path,
    models_dir: Path,
    styles: tuple[str, ...] = STYLES,
) -> dict[str, Any]:
    """Build the run folders, export them into `models_dir`; returns the selection record."""
    base = _load_results(base_results)
    if "base" not in base:
        raise ValueError(f"{base_results}/results.json has no base phase.")
    cpu_base = models_dir / "gigapiano-base"
    staging = runs_dir / "gigapiano-base-stage8"  # the CPU base the GPU stage starts from, kept aside
    if _trained_on_gpu(cpu_base):
        if not (staging / "config.json").exists():
            raise ValueError(
                f"{cpu_base} already holds a GPU-trained base and {staging} is missing: restore the CPU base "
                "first (git log -- models/gigapiano-base)."
            )
    else:
        if staging.exists():
            shutil.rmtree(staging)
        shutil.copytree(cpu_base, staging)
    cpu_stages = json.loads((staging / STAGES_FILE).read_text()) if (staging / STAGES_FILE).exists() else []
    base_record = {**base["base"], "transpose": base["config"]["base"].get("transpose", 0)}
    base_run = build_run(
        runs_dir / "gpu-base",
        base_results / "base.safetensors",
        staging,
        ["--config", str(PROJECT_ROOT / BASE_DATA_CONFIG), "--maestro_dir", maestro_dir],
        base_record,
        "full",
        base["machine"],
    )
    stages = [*cpu_stages, gpu_stage_record(base_run, base_record, str(base["config"]["base"]["init"]))]
    (base_run / STAGES_FILE).write_text(json.dumps(stages, indent=2) + "\n")
    exported_base = export_model(base_run, models_dir / "gigapiano-base")

    fine_tunes = _load_results(style_results)
    selection: dict[str, Any] = {}
    for style in styles:
        record = fine_tunes.get("styles", {}).get(style)
        if record is None:
            raise ValueError(f"{style_results}/results.json has no fine-tune of {style!r}.")
        chosen = record["methods"][record["chosen"]]
        run = build_run(
            runs_dir / f"gpu-{style}",
            style_results / f"{style}.safetensors",
            exported_base,
            [
                "--config",
                str(PROJECT_ROOT / STYLE_DATA_CONFIG),
                "--maestro_dir",
                maestro_dir,
                "--style",
                style,
            ],
            {
                **chosen,
                "tokens": chosen["steps"] * chosen["batch_size"] * 1024,
                "transpose": fine_tunes["config"]["styles"].get("transpose", 0),
            },
            chosen["method"],
            fine_tunes["machine"],
        )
        export_model(run, models_dir / f"gigapiano-{style}")
        selection[style] = {
            "validation_loss": {key: value["validation_best"] for key, value in record["methods"].items()},
            "base_validation_loss": record["new_base"],
            "measured_on": "every validation window of the style, on the GPU (gpu_recipe.py)",
            "shipped": record["chosen"],
            "run": str(run),
        }
    (models_dir / "selection.json").write_text(json.dumps(selection, indent=2) + "\n")
    write_gpu_summary(models_dir, base_run, [runs_dir / f"gpu-{style}" for style in styles], selection)
    return selection


def write_gpu_summary(models_dir: Path, base_run: Path, style_runs: list[Path], selection: dict) -> Path:
    """Replace the GPU section of `models/README.md` (the CPU runs' table above it stays, unshipped)."""
    path = models_dir / "README.md"
    text = path.read_text() if path.exists() else "# Shipped models\n"
    text = text.split(SUMMARY_MARKER)[0].replace(" | yes |", " |  |").rstrip() + "\n\n"
    machine = json.loads((base_run / "run_info.json").read_text())["hardware"]
    lines = [
        SUMMARY_MARKER,
        "",
        f"The shipped models now come from `{GPU_CONFIG}` on {machine}: the CPU base above (stage 8) "
        "continued on every MAESTRO training performance, then per style the fine-tune with the lowest loss "
        "on the style's validation windows (`models/selection.json` lists every one compared). Made by "
        "`python -m gigapiano.training.gpu_recipe` and shipped by "
        "`python -m gigapiano.training.gpu_shipping`; wall s counts the GPU's training seconds. Validation "
        "metrics as above (the first 128 windows), computed on this machine from the shipped weights.",
        "",
        "| run | training | learning rate | steps | wall s | val loss | val accuracy | val perplexity "
        "| shipped |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
        run_row("base stage 9 (gpu-base)", base_run, True),
        *(
            run_row(f"{style} ({selection[style]['shipped']})", run, True)
            for run in style_runs
            for style in [run.name.removeprefix("gpu-")]
        ),
        "",
    ]
    path.write_text(text + "\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Ship the GPU recipe's models into models/ (see the docstring)."
    )
    parser.add_argument(
        "--base_results", required=True, help="Output folder of the call that trained the base."
    )
    parser.add_argument(
        "--style_results",
        default=None,
        help="Output folder of the call that fine-tuned the styles (default: the same).",
    )
    parser.add_argument(
        "--maestro_dir", required=True, help="Extracted MAESTRO v3 folder (CSV + year folders)."
    )
    parser.add_argument("--runs_dir", default="runs", help="Where the run folders go (default: runs).")
    parser.add_argument("--models_dir", default="models", help="Where shipped models go (default: models).")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        selection = ship_gpu(
            Path(args.base_results),
            Path(args.style_results or args.base_results),
            args.maestro_dir,
            Path(args.runs_dir),
            Path(args.models_dir),
        )
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(selection, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
