"""Command-line and YAML arguments of `train.py`, as `HfArgumentParser` dataclasses.

Values come from a YAML file in `configs/train/` (`--config`, default `configs/train/finetune.yaml`) and
are overridden by any flag given on the command line. Cross-field rules live in `__post_init__` and
name the flags involved. The data flags are those of `python -m gigapiano.data`.

Defaults that depend on the starting model are filled from its config once the flags are parsed
(`apply_base_model_defaults`): the window length is the base model's context and the number of trainable
blocks a share of its depth, unless the YAML or a flag sets them; a window longer than the context, or more
trainable blocks than the model has, fails before any data is read.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import yaml
from transformers import HfArgumentParser, TrainingArguments

from ..cli import OneLineErrorParser
from ..data import GigaPianoDataArguments
from ..data.windows import check_window_args

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = Path("configs/train/finetune.yaml")
DEFAULT_BASE_MODEL = "models/gigapiano-base"
SCHEDULES = ("one_cycle", "cosine", "linear", "constant")
LORA_TARGETS = "qkv_proj,out_proj,fc_in,fc_out"


@dataclass
class GigaPianoModelArguments:
    """Which model to start from and which of its parameters train."""

    base_model: str = field(
        default=DEFAULT_BASE_MODEL,
        metadata={
            "help": "Starting weights: a local model folder, a Hub id, an upstream .pth checkpoint "
            "(converted on the fly) or scratch:<preset> for random weights (presets: tiny, compact, small, "
            "large). Relative "
            "folders are looked up in the working directory, then in the project. Default: "
            f"{DEFAULT_BASE_MODEL} (the shipped compact base model)."
        },
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={
            "help": "Run the model code a --base_model folder or Hub repo carries instead of the installed "
            "project's classes (only for models you trust). Default: off."
        },
    )
    trainable_blocks: int | None = field(
        default=None,
        metadata={
            "help": "Train only the top N transformer blocks; embeddings, final norm and head stay frozen "
            "(upstream: 4 of 16). Ignored with --full_finetune, --lora or a scratch: base. Default: "
            "--trainable_share of the base model's blocks (4 of the shipped 8-block base); the number used "
            "is logged and recorded in run_info.json."
        },
    )
    trainable_share: float = field(
        default=0.5,
        metadata={
            "help": "Without --trainable_blocks: the share of the base model's blocks that train, rounded up "
            "(upstream trained 0.25 of its 16 blocks; the shipped style models 0.5 of 8). Default: 0.5."
        },
    )
    train_head: bool = field(
        default=False,
        metadata={"help": "Also train the final LayerNorm and the output head. Default: false."},
    )
    full_finetune: bool = field(default=False, metadata={"help": "Train every parameter. Default: false."})
    lora: bool = field(
        default=False,
        metadata={
            "help": "Train LoRA adapters (peft) on the attention and MLP projections only. Default: false."
        },
    )
    lora_rank: int = field(default=8, metadata={"help": "LoRA rank r. Default: 8."})
    lora_alpha: float = field(
        default=16.0, metadata={"help": "LoRA alpha; the update is scaled by alpha / r. Default: 16."}
    )
    lora_dropout: float = field(
        default=0.05, metadata={"help": "Dropout on the LoRA branch input. Default: 0.05."}
    )
    lora_target_modules: str = field(
        default=LORA_TARGETS,
        metadata={"help": f"Comma-separated module names that get adapters. Default: {LORA_TARGETS}."},
    )
    merge_lora: bool = field(
        default=False,
        metadata={
            "help": "With --lora: save merged full weights in the output folder and the adapter in "
            "<output_dir>/adapter. Default: false (the output folder holds the adapter only)."
        },
    )
    dropout: float | None = field(
        default=None,
        metadata={"help": "Override every dropout rate of the model, in [0, 1). Default: keep the model's."},
    )

    def __post_init__(self) -> None:
        if self.trainable_blocks is not None and self.trainable_blocks < 1:
            raise ValueError(
                f"--trainable_blocks must be >= 1, got {self.trainable_blocks}; or use --full_finetune."
            )
        if not 0.0 < self.trainable_share <= 1.0:
            raise ValueError(f"--trainable_share must be in (0, 1], got {self.trainable_share}.")
        if self.full_finetune and self.lora:
            raise ValueError("--full_finetune and --lora exclude each other; pick one.")
        if self.merge_lora and not self.lora:
            raise ValueError("--merge_lora only makes sense with --lora.")
        if self.lora and self.lora_rank < 1:
            raise ValueError(f"--lora_rank must be >= 1, got {self.lora_rank}.")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"--dropout must be in [0, 1), got {self.dropout}.")
        if self.from_scratch and self.lora:
            raise ValueError("--lora needs pretrained weights; a scratch: base model trains fully.")
        if self.lora and self.base_model.endswith((".pth", ".pt", ".bin")):
            raise ValueError(
                "--lora needs a model folder as --base_model (the adapter records where its base lives); "
                "convert "
                "the checkpoint first: python -m modeling_gigapiano.convert_gigapiano_checkpoint."
            )

    @property
    def from_scratch(self) -> bool:
        return self.base_model.startswith("scratch:")

    @property
    def target_modules(self) -> list[str]:
        return [name.strip() for name in self.lora_target_modules.split(",") if name.strip()]


@dataclass
class GigaPianoTrainingArguments(TrainingArguments):
    """`TrainingArguments` plus the learning-rate range test and the one-cycle schedule upstream used."""

    learning_rate: str = field(  # type: ignore[assignment]
        default="auto",
        metadata={
            "help": "Peak learning rate, or 'auto' for an LR range test whose valley / 2 is used (upstream's "
            "recipe; the plot is saved as lr_find.png). Default: auto."
        },
    )
    schedule: str = field(
        default="one_cycle",
        metadata={
            "help": f"Learning-rate schedule: {', '.join(SCHEDULES)}. Default: one_cycle (as upstream)."
        },
    )
    lr_find_steps: int | None = field(
        default=None,
        metadata={
            "help": "Steps of the LR range test (only with --learning_rate auto). Default: sized to the run, "
            "a quarter of its optimisation steps, at least 8 (or the whole run when shorter) and at most 60."
        },
    )
    lr_find_range: str = field(
        default="1e-6,1e-1", metadata={"help": "Lowest and highest LR of the range test. Default: 1e-6,1e-1."}
    )
    max_train_windows: int | None = field(
        default=None, metadata={"help": "Use at most N training windows (quick experiments). Default: all."}
    )
    max_eval_windows: int | None = field(
        default=None, metadata={"help": "Use at most N validation windows. Default: all."}
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Allow a fresh run into a folder that already holds a finished model. Without it, a "
            "folder "
            "with checkpoints resumes and a finished one is refused. Default: false."
        },
    )

    def __post_init__(self) -> None:
        self.lr_auto = str(self.learning_rate).strip().lower() == "auto"
        if self.lr_auto:
            self.learning_rate = 1e-4  # placeholder; the range test replaces it before training starts
        else:
            try:
                self.learning_rate = float(self.learning_rate)
            except ValueError as error:
                raise ValueError(
                    f"--learning_rate must be a number or 'auto', got {self.learning_rate!r}."
                ) from error
            if not math.isfinite(self.learning_rate) or self.learning_rate <= 0:
                raise ValueError(f"--learning_rate must be positive, got {self.learning_rate}.")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}.")
        if self.schedule != "one_cycle":
            self.lr_scheduler_type = self.schedule
        try:
            low, high = (float(value) for value in self.lr_find_range.split(","))
        except ValueError as error:
            raise ValueError(f"--lr_find_range must be 'low,high', got {self.lr_find_range!r}.") from error
        if not 0 < low < high:
            raise ValueError(f"--lr_find_range needs 0 < low < high, got {self.lr_find_range!r}.")
        if self.lr_find_steps is not None and self.lr_find_steps < 2:
            raise ValueError(f"--lr_find_steps must be >= 2, got {self.lr_find_steps}.")
        self.lr_find_bounds = (low, high)
        super().__post_init__()


ARGUMENT_CLASSES = (GigaPianoModelArguments, GigaPianoDataArguments, GigaPianoTrainingArguments)


def resolve_project_path(path: str | Path) -> Path:
    """A path as given if it exists, else relative to the project root (so scripts work from anywhere)."""
    path = Path(path)
    if path.exists() or path.is_absolute():
        return path
    return PROJECT_ROOT / path


def load_yaml_defaults(path: str | Path) -> dict[str, Any]:
    """Read a training YAML; unknown keys are an error naming the key and the file."""
    resolved = resolve_project_path(path)
    if not resolved.is_file():
        raise FileNotFoundError(f"Training config {str(path)!r} does not exist (see configs/train/).")
    values = yaml.safe_load(resolved.read_text()) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{resolved} must hold a mapping of argument names to values.")
    known = {f.name for cls in ARGUMENT_CLASSES for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{resolved}: unknown training argument(s) {', '.join(unknown)}.")
    return values


def _config_flag(argv: list[str]) -> str | None:
    """The `--config` value, read before the real parse so the YAML can supply defaults."""
    for index, arg in enumerate(argv):
        if arg == "--config" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def build_parser() -> HfArgumentParser:
    parser = OneLineErrorParser(
        ARGUMENT_CLASSES, description="Fine-tune GIGA-Piano (or train it from scratch)."
    )
    parser.add_argument(
        "--config",
        default=str(DEFAULT_CONFIG),
        help="YAML file with argument defaults; flags on the command line override it. "
        f"Default: {DEFAULT_CONFIG}.",
    )
    return parser


#: Arguments whose default follows the base model; `parse_training_args` notes whether they were set.
MODEL_DEPENDENT = ("window_length", "trainable_blocks")
_UNSET = object()


def _given_on_command_line(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """Which of `MODEL_DEPENDENT` the command line sets (in any spelling argparse accepts)."""
    probe = argparse.Namespace(**{name: _UNSET for name in MODEL_DEPENDENT})
    argparse.ArgumentParser.parse_known_args(parser, argv, namespace=probe)
    return {name for name in MODEL_DEPENDENT if getattr(probe, name) is not _UNSET}


def base_model_shape(base_model: str) -> tuple[int, int] | None:
    """`(context in tokens, number of blocks)` of a starting model, read without loading weights.

    Known for `scratch:<preset>` and local model folders; None for upstream checkpoints, Hub ids and
    folders that do not exist (yet): their defaults are settled when the model is loaded.
    """
    if base_model.startswith("scratch:"):
        from modeling_gigapiano.configuration_gigapiano import GigaPianoConfig

        config = GigaPianoConfig.from_preset(base_model.split(":", 1)[1])
        return config.max_position_embeddings, config.num_hidden_layers
    config_file = resolve_project_path(base_model) / "config.json"
    if not config_file.is_file():
        return None
    values = json.loads(config_file.read_text())
    if values.get("model_type") != "gigapiano":
        return None
    return int(values.get("max_position_embeddings", 1024)), int(values.get("num_hidden_layers", 16))


def share_of_blocks(share: float, depth: int) -> int:
    """`share` of `depth` blocks, rounded up, at least 1."""
    return max(1, min(depth, math.ceil(share * depth - 1e-9)))


def apply_base_model_defaults(
    model_args: GigaPianoModelArguments, data_args: GigaPianoDataArguments, given: set[str]
) -> list[str]:
    """Fill the defaults that follow the base model and check the given values against it.

    Args:
        given: which of `MODEL_DEPENDENT` the YAML or the command line set.

    Returns:
        One sentence per default filled in, for the run's log.

    Raises:
        ValueError: a window longer than the model's context, or more trainable blocks than it has.
    """
    shape = base_model_shape(model_args.base_model)
    if shape is None:
        return []
    context, depth = shape
    notes = []
    if "window_length" not in given:
        data_args.window_length = context
        notes.append(f"Window length {context} tokens: the context of {model_args.base_model}.")
    elif data_args.window_length > context:
        raise ValueError(
            f"--window_length {data_args.window_length} is longer than the {context}-token context of "
            f"{model_args.base_model}; use --window_length {context} or less (or drop it: the default is the "
            "model's context)."
        )
    try:
        check_window_args(data_args.window_length, data_args.window_stride)
    except ValueError as error:
        raise ValueError(f"--window_length/--window_stride: {error}") from error
    trains_blocks = not (model_args.lora or model_args.full_finetune or model_args.from_scratch)
    if trains_blocks and model_args.trainable_blocks is None:
        model_args.trainable_blocks = share_of_blocks(model_args.trainable_share, depth)
        notes.append(
            f"Trainable blocks: the top {model_args.trainable_blocks} of {depth} (--trainable_share "
            f"{model_args.trainable_share:g})."
        )
    elif trains_blocks and model_args.trainable_blocks > depth:
        raise ValueError(
            f"--trainable_blocks {model_args.trainable_blocks} exceeds the {depth} blocks of "
            f"{model_args.base_model}; use {depth} or fewer, --trainable_share, or --full_finetune."
        )
    return notes


def parse_training_args(
    argv: list[str] | None = None,
) -> tuple[GigaPianoModelArguments, GigaPianoDataArguments, GigaPianoTrainingArguments]:
    """Parse `--config YAML` defaults plus command-line overrides into the three dataclasses, then fill the
    defaults that follow the base model (see `apply_base_model_defaults`; what was filled in is kept in
    `training_args.default_notes` for the run's log)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    config = _config_flag(argv) or str(DEFAULT_CONFIG)
    yaml_values = load_yaml_defaults(config)
    # Without CUDA, train on the CPU, also when a launcher starts several processes (gloo backend).
    parser.set_defaults(use_cpu=not torch.cuda.is_available(), **yaml_values)
    *parsed, extra = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    if extra:
        raise ValueError(f"Unrecognised arguments: {' '.join(extra)} (see train.py --help).")
    model_args, data_args, training_args = parsed[:3]
    given = _given_on_command_line(parser, argv) | (set(yaml_values) & set(MODEL_DEPENDENT))
    training_args.default_notes = apply_base_model_defaults(model_args, data_args, given)
    training_args.config_file = str(resolve_project_path(config))
    return model_args, data_args, training_args
