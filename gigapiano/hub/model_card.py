"""Model cards filled from a training run's own records, never from hand-typed numbers.

The template is `model_cards/template.md` (Jinja, rendered by `huggingface_hub.ModelCard`); the values
come from `run_info.json`, `all_results.json`, `pieces.json` and `style.yaml` in the run folder. Words
about a known style (what it sounds like, upstream's reference numbers) come from
`model_cards/styles/<style>.yaml`. `train.py` writes a draft with `write_model_card(run_dir)`;
`publish.py` renders the final card with the repo id, the base and dataset repos and the file list.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CARDS_DIR = PROJECT_ROOT / "model_cards"
TEMPLATE_PATH = CARDS_DIR / "template.md"
STYLE_NOTES_DIR = CARDS_DIR / "styles"
#: The project's named styles (`gigapiano.data`); each is one config of the dataset repo.
STYLES_DIR = PROJECT_ROOT / "configs" / "styles"
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
PIPELINE_TAG = "text-generation"
#: model-index metric name -> key in `all_results.json`.
METRIC_NAMES = {"loss": "eval_loss", "accuracy": "eval_accuracy", "perplexity": "eval_perplexity"}
#: First path components that always mean a local folder, never a Hub namespace.
LOCAL_PREFIXES = ("models", "runs", "outputs", "datasets", "spaces")
#: Dataset id used in the model-index when the card is a draft without a dataset repo.
DRAFT_DATASET_TYPE = "maestro-v3.0.0"
#: A multi-stage training's record of every stage (written by `gigapiano.training.shipping`).
STAGES_FILE = "training_stages.json"


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def _format_seconds(seconds: float | None) -> str:
    if not seconds:
        return "unknown"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _augmentation(transpose: int, stages: list[dict[str, Any]]) -> str:
    """The card's augmentation line: this run's, and for a multi-stage training each stage's that had one."""
    line = "none"
    if transpose:
        line = f"random transposition of training windows by up to ±{transpose} semitones"
    earlier = [
        f"stage {number} by up to ±{stage['transpose']}"
        for number, stage in enumerate(stages[:-1], start=1)
        if stage.get("transpose")
    ]
    if earlier:
        line += " in this last stage; earlier, random transposition of the training windows: "
        line += ", ".join(earlier) + " semitones"
    return line


def is_hub_id(name: str | None) -> bool:
    """True for `namespace/name` strings that are not local paths (absolute, relative to the working
    directory or to the project, as `train.py` resolves them) nor `scratch:` presets.

    `models/...`, `runs/...` and `outputs/...` are the project's own folders (and `models`, `datasets`
    and `spaces` are reserved on the Hub), so they count as local even before the folder exists.
    """
    if not name or name.startswith(("scratch:", "/", ".", "~")) or name.count("/") != 1:
        return False
    if name.split("/")[0] in LOCAL_PREFIXES:
        return False
    return not (Path(name).exists() or (PROJECT_ROOT / name).exists())


def style_notes(name: str | None, notes_dir: Path = STYLE_NOTES_DIR) -> dict[str, Any]:
    """The prose and upstream reference values of a known style (`{}` when there is no notes file)."""
    if not name:
        return {}
    path = notes_dir / f"{name}.yaml"
    if not path.is_file():
        return {}
    notes = yaml.safe_load(path.read_text()) or {}
    if not isinstance(notes, dict):
        raise ValueError(f"{path} must hold a mapping (style, about, try_it, upstream).")
    return notes


def run_styles(run_dir: Path) -> list[dict[str, Any]]:
    """The style definitions a run trained on (`style.yaml`, one YAML document per style)."""
    path = run_dir / "style.yaml"
    if not path.exists():
        return []
    return [doc for doc in yaml.safe_load_all(path.read_text()) if isinstance(doc, dict)]


def effective_batch_size(info: dict[str, Any]) -> int:
    """Training windows per optimiser step of a run, from its `run_info.json` record."""
    training = info.get("arguments", {}).get("training", {})
    return (
        training.get("per_device_train_batch_size", 0)
        * info.get("world_size", 1)
        * training.get("gradient_accumulation_steps", 1)
    )


def _provenance(from_scratch: bool, lineage_from_scratch: bool, stages: int) -> str:
    if from_scratch:
        return "trained from scratch"
    if lineage_from_scratch:
        return f"trained from scratch in {stages} stages"
    return "fine-tuned"


def _local_base_config(base_model: str) -> dict[str, Any]:
    """`config.json` of a base model given as a local folder (relative to the project, as train.py does)."""
    if not base_model or base_model.startswith("scratch:"):
        return {}
    for folder in (Path(base_model), PROJECT_ROOT / base_model):
        if (folder / "config.json").is_file():
            return _read_json(folder / "config.json")
    return {}


