"""Assemble the folder of one Hub model repo from a finished training run.

A published repo must load for a stranger with nothing but `transformers` (and `peft` for an adapter):

* full weights: `config.json` (with `auto_map`), `generation_config.json`, `model.safetensors` and the
  model code files (`configuration_gigapiano.py`, `modeling_gigapiano.py`);
* or a LoRA adapter: `adapter_config.json` whose `base_model_name_or_path` is the base model's *Hub id*
  (train.py records a local folder there) and `adapter_model.safetensors`;
* the tokenizer: `tokenizer_config.json` and its code (`tokenization_gigapiano.py` and two siblings);
* `README.md` (the model card), `handler.py` + `requirements.txt` for Inference Endpoints (and
  `base_model.json`, the base's Hub id, when the run has a base: the handler's `style_strength` mixes it
  in), an example prompt, and the run's records (`all_results.json`, `pieces.json`, `run_info.json`, ...),
  with local absolute paths replaced by `<local>/<name>`.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub.utils import HFValidationError, validate_repo_id

from .model_card import is_hub_id, render_model_card

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HANDLER_PATH = PROJECT_ROOT / "handler.py"
#: Written next to `handler.py` when the run has a base model: `{"base_model": "<Hub id>"}` (handler.py's
#: `BASE_MODEL_FILE`, read for requests with a `style_strength` other than 1).
HANDLER_BASE_FILE = "base_model.json"
EXAMPLE_PROMPT = PROJECT_ROOT / "examples" / "fur_elise.mid"
EXAMPLE_PROMPT_IN_REPO = "examples/fur_elise.mid"
#: Name of the dataset repo published by `publish.py dataset` in the same namespace.
DEFAULT_DATASET_NAME = "gigapiano-maestro-styles"

MODEL_CODE_FILES = ("configuration_gigapiano.py", "modeling_gigapiano.py")
TOKENIZER_CODE_FILES = ("tokenization_gigapiano.py", "gigapiano_midi.py", "gigapiano_notes.py")
DEFAULT_AUTO_MAP = {
    "AutoConfig": "configuration_gigapiano.GigaPianoConfig",
    "AutoModelForCausalLM": "modeling_gigapiano.GigaPianoForCausalLM",
}
#: Records of the run copied into the repo when present (JSON ones get their local paths redacted).
RECORD_FILES = (
    "all_results.json",
    "pieces.json",
    "style.yaml",
    "run_info.json",
    "trainer_state.json",
    "loss_curves.png",
    "lr_find.json",
    "lr_find.png",
    "training_stages.json",
)
REDACTED_JSON = ("run_info.json", "trainer_state.json")
FILE_DESCRIPTIONS = {
    "README.md": "this model card",
    "config.json": "model configuration, with `auto_map` for `trust_remote_code=True`",
    "generation_config.json": "default generation settings",
    "model.safetensors": "weights (safetensors)",
    "model.safetensors.index.json": "index of the sharded weights",
    "configuration_gigapiano.py": "model code (`trust_remote_code`): the configuration",
    "modeling_gigapiano.py": "model code (`trust_remote_code`): GIGA-Piano with relative attention",
    "adapter_config.json": "LoRA adapter configuration (`peft`), pointing at its base model repo",
    "adapter_model.safetensors": "LoRA adapter weights (safetensors)",
    "adapter/adapter_config.json": "the LoRA adapter these merged weights came from: configuration",
    "adapter/adapter_model.safetensors": "the LoRA adapter these merged weights came from: weights",
    "tokenizer_config.json": "tokenizer configuration, with `auto_map` for `trust_remote_code=True`",
    "tokenization_gigapiano.py": "tokenizer code: `GigaPianoTokenizer` (MIDI in and out)",
    "gigapiano_midi.py": "tokenizer code: MIDI parsing with upstream-exact timing (numpy + symusic)",
    "gigapiano_notes.py": "tokenizer code: notes <-> ids",
    "handler.py": "custom handler for Inference Endpoints (base64 MIDI in, MIDI and WAV out)",
    "requirements.txt": "extra packages the Inference Endpoint installs for `handler.py`",
    HANDLER_BASE_FILE: "the base model's Hub id: `handler.py` mixes it in for `style_strength` other than 1",
    EXAMPLE_PROMPT_IN_REPO: "example prompt: the opening of Beethoven's Für Elise (public domain)",
    "all_results.json": "the run's final metrics (the numbers on this card)",
    "pieces.json": "the MAESTRO files of each split",
    "style.yaml": "the style definition (composers, piece selection)",
    "run_info.json": "every training argument, library versions, git commit, hardware",
    "trainer_state.json": "`Trainer` log: loss per step",
    "loss_curves.png": "training and validation loss",
    "lr_find.json": "learning-rate range test result",
    "lr_find.png": "learning-rate range test plot",
    "training_stages.json": "every stage of a multi-stage training, in order: settings and validation loss",
}


@dataclass
class ModelRepoFolder:
    """What `assemble_model_repo` wrote.

    Attributes:
        path: the repo folder.
        repo_id: the repo it is meant for.
        kind: `full` (weights), `adapter` (LoRA only) or `merged` (merged weights plus the adapter).
        base_repo_id: the base model's Hub id the card and the adapter point at (None from scratch).
        dataset_id: the dataset repo named in the card's metadata.
        files: paths of every file, relative to `path`, sorted.
    """

    path: Path
    repo_id: str
    kind: str
    base_repo_id: str | None
    dataset_id: str | None
    files: list[str] = field(default_factory=list)


def check_repo_id(repo_id: str, what: str = "--repo_id") -> str:
    """Validate a `namespace/name` Hub id.

    Raises:
        ValueError: naming the flag and the expected form.
    """
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(f"{what} {repo_id!r} is not a valid Hub repo id: {error}") from None
    if repo_id.count("/") != 1:
        raise ValueError(f"{what} must be NAMESPACE/NAME (e.g. my-user/gigapiano-baroque), got {repo_id!r}.")
    return repo_id


def default_dataset_id(repo_id: str) -> str:
    """The dataset repo of the same namespace: `<namespace>/gigapiano-maestro-styles`."""
    return f"{repo_id.split('/')[0]}/{DEFAULT_DATASET_NAME}"


def detect_run_kind(run_dir: Path) -> str:
    """`full`, `adapter` or `merged` from the files of a finished run.

    Raises:
        FileNotFoundError: no weights, or a folder that is not a finished run.
        ValueError: weights only in a pickle format (`pytorch_model.bin`).
    """
    if not run_dir.is_dir():
        raise FileNotFoundError(f"Run folder {run_dir} does not exist.")
    has_weights = (run_dir / "model.safetensors").is_file() or (
        run_dir / "model.safetensors.index.json"
    ).is_file()
    if (run_dir / "config.json").is_file() and has_weights:
        return "merged" if (run_dir / "adapter" / "adapter_config.json").is_file() else "full"
    if (run_dir / "adapter_config.json").is_file() and (run_dir / "adapter_model.safetensors").is_file():
        return "adapter"
    if (run_dir / "pytorch_model.bin").is_file():
        raise ValueError(
            f"{run_dir} holds pickled weights (pytorch_model.bin); only safetensors are published."
        )
    raise FileNotFoundError(
        f"{run_dir} holds neither model.safetensors + config.json nor adapter_model.safetensors + "
        "adapter_config.json: is it a finished train.py run (checkpoints are not published)?"
    )


def resolve_base_repo_id(run_dir: Path, repo_id: str, base_repo_id: str | None) -> str | None:
    """The Hub id of the run's base model: `base_repo_id` if given, the recorded base when it is a Hub id,
    else `<namespace of repo_id>/<base folder name>` (a warning says so); None when trained from scratch.
    """
    if base_repo_id:
        return check_repo_id(base_repo_id, "--base_repo_id")
    info = json.loads((run_dir / "run_info.json").read_text()) if (run_dir / "run_info.json").exists() else {}
    recorded = str(info.get("arguments", {}).get("model", {}).get("base_model", ""))
    if not recorded or recorded.startswith("scratch:"):
        return None
    if is_hub_id(recorded):
        return recorded
    guess = f"{repo_id.split('/')[0]}/{Path(recorded).name}"
    logger.warning(
        "The run's base model is the local folder %s; the card%s point at %s (--base_repo_id changes it).",
        recorded,
        " and the adapter" if (run_dir / "adapter_config.json").exists() else "",
        guess,
    )
    return guess


def prepare_output_dir(output_dir: Path, overwrite: bool, protect: Sequence[Path | str | None] = ()) -> Path:
    """Create an empty output folder; an existing non-empty one is only replaced with `overwrite`.

    Args:
        output_dir: the folder to prepare.
        overwrite: delete the content of a non-empty folder.
        protect: inputs (a run folder, MAESTRO) that must be neither the folder nor inside it.

    Raises:
        FileExistsError: the folder holds files and `overwrite` is False.
        ValueError: the folder is one of `protect` or contains one.
    """
    output_dir = output_dir.resolve()
    for path in protect:
        if path is None:
            continue
        resolved = Path(path).resolve()
        if output_dir == resolved or output_dir in resolved.parents:
            raise ValueError(
                f"--output_dir {output_dir} would overwrite the input {path}; pick another folder."
            )
    if output_dir.exists():
        if not output_dir.is_dir():
            raise FileExistsError(f"--output_dir {output_dir} is a file.")
        if any(output_dir.iterdir()):
            if not overwrite:
                raise FileExistsError(
                    f"--output_dir {output_dir} is not empty; pass --overwrite to replace its content."
                )
            shutil.rmtree(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    return output_dir


def redact_local_paths(value: Any) -> Any:
    """Replace absolute local paths in a JSON value by `<local>/<last component>` (privacy on the Hub)."""
    if isinstance(value, dict):
        return {key: redact_local_paths(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_local_paths(item) for item in value]
    if isinstance(value, str) and value.startswith(("/", "~")) and "\n" not in value and len(value) < 4096:
        return f"<local>/{Path(value).name}"
    return value


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _copy_code(names: tuple[str, ...], run_dir: Path, package_dir: Path, output_dir: Path) -> None:
    """Copy code files saved with the run (the code the weights were saved with), else the project's."""
    for name in names:
        source = run_dir / name if (run_dir / name).is_file() else package_dir / name
        if not source.is_file():
            raise FileNotFoundError(f"Code file {name} is neither in {run_dir} nor in {package_dir}.")
        shutil.copy2(source, output_dir / name)


