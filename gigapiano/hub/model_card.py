"""Model cards filled from a training run's own records, never from hand-typed numbers.

The template is `model_cards/template.md` (Jinja, rendered by `huggingface_hub.ModelCard`); the values
come from `run_info.json`, `all_results.json`, `pieces.json` and `style.yaml` in the run folder.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

logger = logging.getLogger(__name__)

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "model_cards" / "template.md"
LICENSE = "cc-by-nc-sa-4.0"
TAGS = [
    "music",
    "midi",
    "piano",
    "symbolic-music",
    "music-generation",
    "gigapiano",
    "transformers",
    "custom_code",
]
METRIC_NAMES = {"loss": "eval_loss", "accuracy": "eval_accuracy", "perplexity": "eval_perplexity"}


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def _format_seconds(seconds: float | None) -> str:
    if not seconds:
        return "unknown"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def card_values(
    run_dir: Path, repo_id: str | None = None, base_model_id: str | None = None
) -> dict[str, Any]:
    """Everything the template needs, read from the run folder.

    Args:
        run_dir: a folder written by `train.py`.
        repo_id: the Hub repo the card is for (default: `<namespace>/<folder name>` placeholder).
        base_model_id: Hub id of the base model, for the metadata and the adapter usage snippet.

    Raises:
        FileNotFoundError: the folder has no `run_info.json` / `all_results.json` (not a finished run).
    """
    info_path, results_path = run_dir / "run_info.json", run_dir / "all_results.json"
    for path in (info_path, results_path):
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: {run_dir} is not a finished train.py run.")
    info, results = _read_json(info_path), _read_json(results_path)
    pieces = _read_json(run_dir / "pieces.json")
    styles = (
        list(yaml.safe_load_all((run_dir / "style.yaml").read_text()))
        if (run_dir / "style.yaml").exists()
        else []
    )
    arguments = info.get("arguments", {})
    model_args, data_args, training_args = (arguments.get(k, {}) for k in ("model", "data", "training"))
    config = _read_json(run_dir / "config.json") or _read_json(run_dir / "adapter" / "config.json")
    base_model = model_args.get("base_model", "")
    is_adapter = (run_dir / "adapter_config.json").exists()
    style_names = [s.get("display_name", s.get("name", "")) for s in styles] or [
        data_args.get("style") or "custom"
    ]
    composers = sorted({c for s in styles for c in s.get("composers", [])}) or data_args.get("composer") or []
    return {
        "model_name": repo_id.split("/")[-1] if repo_id else run_dir.name,
        "repo_id": repo_id or f"<namespace>/{run_dir.name}",
        "summary": (
            f"A GIGA-Piano piano-music model {'trained from scratch' if base_model.startswith('scratch:') else 'fine-tuned'} "
            f"on MAESTRO performances in the style **{' + '.join(style_names)}**."
        ),
        "style_display_name": " + ".join(style_names),
        "style_description": " ".join(s.get("description", "") for s in styles).strip()
        or "A MAESTRO composer set.",
        "composers": ", ".join(composers),
        "piece_counts": {split: len(names) for split, names in pieces.items()},
        "train_pieces": len(pieces.get("train", [])),
        "eval_loss": results.get("eval_loss", float("nan")),
        "eval_accuracy": results.get("eval_accuracy", float("nan")),
        "eval_perplexity": results.get("eval_perplexity", float("nan")),
        "eval_dt_accuracy": results.get("eval_dt_accuracy"),
        "eval_dur_accuracy": results.get("eval_dur_accuracy"),
        "eval_pitch_accuracy": results.get("eval_pitch_accuracy"),
        "base_model": base_model_id or base_model,
        "base_model_description": (
            f"random weights (`{base_model}`)"
            if base_model.startswith("scratch:")
            else f"`{base_model_id or base_model}`"
        ),
        "training_method": info.get("training_method", "unknown"),
        "global_step": info.get("global_step", 0),
        "train_windows": results.get("train_windows", 0),
        "window_length": data_args.get("window_length", 1024),
        "batch_size": training_args.get("per_device_train_batch_size", 0)
        * info.get("world_size", 1)
        * training_args.get("gradient_accumulation_steps", 1),
        "learning_rate": info.get("learning_rate", float("nan")),
        "lr_auto": (run_dir / "lr_find.json").exists(),
        "schedule": training_args.get("schedule", "one_cycle").replace("_", "-"),
        "augmentation": (
            f"random transposition of training windows by up to ±{data_args['transpose']} semitones"
            if data_args.get("transpose")
            else "none"
        ),
        "hardware": info.get("hardware", "unknown"),
        "wall_time": _format_seconds(info.get("wall_seconds")),
        "git_commit": info.get("git_commit"),
        "is_adapter": is_adapter,
        "context": config.get("max_position_embeddings", 1024),
        "style_names": [s.get("name") for s in styles],
    }


def card_data(values: dict[str, Any], dataset_id: str | None = None) -> ModelCardData:
    """The YAML metadata: license, tags, pipeline, base model and a model-index with the run's numbers."""
    base = values["base_model"]
    eval_results = [
        EvalResult(
            task_type="text-generation",
            task_name="Symbolic piano music continuation",
            dataset_type=dataset_id or "maestro-v3.0.0",
            dataset_name=f"MAESTRO v3.0.0, {values['style_display_name']} (held-out validation pieces)",
            dataset_split="validation",
            metric_type=metric,
            metric_name=metric,
            metric_value=round(float(values[key]), 4),
        )
        for metric, key in METRIC_NAMES.items()
    ]
    return ModelCardData(
        language=None,
        license=LICENSE,
        library_name="peft" if values["is_adapter"] else "transformers",
        tags=TAGS + [name for name in values["style_names"] if name],
        pipeline_tag="text-generation",
        datasets=[dataset_id] if dataset_id else None,
        base_model=base if base and not base.startswith(("scratch:", "/", ".")) else None,
        model_name=values["model_name"],
        eval_results=eval_results,
    )


def render_model_card(
    run_dir: str | Path,
    repo_id: str | None = None,
    base_model_id: str | None = None,
    dataset_id: str | None = None,
) -> ModelCard:
    """Render the model card of a finished run."""
    values = card_values(Path(run_dir), repo_id, base_model_id)
    return ModelCard.from_template(card_data(values, dataset_id), template_path=str(TEMPLATE_PATH), **values)


def write_model_card(run_dir: str | Path, **kwargs: Any) -> Path:
    """Write the rendered card as `README.md` in the run folder (a draft until published with a repo id)."""
    path = Path(run_dir) / "README.md"
    render_model_card(run_dir, **kwargs).save(path)
    logger.info("Model card draft written to %s.", path)
    return path