def _dataset_config(styles: list[dict[str, Any]]) -> str | None:
    """The dataset repo's config for the run's data: a single named style of `configs/styles/`."""
    if len(styles) != 1:
        return None
    name = styles[0].get("name")
    return name if name and (STYLES_DIR / f"{name}.yaml").is_file() else None


def _split_mode(data_args: dict[str, Any], styles: list[dict[str, Any]]) -> str:
    """The split the run made: `auto` (the default since composition grouping) resolved by its selection.

    Runs recorded before `split_by` existed split by piece.
    """
    from gigapiano.data import resolve_split_by

    split_by = data_args.get("split_by", "piece")
    if split_by != "auto":
        return split_by
    selection = data_args.get("pieces") or (styles[0].get("pieces") if styles else None) or "all"
    return resolve_split_by(split_by, selection)


def card_values(
    run_dir: Path,
    repo_id: str | None = None,
    base_model_id: str | None = None,
    dataset_id: str | None = None,
    repo_files: Sequence[tuple[str, str]] = (),
    example_prompt: str | None = None,
    has_handler: bool = False,
) -> dict[str, Any]:
    """Everything the template needs, read from the run folder.

    Args:
        run_dir: a folder written by `train.py`.
        repo_id: the Hub repo the card is for (default: a `<namespace>/<folder name>` placeholder).
        base_model_id: Hub id of the base model, for the metadata and the adapter usage snippet (default:
            the run's base when it already is a Hub id).
        dataset_id: Hub id of the tokenised-style dataset repo, for `datasets` and the model-index.
        repo_files: `(path in repo, description)` of the files published next to the card.
        example_prompt: path in the repo of an example prompt MIDI, used by the usage snippet.
        has_handler: the repo carries `handler.py` for Inference Endpoints.

    Raises:
        FileNotFoundError: the folder has no `run_info.json` / `all_results.json` (not a finished run).
    """
    info_path, results_path = run_dir / "run_info.json", run_dir / "all_results.json"
    for path in (info_path, results_path):
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: {run_dir} is not a finished train.py run.")
    info, results = _read_json(info_path), _read_json(results_path)
    stages = json.loads((run_dir / STAGES_FILE).read_text()) if (run_dir / STAGES_FILE).exists() else []
    pieces = _read_json(run_dir / "pieces.json")
    styles = run_styles(run_dir)
    arguments = info.get("arguments", {})
    model_args, data_args, training_args = (arguments.get(k, {}) for k in ("model", "data", "training"))
    recorded_base = str(model_args.get("base_model", ""))
    config = (
        _read_json(run_dir / "config.json")
        or _read_json(run_dir / "adapter" / "config.json")
        or _local_base_config(recorded_base)  # an adapter: the context is the base model's
    )
    from_scratch = recorded_base.startswith("scratch:")
    # a staged base: the first stage says where the whole lineage started
    lineage_from_scratch = bool(stages) and str(stages[0].get("started_from", "")).startswith("scratch:")
    base_model = base_model_id or (recorded_base if is_hub_id(recorded_base) else None)
    is_adapter = (run_dir / "adapter_config.json").exists()
    style_names = [s.get("display_name", s.get("name", "")) for s in styles] or [
        data_args.get("style") or "custom"
    ]
    composers = sorted({c for s in styles for c in s.get("composers", [])}) or data_args.get("composer") or []
    notes = [style_notes(s.get("name")) for s in styles]
    context = int(config.get("max_position_embeddings", 1024))
    if from_scratch:
        base_description = f"random weights (`{recorded_base}`)"
    elif base_model:
        base_description = f"[`{base_model}`](https://huggingface.co/{base_model})"
    else:
        base_description = f"the local model folder `{Path(recorded_base).name or recorded_base}`"
    return {
        "model_name": repo_id.split("/")[-1] if repo_id else run_dir.name,
        "repo_id": repo_id or f"<namespace>/{run_dir.name}",
        "summary": (
            f"A GIGA-Piano piano-music model "
            f"{_provenance(from_scratch, lineage_from_scratch, len(stages))} "
            f"on MAESTRO performances in the style **{' + '.join(style_names)}**."
        ),
        "style_display_name": " + ".join(style_names),
        "style_description": " ".join(s.get("description", "") for s in styles).strip()
        or "A MAESTRO composer set.",
        "style_notes": [n for n in notes if n],
        "composers": ", ".join(composers),
        "piece_counts": {split: len(names) for split, names in pieces.items()},
        "train_pieces": len(pieces.get("train", [])),
        "split": {
            "split_by": _split_mode(data_args, styles),
            "validation_fraction": data_args.get("validation_fraction"),
            "test_fraction": data_args.get("test_fraction"),
            "split_seed": data_args.get("split_seed"),
        },
        "eval_loss": results.get("eval_loss", float("nan")),
        "eval_accuracy": results.get("eval_accuracy", float("nan")),
        "eval_perplexity": results.get("eval_perplexity", float("nan")),
        "eval_dt_accuracy": results.get("eval_dt_accuracy"),
        "eval_dur_accuracy": results.get("eval_dur_accuracy"),
        "eval_pitch_accuracy": results.get("eval_pitch_accuracy"),
        "eval_windows": results.get("eval_windows"),
        "base_model": base_model,
        "base_model_description": base_description,
        "from_scratch": from_scratch,
        "training_method": info.get("training_method", "unknown"),
        "global_step": info.get("global_step", 0),
        "train_windows": results.get("train_windows", 0),
        "window_length": data_args.get("window_length", 1024),
        "batch_size": effective_batch_size(info),
        "learning_rate": info.get("learning_rate", float("nan")),
        "lr_auto": (run_dir / "lr_find.json").exists(),
        "schedule": training_args.get("schedule", "one_cycle").replace("_", "-"),
        "augmentation": _augmentation(data_args.get("transpose", 0), stages),
        "stages": stages,
        "total_tokens": sum(stage.get("tokens", 0) for stage in stages),
        "hardware": info.get("hardware", "unknown"),
        "wall_time": _format_seconds(info.get("wall_seconds")),
        "git_commit": info.get("git_commit"),
        "versions": info.get("versions", {}),
        "is_adapter": is_adapter,
        "has_merged_adapter": (run_dir / "adapter" / "adapter_config.json").exists(),
        "context": context,
        "prompt_tokens": context // 2,
        "style_names": [s.get("name") for s in styles],
        "dataset_id": dataset_id,
        "dataset_config": _dataset_config(styles),
        "repo_files": list(repo_files),
        "example_prompt": example_prompt,
        "has_handler": has_handler,
        "has_loss_plot": (run_dir / "loss_curves.png").exists(),
    }


