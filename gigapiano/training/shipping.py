"""The CPU recipe behind the shipped models: a base trained on all of MAESTRO, one model per style.

The shipped models go one step further on a GPU: `gpu_recipe.py` continues this recipe's base (stage 9) and
fine-tunes the styles from it, and `gpu_shipping.py` exports those (docs/training.md).

One command reproduces them (each stage is an ordinary `train.py` run, so an interrupted recipe resumes
where it stopped, and finished stages are skipped):

    python -m gigapiano.training.shipping --maestro_dir ../shared/maestro/maestro-v3.0.0

1. the base, in eight stages: `configs/train/base_medium_512.yaml` (the medium preset from scratch on every
   MAESTRO training performance of every composer, 512-token windows), `base_medium_1024.yaml` (the same
   weights continued at the full 1024-token context), then `base_medium_512_more.yaml` and
   `base_medium_1024_more.yaml` (a second pass over the data, warm-restarted, again 512 then 1024 tokens),
   then `base_medium_512_third.yaml` (a third pass, training windows transposed by up to 3 semitones) and
   `base_medium_1024_third.yaml` (back to 1024 tokens in the recorded keys), then the same again for a
   fourth pass: `base_medium_512_fourth.yaml` and `base_medium_1024_final.yaml`;
2. per style, fine-tunes of that base on all of the composer's training performances: upstream-style
   top blocks (`style_medium_blocks.yaml`), LoRA merged into the weights (`style_medium_lora.yaml`) and
   every parameter (`style_medium_full.yaml`); `--methods` picks which;
3. per style, the fine-tune with the lower validation loss on the style's held-out pieces is shipped;
4. every shipped model is exported in fp16 (small enough to commit) with its tokenizer, model card and
   training records, `models/selection.json` records the comparison and `models/README.md` sums up
   every run (method, learning rate, steps, wall time, validation metrics) from the runs' own records.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from modeling_gigapiano import apply_fast_generation_defaults
from tokenization import GigaPianoTokenizer

from ..hub.model_card import STAGES_FILE, effective_batch_size, write_model_card
from .arguments import PROJECT_ROOT

logger = logging.getLogger(__name__)

STYLES = ("baroque", "romantic", "rachmaninoff")
METHODS = {
    "blocks": "configs/train/style_medium_blocks.yaml",
    "lora": "configs/train/style_medium_lora.yaml",
    "full": "configs/train/style_medium_full.yaml",
}
#: The base's stages, in order: (config, run folder name). Each stage starts from the previous one's run.
BASE_STAGES = (
    ("configs/train/base_medium_512.yaml", "gigapiano-base-512"),
    ("configs/train/base_medium_1024.yaml", "gigapiano-base-1024"),
    ("configs/train/base_medium_512_more.yaml", "gigapiano-base-512-more"),
    ("configs/train/base_medium_1024_more.yaml", "gigapiano-base-1024-more"),
    ("configs/train/base_medium_512_third.yaml", "gigapiano-base-512-third"),
    ("configs/train/base_medium_1024_third.yaml", "gigapiano-base-1024-third"),
    ("configs/train/base_medium_512_fourth.yaml", "gigapiano-base-512-fourth"),
    ("configs/train/base_medium_1024_final.yaml", "gigapiano-base"),
)
RECORD_FILES = (
    "all_results.json",
    "run_info.json",
    "pieces.json",
    "style.yaml",
    "loss_curves.png",
    "lr_find.png",
    "lr_find.json",
    "trainer_state.json",
    STAGES_FILE,  # the base's record of every stage, written into its last run (`write_stages`)
)


def run_train(config: str, output_dir: Path, maestro_dir: str, *extra: str) -> Path:
    """One `train.py` run in a child process (resumes when `output_dir` holds checkpoints)."""
    if (output_dir / "all_results.json").exists():
        logger.info("%s is already trained; skipping.", output_dir)
        return output_dir
    command = [
        sys.executable,
        str(PROJECT_ROOT / "train.py"),
        "--config",
        config,
        "--maestro_dir",
        maestro_dir,
        "--output_dir",
        str(output_dir),
        *extra,
    ]
    logger.info("Running %s", " ".join(command))
    subprocess.run(command, cwd=PROJECT_ROOT, check=True)
    return output_dir


def export_model(run_dir: Path, target: Path, dtype: torch.dtype = torch.float16) -> Path:
    """Copy a finished run into a shippable folder: fp16 weights + code, tokenizer, card and records.

    The model is re-saved rather than copied so that the weights shrink to `dtype` and the config carries
    this version's defaults (no padding id: the separator is no padding).
    """
    model = AutoModelForCausalLM.from_pretrained(run_dir, trust_remote_code=True, dtype=torch.float32)
    model.config.pad_token_id = None
    model.generation_config.pad_token_id = None
    apply_fast_generation_defaults(model.generation_config)
    if target.exists():
        shutil.rmtree(target)
    model.to(dtype).save_pretrained(target)
    GigaPianoTokenizer().save_pretrained(target)
    for name in RECORD_FILES:
        if (run_dir / name).exists():
            shutil.copy2(run_dir / name, target / name)
    write_model_card(target)
    logger.info("Exported %s -> %s", run_dir, target)
    return target


def stage_record(config: str, run_dir: Path) -> dict:
    """One base stage as its card shows it: config, steps, tokens, learning rate, augmentation, result."""
    info = json.loads((run_dir / "run_info.json").read_text())
    results = json.loads((run_dir / "all_results.json").read_text())
    data, batch = info["arguments"]["data"], effective_batch_size(info)
    return {
        "run": run_dir.name,
        "config": config,
        "started_from": str(info["arguments"]["model"].get("base_model", "")),
        "steps": info["global_step"],
        "window_length": data["window_length"],
        "batch_size": batch,
        "tokens": info["global_step"] * batch * data["window_length"],
        "learning_rate": info["learning_rate"],
        "transpose": data.get("transpose", 0),
        "wall_seconds": info.get("wall_seconds"),
        "eval_loss": results["eval_loss"],
    }


def write_stages(stages: list[tuple[str, Path]]) -> Path:
    """`training_stages.json` in the last stage's folder: the records of every `(config, run)`, in order."""
    path = stages[-1][1] / STAGES_FILE
    path.write_text(json.dumps([stage_record(config, run) for config, run in stages], indent=2) + "\n")
    return path


