"""Command-line and YAML arguments of `train.py`, as `HfArgumentParser` dataclasses.

Values come from a YAML file in `configs/train/` (`--config`, default `configs/train/finetune.yaml`) and
are overridden by any flag given on the command line. Cross-field rules live in `__post_init__` and
name the flags involved. The data flags are those of `python -m gigapiano.data`.
"""

from __future__ import annotations

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
    trainable_blocks: int = field(
        default=4,
        metadata={
            "help": "Train only the top N transformer blocks; embeddings, final norm and head stay frozen "
            "(upstream: 4 of 16). Ignored with --full_finetune, --lora or a scratch: base. Default: 4."
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
        if self.trainable_blocks < 1:
            raise ValueError(
                f"--trainable_blocks must be >= 1, got {self.trainable_blocks}; or use --full_finetune."
            )
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
    lr_find_steps: int = field(default=60, metadata={"help": "Steps of the LR range test. Default: 60."})
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


def parse_training_args(
    argv: list[str] | None = None,
) -> tuple[GigaPianoModelArguments, GigaPianoDataArguments, GigaPianoTrainingArguments]:
    """Parse `--config YAML` defaults plus command-line overrides into the three dataclasses."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    config = _config_flag(argv) or str(DEFAULT_CONFIG)
    # Without CUDA, train on the CPU, also when a launcher starts several processes (gloo backend).
    parser.set_defaults(use_cpu=not torch.cuda.is_available(), **load_yaml_defaults(config))
    *parsed, extra = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    if extra:
        raise ValueError(f"Unrecognised arguments: {' '.join(extra)} (see train.py --help).")
    model_args, data_args, training_args = parsed[:3]
    training_args.config_file = str(resolve_project_path(config))
    return model_args, data_args, training_args