def card_data(values: dict[str, Any], dataset_id: str | None = None) -> ModelCardData:
    """The YAML metadata: license, tags, pipeline, base model and a model-index with the run's numbers.

    The metric values are the run's `all_results.json` numbers as they are (not rounded), so the card and
    the run can be compared exactly.
    """
    dataset_id = dataset_id or values.get("dataset_id")
    split = {k: v for k, v in values.get("split", {}).items() if v is not None}
    eval_results = [
        EvalResult(
            task_type=PIPELINE_TAG,
            task_name="Symbolic piano music continuation",
            dataset_type=dataset_id or DRAFT_DATASET_TYPE,
            dataset_name=f"MAESTRO v3.0.0, {values['style_display_name']} (held-out validation pieces)",
            dataset_config=values.get("dataset_config") if dataset_id else None,
            dataset_split="validation",
            dataset_args=split or None,
            metric_type=metric,
            metric_name=metric,
            metric_value=float(values[key]),
        )
        for metric, key in METRIC_NAMES.items()
        if values.get(key) is not None and math.isfinite(float(values[key]))
    ]
    base = values["base_model"]
    relation = None
    if base:
        relation = "adapter" if values["is_adapter"] else "finetune"
    extra = {"base_model_relation": relation} if relation else {}
    return ModelCardData(
        language=None,
        license=LICENSE,
        library_name="peft" if values["is_adapter"] else "transformers",
        tags=TAGS + [name for name in values["style_names"] if name],
        pipeline_tag=PIPELINE_TAG,
        datasets=[dataset_id] if dataset_id else None,
        base_model=base,
        model_name=values["model_name"],
        eval_results=eval_results or None,
        **extra,
    )


def render_model_card(
    run_dir: str | Path,
    repo_id: str | None = None,
    base_model_id: str | None = None,
    dataset_id: str | None = None,
    repo_files: Sequence[tuple[str, str]] = (),
    example_prompt: str | None = None,
    has_handler: bool = False,
) -> ModelCard:
    """Render the model card of a finished run (see `card_values` for the arguments)."""
    values = card_values(
        Path(run_dir), repo_id, base_model_id, dataset_id, repo_files, example_prompt, has_handler
    )
    return ModelCard.from_template(card_data(values), template_path=str(TEMPLATE_PATH), **values)


def write_model_card(run_dir: str | Path, **kwargs: Any) -> Path:
    """Write the rendered card as `README.md` in the run folder (a draft until published with a repo id).

    Args:
        run_dir: a finished run folder.
        kwargs: passed to `render_model_card` (e.g. `repo_id`, `base_model_id`, `dataset_id`).

    Returns:
        The path written.
    """
    path = Path(run_dir) / "README.md"
    render_model_card(run_dir, **kwargs).save(path)
    logger.info("Model card draft written to %s.", path)
    return path


__all__ = [
    "LICENSE",
    "METRIC_NAMES",
    "TAGS",
    "card_data",
    "card_values",
    "is_hub_id",
    "render_model_card",
    "style_notes",
    "write_model_card",
]