def _copy_weights(run_dir: Path, output_dir: Path) -> dict[str, Any]:
    """Config (with `auto_map` and the cache on), generation config and safetensors weights."""
    config = json.loads((run_dir / "config.json").read_text())
    if config.get("model_type") != "gigapiano":
        raise ValueError(f"{run_dir}/config.json is a {config.get('model_type')!r} model, not gigapiano.")
    config["auto_map"] = {**DEFAULT_AUTO_MAP, **config.get("auto_map", {})}
    config["use_cache"] = True  # Trainer saves False; users want the fast key/value-cache generate()
    # No padding id: Trainer copies the tokenizer's (the separator), and generate() would then take every
    # separator of a prompt for padding and mask it.
    config["pad_token_id"] = None
    config.pop("_name_or_path", None)
    _write_json(output_dir / "config.json", config)
    if (run_dir / "generation_config.json").is_file():
        generation = json.loads((run_dir / "generation_config.json").read_text())
        generation.pop("pad_token_id", None)
        _write_json(output_dir / "generation_config.json", generation)
    index = run_dir / "model.safetensors.index.json"
    if index.is_file():
        shutil.copy2(index, output_dir / index.name)
        for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
            shutil.copy2(run_dir / shard, output_dir / shard)
    else:
        shutil.copy2(run_dir / "model.safetensors", output_dir / "model.safetensors")
    _copy_code(MODEL_CODE_FILES, run_dir, PROJECT_ROOT / "modeling_gigapiano", output_dir)
    return config