def validation_loss(run_dir: Path) -> float:
    return float(json.loads((run_dir / "all_results.json").read_text())["eval_loss"])


def run_row(name: str, run_dir: Path, shipped: bool) -> str:
    """One `models/README.md` table row, read from a run folder's records."""
    info = json.loads((run_dir / "run_info.json").read_text())
    results = json.loads((run_dir / "all_results.json").read_text())
    return (
        f"| {name} | {info.get('training_method', '?')} | {info['learning_rate']:.3g} | "
        f"{info['global_step']} | {info['wall_seconds']:.0f} | {results['eval_loss']:.4f} | "
        f"{results['eval_accuracy']:.3f} | {results['eval_perplexity']:.2f} | {'yes' if shipped else ''} |"
    )


def write_summary(selection: dict, runs_dir: Path, models_dir: Path) -> Path:
    """`models/README.md`: one table row per training run, read from the runs' records, never typed."""
    rows = [
        run_row(f"base stage {i + 1} ({name})", runs_dir / name, name == BASE_STAGES[-1][1])
        for i, (_, name) in enumerate(BASE_STAGES)
    ]
    for style, record in selection.items():
        for method in record["validation_loss"]:
            run_dir = runs_dir / f"style-{method}-{style}"
            rows.append(run_row(f"{style} ({method})", run_dir, record["shipped"] == method))
    base_info = json.loads((runs_dir / "gigapiano-base" / "run_info.json").read_text())
    lines = [
        "# Shipped models",
        "",
        "Made by `python -m gigapiano.training.shipping --maestro_dir <MAESTRO v3 folder>` on "
        f"{base_info.get('hardware', 'unknown hardware')}. Validation metrics are each run's own held-out "
        "windows (the base: the first windows of MAESTRO's validation performances of all composers; a style "
        "run: that composer's validation performances), all tokens counted. Per style, the "
        "fine-tune with the lower validation loss is shipped as `gigapiano-<style>` (fp16).",
        "",
        "| run | training | learning rate | steps | wall s | val loss | val accuracy | val perplexity "
        "| shipped |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
        *rows,
        "",
    ]
    path = models_dir / "README.md"
    path.write_text("\n".join(lines))
    return path


def ship_all(
    maestro_dir: str,
    runs_dir: Path,
    models_dir: Path,
    styles: tuple[str, ...] = STYLES,
    methods: tuple[str, ...] = tuple(METHODS),
) -> dict:
    """Run the whole recipe; returns the selection record written to `models/selection.json`."""
    previous: Path | None = None
    stage_dirs = []
    for config, name in BASE_STAGES:
        extra = ("--base_model", str(previous)) if previous is not None else ()
        previous = run_train(config, runs_dir / name, maestro_dir, *extra)
        stage_dirs.append((config, previous))
    write_stages(stage_dirs)
    base_model = export_model(previous, models_dir / "gigapiano-base")
    selection: dict[str, dict] = {}
    for style in styles:
        candidates = {
            method: run_train(
                config,
                runs_dir / f"style-{method}-{style}",
                maestro_dir,
                "--style",
                style,
                "--base_model",
                str(base_model),
            )
            for method, config in METHODS.items()
            if method in methods
        }
        losses = {method: validation_loss(run) for method, run in candidates.items()}
        chosen = min(losses, key=losses.get)
        export_model(candidates[chosen], models_dir / f"gigapiano-{style}")
        selection[style] = {"validation_loss": losses, "shipped": chosen, "run": str(candidates[chosen])}
        logger.info("%s: validation loss %s -> shipping %s", style, losses, chosen)
    (models_dir / "selection.json").write_text(json.dumps(selection, indent=2) + "\n")
    write_summary(selection, runs_dir, models_dir)
    return selection


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train and export the shipped base and style models.")
    parser.add_argument(
        "--maestro_dir", required=True, help="Extracted MAESTRO v3 folder (CSV + year folders)."
    )
    parser.add_argument("--runs_dir", default="runs", help="Where the training runs go (default: runs).")
    parser.add_argument("--models_dir", default="models", help="Where shipped models go (default: models).")
    parser.add_argument(
        "--styles", nargs="+", default=list(STYLES), help="Styles to fine-tune (default: all three)."
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=list(METHODS),
        default=list(METHODS),
        help="Fine-tuning methods to compare per style; the one with the lower validation loss ships "
        "(default: all of them).",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        selection = ship_all(
            args.maestro_dir,
            Path(args.runs_dir),
            Path(args.models_dir),
            tuple(args.styles),
            tuple(args.methods),
        )
    except (subprocess.CalledProcessError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(selection, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
