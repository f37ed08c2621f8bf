"""Arguments and actions of `publish.py`: `model` (the default), `dataset` and `space`.

Each command is one `HfArgumentParser` dataclass; `run_command` does the work and returns the lines the
script prints (the folder written, the repo and commit URLs).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

COMMANDS = ("model", "dataset", "space")


@dataclass
class UploadArguments:
    """Flags shared by every command: where the folder goes and how it is uploaded."""

    repo_id: str = field(
        metadata={
            "help": "Hub repo to publish to, NAMESPACE/NAME (e.g. my-user/gigapiano-baroque). Required."
        }
    )
    dry_run: bool = field(
        default=False,
        metadata={"help": "Only write the repo folder (needs --output_dir); send nothing. Default: false."},
    )
    output_dir: str | None = field(
        default=None,
        metadata={
            "help": "Folder to write the repo into (must be empty or absent). Default: a temporary "
            "folder that is deleted after the upload; required with --dry_run."
        },
    )
    overwrite: bool = field(
        default=False, metadata={"help": "Replace the content of a non-empty --output_dir. Default: false."}
    )
    private: bool = field(default=False, metadata={"help": "Create the repo private. Default: public."})
    token: str | None = field(
        default=None,
        metadata={
            "help": "Hugging Face write token. Default: the logged-in token (`hf auth login`) or $HF_TOKEN."
        },
    )
    commit_message: str | None = field(
        default=None,
        metadata={"help": "Commit message. Default: 'Upload <folder> with gigapiano <version>'."},
    )
    log_level: str = field(
        default="info", metadata={"help": "Logging level: debug, info, warning or error. Default: info."}
    )

    def __post_init__(self) -> None:
        if self.dry_run and not self.output_dir:
            raise ValueError("--dry_run needs --output_dir (where to write the repo folder).")


@dataclass
class ModelPublishArguments(UploadArguments):
    """`publish.py [model]`: one trained run -> one model repo."""

    run_dir: str = field(
        default="",
        metadata={"help": "A finished train.py run folder (weights or LoRA adapter, records). Required."},
    )
    base_repo_id: str | None = field(
        default=None,
        metadata={
            "help": "Hub id of the base model the run started from, written into the card and into a LoRA "
            "adapter's adapter_config.json. Default: the recorded base if it is a Hub id, else "
            "NAMESPACE/<base folder name> (with a warning)."
        },
    )
    dataset_id: str | None = field(
        default=None,
        metadata={"help": "Dataset repo named in the card. Default: NAMESPACE/gigapiano-maestro-styles."},
    )
    handler: bool = field(
        default=True,
        metadata={
            "help": "Publish handler.py + requirements.txt for Inference Endpoints (--no_handler: don't)."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.run_dir:
            raise ValueError("--run_dir is required (a finished train.py run folder).")


@dataclass
class DatasetPublishArguments(UploadArguments):
    """`publish.py dataset`: the tokenised styles -> one dataset repo (Parquet, one config per style)."""

    styles: str = field(
        default="baroque,romantic,rachmaninoff",
        metadata={"help": "Comma-separated style names (configs/styles/) or YAML paths. Default: the three."},
    )
    maestro_dir: str | None = field(
        default=None,
        metadata={"help": "Extracted MAESTRO v3.0.0 folder. Default: download it once into the cache."},
    )
    cache_dir: str | None = field(
        default=None,
        metadata={"help": "Cache for the download and tokenised tables. Default: $HF_HOME/gigapiano."},
    )
    pieces: str | None = field(
        default=None,
        metadata={"help": "Override every style's selection: thesis or all. Default: each style's own."},
    )
    split_by: str = field(
        default="auto",
        metadata={
            "help": "piece (seeded, by composition), maestro (MAESTRO's split, each composition moved whole "
            "into one split) or auto (maestro for an 'all' selection, piece for the thesis). Default: auto."
        },
    )
    validation_fraction: float = field(
        default=0.1, metadata={"help": "Share of performances for validation, in [0, 1). Default: 0.1."}
    )
    test_fraction: float = field(
        default=0.1, metadata={"help": "Share of performances for test, in [0, 1). Default: 0.1."}
    )
    split_seed: int = field(default=42, metadata={"help": "Seed of the split (as train.py). Default: 42."})
    timing: str = field(
        default="upstream", metadata={"help": "Tokenizer timing: upstream or tempo_map. Default: upstream."}
    )
    num_proc: int | None = field(
        default=None, metadata={"help": "Tokenisation worker processes. Default: 1."}
    )
    download: bool = field(
        default=True,
        metadata={"help": "Allow downloading MAESTRO without --maestro_dir (--no_download forbids it)."},
    )


@dataclass
class SpacePublishArguments(UploadArguments):
    """`publish.py space`: the Gradio demo -> one Space running the published style models."""

    models: str | None = field(
        default=None,
        metadata={
            "help": "STYLE=NAMESPACE/NAME pairs, comma-separated. Default: NAMESPACE/gigapiano-<style> for "
            "each of --styles, NAMESPACE being the Space's."
        },
    )
    styles: str = field(
        default="baroque,romantic,rachmaninoff",
        metadata={"help": "Styles for the default --models. Default: baroque,romantic,rachmaninoff."},
    )
    dataset_id: str | None = field(
        default=None,
        metadata={
            "help": "Dataset repo listed in the Space's metadata. "
            "Default: NAMESPACE/gigapiano-maestro-styles."
        },
    )
    title: str = field(default="GIGA-Piano", metadata={"help": "Title of the Space. Default: GIGA-Piano."})


ARGUMENTS = {
    "model": ModelPublishArguments,
    "dataset": DatasetPublishArguments,
    "space": SpacePublishArguments,
}


def split_command(argv: list[str]) -> tuple[str, list[str]]:
    """`(command, remaining flags)`: a first word `model`, `dataset` or `space`, else `model`."""
    if argv and argv[0] in COMMANDS:
        return argv[0], argv[1:]
    return "model", argv


def _describe(result_lines: list[str], folder, repo_url, commit_url) -> list[str]:
    if folder is not None:
        result_lines.append(str(folder))
    result_lines += [url for url in (repo_url, commit_url) if url]
    return result_lines


def run_command(command: str, args: UploadArguments) -> list[str]:
    """Run one `publish.py` command; returns what the script prints (folder, repo URL, commit URL)."""
    logging.getLogger("gigapiano").setLevel(args.log_level.upper())
    if command == "model":
        from .publish import publish_model

        result = publish_model(
            args.run_dir,
            args.repo_id,
            output_dir=args.output_dir,
            dry_run=args.dry_run,
            private=args.private,
            token=args.token,
            base_repo_id=args.base_repo_id,
            dataset_id=args.dataset_id,
            include_handler=args.handler,
            overwrite=args.overwrite,
            commit_message=args.commit_message,
        )
        return _describe([], result.folder, result.repo_url, result.commit_url)
    if command == "dataset":
        return _run_dataset(args)
    if command == "space":
        return _run_space(args)
    raise ValueError(f"Unknown command {command!r}; choose one of {', '.join(COMMANDS)}.")


def _upload_or_keep(args: UploadArguments, build, repo_type: str, space_sdk: str | None = None) -> list[str]:
    """Build into --output_dir (or a temporary folder) and upload unless --dry_run."""
    import tempfile
    from pathlib import Path

    from .publish import check_can_upload, upload_folder_to_hub

    if args.dry_run:
        return [str(build(Path(args.output_dir)).path)]
    check_can_upload(args.token)

    def upload(folder: Path) -> tuple[str, str]:
        return upload_folder_to_hub(
            folder,
            args.repo_id,
            repo_type=repo_type,
            private=args.private,
            token=args.token,
            commit_message=args.commit_message,
            space_sdk=space_sdk,
        )

    if args.output_dir:
        folder = build(Path(args.output_dir)).path
        return _describe([], folder, *upload(folder))
    with tempfile.TemporaryDirectory(prefix="gigapiano-publish-") as scratch:
        folder = build(Path(scratch) / args.repo_id.split("/")[1]).path
        return _describe([], None, *upload(folder))


def _run_dataset(args: DatasetPublishArguments) -> list[str]:
    from .dataset import DatasetBuildSettings, assemble_dataset_repo

    settings = DatasetBuildSettings(
        maestro_dir=args.maestro_dir,
        cache_dir=args.cache_dir,
        pieces=args.pieces,
        split_by=args.split_by,
        validation_fraction=args.validation_fraction,
        test_fraction=args.test_fraction,
        split_seed=args.split_seed,
        timing=args.timing,
        num_proc=args.num_proc,
        allow_download=args.download,
    )
    styles = [style.strip() for style in args.styles.split(",") if style.strip()]

    def build(folder):
        return assemble_dataset_repo(folder, args.repo_id, styles, settings, overwrite=args.overwrite)

    return _upload_or_keep(args, build, "dataset")


def _run_space(args: SpacePublishArguments) -> list[str]:
    from .repo_folder import check_repo_id, default_dataset_id
    from .space import assemble_space, parse_models

    namespace = check_repo_id(args.repo_id).split("/")[0]
    spec = args.models or ",".join(
        f"{style.strip()}={namespace}/gigapiano-{style.strip()}"
        for style in args.styles.split(",")
        if style.strip()
    )
    models = parse_models(spec)
    dataset_id = args.dataset_id or default_dataset_id(args.repo_id)

    def build(folder):
        return assemble_space(
            folder, args.repo_id, models, dataset_id=dataset_id, title=args.title, overwrite=args.overwrite
        )

    return _upload_or_keep(args, build, "space", space_sdk="gradio")


__all__ = [
    "ARGUMENTS",
    "COMMANDS",
    "DatasetPublishArguments",
    "ModelPublishArguments",
    "SpacePublishArguments",
    "run_command",
    "split_command",
]