def _copy_adapter(source_dir: Path, output_dir: Path, base_repo_id: str | None) -> None:
    """`adapter_config.json` (base pointed at the Hub id) and `adapter_model.safetensors`."""
    if base_repo_id is None:
        raise ValueError(f"The adapter in {source_dir} needs its base model's Hub id: pass --base_repo_id.")
    output_dir.mkdir(parents=True, exist_ok=True)
    config = json.loads((source_dir / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = base_repo_id
    config["revision"] = None
    _write_json(output_dir / "adapter_config.json", config)
    shutil.copy2(source_dir / "adapter_model.safetensors", output_dir / "adapter_model.safetensors")


def _copy_tokenizer(run_dir: Path, output_dir: Path, context: int | None) -> None:
    """Tokenizer config and code; `model_max_length` is set to the model's context when known."""
    if not (run_dir / "tokenizer_config.json").is_file():
        from tokenization import GigaPianoTokenizer

        logger.info("%s has no tokenizer files; publishing the default GigaPianoTokenizer.", run_dir)
        GigaPianoTokenizer().save_pretrained(output_dir)
    else:
        for name in ("tokenizer_config.json", "special_tokens_map.json"):
            if (run_dir / name).is_file():
                shutil.copy2(run_dir / name, output_dir / name)
        _copy_code(TOKENIZER_CODE_FILES, run_dir, PROJECT_ROOT / "tokenization", output_dir)
    if context:
        path = output_dir / "tokenizer_config.json"
        tokenizer_config = json.loads(path.read_text())
        tokenizer_config["model_max_length"] = int(context)
        _write_json(path, tokenizer_config)


def _copy_records(run_dir: Path, output_dir: Path) -> None:
    for name in RECORD_FILES:
        source = run_dir / name
        if not source.is_file():
            continue
        if name in REDACTED_JSON:
            _write_json(output_dir / name, redact_local_paths(json.loads(source.read_text())))
        else:
            shutil.copy2(source, output_dir / name)


def handler_requirements(adapter: bool) -> str:
    """`requirements.txt` for the Inference Endpoint: what `handler.py` and the tokenizer code import."""
    lines = [
        "# Installed by Inference Endpoints before handler.py runs (torch comes with the endpoint image).",
        "transformers>=5.20,<6",
        "symusic>=0.5.8",
        "numpy>=1.26",
    ]
    if adapter:
        lines.append("peft>=0.17")
    lines.append("# WAV output only: also needs the FluidSynth library and a SoundFont in the image.")
    lines.append("pyfluidsynth>=1.3.4")
    return "\n".join(lines) + "\n"


def _base_context(base_repo_id: str | None, run_dir: Path) -> int | None:
    """The context of an adapter's base model when its folder is on this machine."""
    info = json.loads((run_dir / "run_info.json").read_text()) if (run_dir / "run_info.json").exists() else {}
    recorded = str(info.get("arguments", {}).get("model", {}).get("base_model", ""))
    for folder in (Path(recorded), PROJECT_ROOT / recorded):
        if recorded and (folder / "config.json").is_file():
            return json.loads((folder / "config.json").read_text()).get("max_position_embeddings")
    return None


def assemble_model_repo(
    run_dir: str | Path,
    output_dir: str | Path,
    repo_id: str,
    *,
    base_repo_id: str | None = None,
    dataset_id: str | None = None,
    include_handler: bool = True,
    example_prompt: str | Path | None = EXAMPLE_PROMPT,
    overwrite: bool = False,
) -> ModelRepoFolder:
    """Write the complete Hub repo folder of a finished run (see the module docstring for its content).

    Args:
        run_dir: a finished `train.py` run folder.
        output_dir: the folder to write; it must be empty or absent unless `overwrite`.
        repo_id: `NAMESPACE/NAME` the repo is published as (used in the card and its snippet).
        base_repo_id: Hub id of the base model (default: the recorded base if it is a Hub id, else
            `<namespace>/<base folder name>`).
        dataset_id: dataset repo for the card's metadata (default `<namespace>/gigapiano-maestro-styles`).
        include_handler: add `handler.py` and `requirements.txt` for Inference Endpoints (and
            `base_model.json` when the run has a base).
        example_prompt: MIDI file published as `examples/fur_elise.mid` (None or a missing file: none).
        overwrite: replace the content of a non-empty `output_dir`.

    Returns:
        The `ModelRepoFolder`.

    Raises:
        FileNotFoundError / ValueError: not a finished run, bad ids, missing code files.
        FileExistsError: `output_dir` is not empty and `overwrite` is False.
    """
    run_dir, output_dir = Path(run_dir), Path(output_dir)
    check_repo_id(repo_id)
    kind = detect_run_kind(run_dir)
    if not (run_dir / "all_results.json").is_file() or not (run_dir / "run_info.json").is_file():
        raise FileNotFoundError(
            f"{run_dir} lacks all_results.json / run_info.json: not a finished train.py run."
        )
    base = resolve_base_repo_id(run_dir, repo_id, base_repo_id)
    dataset_id = check_repo_id(dataset_id, "--dataset_id") if dataset_id else default_dataset_id(repo_id)
    output_dir = prepare_output_dir(output_dir, overwrite, [run_dir])

    if kind == "adapter":
        _copy_adapter(run_dir, output_dir, base)
        context = _base_context(base, run_dir)
    else:
        context = _copy_weights(run_dir, output_dir).get("max_position_embeddings")
        if kind == "merged":
            _copy_adapter(run_dir / "adapter", output_dir / "adapter", base)
    _copy_tokenizer(run_dir, output_dir, context)
    _copy_records(run_dir, output_dir)
    prompt_in_repo = None
    if example_prompt is not None and Path(example_prompt).is_file():
        (output_dir / "examples").mkdir(exist_ok=True)
        shutil.copy2(example_prompt, output_dir / EXAMPLE_PROMPT_IN_REPO)
        prompt_in_repo = EXAMPLE_PROMPT_IN_REPO
    if include_handler:
        if not HANDLER_PATH.is_file():
            raise FileNotFoundError(f"The endpoint handler {HANDLER_PATH} is missing from the project.")
        shutil.copy2(HANDLER_PATH, output_dir / "handler.py")
        (output_dir / "requirements.txt").write_text(handler_requirements(kind == "adapter"))
        if base is not None:
            _write_json(output_dir / HANDLER_BASE_FILE, {"base_model": base})

    files = sorted(str(p.relative_to(output_dir)) for p in output_dir.rglob("*") if p.is_file())
    listed = sorted({*files, "README.md"})
    card = render_model_card(
        run_dir,
        repo_id=repo_id,
        base_model_id=base,
        dataset_id=dataset_id,
        repo_files=[(name, FILE_DESCRIPTIONS.get(name, "")) for name in listed],
        example_prompt=prompt_in_repo,
        has_handler=include_handler,
    )
    card.save(output_dir / "README.md")
    logger.info("Repo folder for %s (%s) written to %s.", repo_id, kind, output_dir)
    return ModelRepoFolder(output_dir, repo_id, kind, base, dataset_id, listed)


__all__ = [
    "DEFAULT_DATASET_NAME",
    "ModelRepoFolder",
    "assemble_model_repo",
    "check_repo_id",
    "default_dataset_id",
    "detect_run_kind",
    "handler_requirements",
    "prepare_output_dir",
    "redact_local_paths",
    "resolve_base_repo_id",
]
