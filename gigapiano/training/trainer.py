"""Fine-tuning (or training from scratch) of GIGA-Piano through `transformers.Trainer`.

`run_training` is what `train.py` calls: it builds the style data (split by piece), the model with its
trainable parameters, finds the learning rate when asked, trains with a one-cycle schedule as upstream
did (or cosine/linear/constant), evaluates on the held-out validation pieces, and leaves a complete,
loadable model folder with its records. Re-running with the same output folder resumes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
import shutil
import signal
import sys
import threading
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets
import torch
import transformers
from datasets import DatasetDict, concatenate_datasets
from peft import PeftModel
from transformers import Trainer, TrainerCallback, TrainerState, default_data_collator, set_seed

from modeling_gigapiano import apply_fast_generation_defaults
from tokenization import GigaPianoTokenizer

from ..data import (
    GigaPianoDataArguments,
    GigaPianoStyle,
    add_transposition,
    prepare_training_data,
    save_pieces_json,
)
from .arguments import GigaPianoModelArguments, GigaPianoTrainingArguments
from .lr_finder import lr_range_test, planned_training_steps, range_test_steps
from .memory import keep_freed_memory
from .metrics import build_compute_metrics, reduce_logits
from .model_setup import base_model_reference, prepare_model
from .records import plot_loss_curves, write_run_info, write_styles

logger = logging.getLogger(__name__)

FINAL_MODEL_FILES = ("config.json", "adapter_config.json")


class GigaPianoTrainer(Trainer):
    """`Trainer` with the one-cycle schedule (warm-up to the peak LR, then annealing) fastai used upstream."""

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
        if getattr(self.args, "schedule", None) != "one_cycle":
            return super().create_scheduler(num_training_steps, optimizer)
        if self.lr_scheduler is None:
            optimizer = optimizer if optimizer is not None else self.optimizer
            # fastai's fit_one_cycle defaults: 25% warm-up, start at lr/25, end at lr/25e4, momentum cycling.
            self.lr_scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer,
                max_lr=self.args.learning_rate,
                total_steps=max(num_training_steps, 8),  # shorter cycles have an empty warm-up phase
                pct_start=0.25,
                div_factor=25.0,
                final_div_factor=1e4,
                base_momentum=0.85,
                max_momentum=0.95,
            )
            self._created_lr_scheduler = True
        return self.lr_scheduler


@dataclass
class TrainingOutcome:
    """Where a run wrote its model and what it measured."""

    output_dir: Path
    metrics: dict[str, float]
    learning_rate: float


def setup_logging(training_args: GigaPianoTrainingArguments) -> None:
    """One process-aware logging setup: the main process logs at INFO, the others at WARNING."""
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        handlers=[logging.StreamHandler(sys.stderr)],
    )
    level = training_args.get_process_log_level()
    logging.getLogger("gigapiano").setLevel(level)
    datasets.utils.logging.set_verbosity(level)
    transformers.utils.logging.set_verbosity(level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()


def default_output_dir(model_args: GigaPianoModelArguments, data_args: GigaPianoDataArguments) -> Path:
    """`runs/gigapiano-<style>[-lora]` when the user gave no --output_dir."""
    if data_args.composer:
        name = "-".join(composer.split()[-1] for composer in data_args.composer)
    else:
        name = (data_args.style or "custom").replace(",", "-")
    suffix = "-lora" if model_args.lora else ""
    return Path("runs") / f"gigapiano-{name.lower()}{suffix}"


_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors")
#: Files `torch.save` writes into a checkpoint (optimizer, scheduler, RNG states, training arguments): zip
#: archives, whose central directory comes last, so a file cut short is not a zip file.
TORCH_SAVE_SUFFIXES = (".pt", ".pth", ".bin")


def safetensors_complete(path: Path) -> bool:
    """Whether a `.safetensors` file holds all the bytes its header names (a kill mid-write leaves fewer)."""
    try:
        with path.open("rb") as handle:
            header_length = int.from_bytes(handle.read(8), "little")
            size = path.stat().st_size
            if not 2 <= header_length <= size - 8:
                return False
            header = json.loads(handle.read(header_length))
        ends = [entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"]
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        return False
    return size == 8 + header_length + max(ends, default=0)


def weights_complete(folder: Path) -> bool:
    """Whether `folder` holds complete weights: a whole `.safetensors` file, or every shard of an index."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return False
        return bool(shards) and all(safetensors_complete(folder / shard) for shard in shards)
    return any(safetensors_complete(folder / name) for name in WEIGHT_FILES if (folder / name).is_file())


def checkpoint_step(checkpoint: Path) -> int | None:
    """The step of a complete checkpoint folder, or None when it is incomplete.

    `Trainer` writes the weights, then the optimizer, scheduler and RNG states, and `trainer_state.json`
    last, so a kill or a full disk during a save leaves a folder without the state (or with it cut short).
    Each file is checked too, whatever order a `transformers` version writes them in: the weights must hold
    every byte their header names, each `torch.save` file must be a whole zip archive, and the state must
    name the folder's step.
    """
    match = _CHECKPOINT.match(checkpoint.name)
    if match is None or not weights_complete(checkpoint):
        return None
    saved = [path for path in checkpoint.iterdir() if path.suffix in TORCH_SAVE_SUFFIXES and path.is_file()]
    if not all(zipfile.is_zipfile(path) for path in saved):
        return None
    try:
        state = json.loads((checkpoint / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return None
    step = int(match.group(1))
    return step if isinstance(state, dict) and state.get("global_step") == step else None


def final_model_complete(output_dir: Path) -> bool:
    """Whether a run folder holds its finished model: complete final weights and a readable `run_info.json`
    (written after the weights, the metrics and the state). A kill during the final save leaves less."""
    try:
        json.loads((output_dir / "run_info.json").read_text())
    except (OSError, ValueError):
        return False
    return weights_complete(output_dir)


def last_complete_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete `checkpoint-N` of a run folder; newer incomplete ones are logged and skipped."""
    candidates = [p for p in output_dir.iterdir() if p.is_dir() and _CHECKPOINT.match(p.name)]
    for checkpoint in sorted(candidates, key=lambda p: int(p.name.split("-")[1]), reverse=True):
        if checkpoint_step(checkpoint) is not None:
            return checkpoint
        logger.warning("Skipping %s: incomplete (a save was interrupted); trying an earlier one.", checkpoint)
    return None


def check_output_dir(output_dir: Path, overwrite: bool) -> str | None:
    """Decide between a fresh run and a resume; never silently overwrite a finished run.

    With `overwrite` the folder's checkpoints are removed and the run starts afresh. Otherwise the newest
    complete checkpoint is resumed (incomplete ones, from a kill or a full disk during a save, are skipped).
    A run whose last checkpoint is its final step is finished only when its final model is complete too
    (`final_model_complete`); otherwise that checkpoint is returned and the final model written again.

    Returns:
        The checkpoint to resume from, or None for a fresh start.

    Raises:
        FileExistsError: the run is already finished (a complete final model and a checkpoint at the end, or
            a final model and no checkpoint at all).
    """
    if not output_dir.is_dir():
        return None
    if overwrite:
        for checkpoint in output_dir.glob("checkpoint-*"):
            if checkpoint.is_dir() and _CHECKPOINT.match(checkpoint.name):
                logger.info("--overwrite_output_dir: removing %s.", checkpoint)
                shutil.rmtree(checkpoint, ignore_errors=True)
        return None
    finished = [name for name in FINAL_MODEL_FILES if (output_dir / name).exists()]
    checkpoint = last_complete_checkpoint(output_dir)
    if checkpoint is not None:
        state = json.loads((checkpoint / "trainer_state.json").read_text())
        at_end = checkpoint_at_end(checkpoint)
        if at_end and finished and final_model_complete(output_dir):
            raise FileExistsError(
                f"{output_dir} is already trained ({state['global_step']} of {state['max_steps']} steps); "
                "pass --overwrite_output_dir to train it again, or pick another --output_dir."
            )
        if at_end and finished:  # killed while the final model or its records were written
            logger.warning(
                "%s holds an incomplete final model (its save was interrupted); writing it again from %s.",
                output_dir,
                checkpoint,
            )
        logger.info("Resuming from %s.", checkpoint)
        return str(checkpoint)
    if finished:
        raise FileExistsError(
            f"{output_dir} already holds a trained model ({finished[0]}) and no checkpoint to resume; pick "
            "another --output_dir or pass --overwrite_output_dir."
        )
    return None


def checkpoint_at_end(checkpoint: Path) -> bool:
    """Whether a complete checkpoint is its run's last step (its `trainer_state.json` says so)."""
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    return bool(state.get("max_steps")) and state["global_step"] >= state["max_steps"]


def finish_from_checkpoint(trainer: Trainer, checkpoint: Path) -> dict[str, float]:
    """Take the weights and state of a run's final checkpoint instead of training: the run was stopped
    after its last step (during the evaluation or the final save). `Trainer.train` would resume by taking
    one step more than the run has (a seventh step of six; a one-cycle schedule of eight or more steps
    refuses it: "Tried to step N+1 times").

    Returns:
        The training metrics the state records (epoch and FLOs).
    """
    logger.info("%s is the run's last step: writing the final model from it (no training).", checkpoint)
    trainer._load_from_checkpoint(str(checkpoint))
    trainer.state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))
    return {"epoch": trainer.state.epoch, "total_flos": trainer.state.total_flos}


class TrainingTerminated(KeyboardInterrupt):
    """SIGTERM during training: handled like Ctrl-C (the last checkpoint stays; re-running resumes)."""


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Turn SIGTERM (a scheduler's or `kill`'s stop) into `TrainingTerminated` while training runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise TrainingTerminated("terminated by SIGTERM")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def load_windows(
    data_args: GigaPianoDataArguments, training_args: GigaPianoTrainingArguments, output_dir: Path | None
) -> tuple[DatasetDict, list[GigaPianoStyle]]:
    """Training/validation windows of one style, several comma-separated styles, or a composer set.

    Several styles are built one by one with the same split settings and concatenated split by split,
    so the union never puts a style's validation or test piece into training. Transposition is added
    last, to the training split only.
    """
    names = [s.strip() for s in (data_args.style or "").split(",") if s.strip()]
    if data_args.composer:  # an ad-hoc composer set: named after its composers, not the default style
        per_style_args = [dataclasses.replace(data_args, style=None, transpose=0)]
    else:
        per_style_args = [dataclasses.replace(data_args, style=name, transpose=0) for name in names]
    parts = [prepare_training_data(args) for args in per_style_args]
    pieces = DatasetDict(
        {split: concatenate_datasets([p.pieces[split] for p in parts]) for split in parts[0].pieces}
    )
    windows = DatasetDict(
        {
            split: concatenate_datasets([p.windows[split] for p in parts]).select_columns(
                ["input_ids", "labels"]
            )
            for split in ("train", "validation")
        }
    )
    windows["train"] = _cap(
        windows["train"].shuffle(seed=training_args.seed), training_args.max_train_windows
    )
    windows["validation"] = _cap(windows["validation"], training_args.max_eval_windows)
    if len(windows["validation"]) == 0:
        raise ValueError(
            f"No validation windows of {data_args.window_length} tokens: the validation pieces are too short "
            "or "
            "too few; use a shorter --window_length or a larger --validation_fraction."
        )
    windows = add_transposition(windows, data_args.transpose, seed=training_args.seed)
    if output_dir is not None and training_args.should_save:
        save_pieces_json(pieces, output_dir)
    logger.info("Windows: %d train, %d validation.", len(windows["train"]), len(windows["validation"]))
    return windows, [part.style for part in parts]


def _cap(dataset: datasets.Dataset, limit: int | None) -> datasets.Dataset:
    return dataset.select(range(min(limit, len(dataset)))) if limit is not None else dataset


def choose_learning_rate(
    model, windows: DatasetDict, training_args, output_dir: Path, resuming: bool
) -> float:
    """The peak LR: as given, the one an earlier attempt of this run found, or a fresh range test."""
    if not training_args.lr_auto:
        return float(training_args.learning_rate)
    recorded = output_dir / "lr_find.json"
    if resuming and recorded.exists():
        return float(json.loads(recorded.read_text())["suggested_lr"])
    low, high = training_args.lr_find_bounds
    planned = planned_training_steps(training_args, len(windows["train"]))
    steps = range_test_steps(training_args.lr_find_steps, planned)
    logger.info("The run trains %d steps; its LR range test takes %d.", planned, steps)
    result = lr_range_test(
        model,
        windows["train"],
        default_data_collator,
        training_args.per_device_train_batch_size,
        min_lr=low,
        max_lr=high,
        steps=steps,
        seed=training_args.seed,
        show_progress=training_args.local_process_index == 0 and not training_args.disable_tqdm,
    )
    if training_args.should_save:
        result.save(output_dir)
    return result.suggested_lr


def save_final_model(trainer: Trainer, model_args: GigaPianoModelArguments, output_dir: Path) -> None:
    """Full weights, an adapter, or merged weights plus the adapter in `adapter/` (with --merge_lora)."""
    model = trainer.model
    # Trainer copies the tokenizer's pad token (the separator) into the config; a saved model must not
    # carry it, or a plain generate() would take every separator for padding and mask it.
    for config in (model.config, getattr(model, "generation_config", None)):
        if config is not None:
            config.pad_token_id = None
    if getattr(model, "generation_config", None) is not None:
        apply_fast_generation_defaults(model.generation_config)  # the fastest correct generate() path
    if isinstance(model, PeftModel):
        model.peft_config["default"].base_model_name_or_path = base_model_reference(model_args.base_model)
        if model_args.merge_lora:
            model.save_pretrained(output_dir / "adapter")
            merged = model.merge_and_unload()
            merged.save_pretrained(output_dir)
        else:
            model.save_pretrained(output_dir)
    else:
        trainer.save_model(str(output_dir))


def run_training(
    model_args: GigaPianoModelArguments,
    data_args: GigaPianoDataArguments,
    training_args: GigaPianoTrainingArguments,
    callbacks: Sequence[TrainerCallback] = (),
) -> TrainingOutcome:
    """Train one GIGA-Piano model as the arguments say; see the module docstring for what is written."""
    setup_logging(training_args)
    started = time.time()
    for note in getattr(training_args, "default_notes", ()):  # defaults that follow the base model
        logger.info(note)
    if training_args.output_dir in (None, "trainer_output"):
        training_args.output_dir = str(default_output_dir(model_args, data_args))
    output_dir = Path(training_args.output_dir)
    resume_from = check_output_dir(output_dir, training_args.overwrite_output_dir)
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False  # published at the end instead
    if not torch.cuda.is_available():
        training_args.dataloader_pin_memory = False
        keep_freed_memory()
    set_seed(training_args.seed)

    windows, styles = load_windows(data_args, training_args, output_dir)
    model = prepare_model(model_args)
    learning_rate = choose_learning_rate(model, windows, training_args, output_dir, resume_from is not None)
    training_args.learning_rate = learning_rate
    logger.info("Peak learning rate %.3g (%s schedule).", learning_rate, training_args.schedule)

    tokenizer = GigaPianoTokenizer()
    trainer = GigaPianoTrainer(
        model=model,
        args=training_args,
        train_dataset=windows["train"],
        eval_dataset=windows["validation"],
        data_collator=default_data_collator,
        processing_class=tokenizer,
        compute_metrics=build_compute_metrics(),
        preprocess_logits_for_metrics=reduce_logits,
        callbacks=list(callbacks),
    )
    with sigterm_as_interrupt():
        if resume_from is not None and checkpoint_at_end(Path(resume_from)):
            train_metrics = finish_from_checkpoint(trainer, Path(resume_from))
        else:
            train_metrics = trainer.train(resume_from_checkpoint=resume_from).metrics
    metrics = {**train_metrics, **trainer.evaluate()}
    metrics["eval_windows"] = len(windows["validation"])
    metrics["train_windows"] = len(windows["train"])

    if trainer.is_world_process_zero():
        save_final_model(trainer, model_args, output_dir)
        tokenizer.save_pretrained(output_dir)
        trainer.save_metrics("all", metrics)
        trainer.save_state()
        plot_loss_curves(trainer.state.log_history, output_dir / "loss_curves.png")
        write_styles(output_dir, styles)
        write_run_info(
            output_dir,
            {
                "model": dataclasses.asdict(model_args),
                "data": dataclasses.asdict(data_args),
                "training": training_args.to_dict(),
            },
            {
                "learning_rate": learning_rate,
                "training_method": training_method(model_args),
                "global_step": trainer.state.global_step,
                "world_size": training_args.world_size,
                "wall_seconds": round(time.time() - started, 1),
                "config_file": getattr(training_args, "config_file", None),
            },
        )
        write_model_card_draft(output_dir)
    if push_to_hub and trainer.is_world_process_zero():
        publish_run(output_dir, training_args)
    return TrainingOutcome(output_dir=output_dir, metrics=metrics, learning_rate=learning_rate)


def training_method(model_args: GigaPianoModelArguments) -> str:
    """A short human description of which parameters trained."""
    if model_args.lora:
        targets = model_args.lora_target_modules
        return f"LoRA r={model_args.lora_rank} alpha={model_args.lora_alpha:g} on {targets}"
    if model_args.full_finetune or model_args.from_scratch:
        return "all parameters"
    if model_args.train_head:
        return f"top {model_args.trainable_blocks} blocks + final norm and head (embeddings frozen)"
    return f"top {model_args.trainable_blocks} blocks (embeddings, final norm and head frozen)"


def write_model_card_draft(output_dir: Path) -> Path | None:
    """README.md model card filled from the run's records (see `gigapiano.hub`)."""
    from ..hub.model_card import write_model_card

    return write_model_card(output_dir)


def publish_run(output_dir: Path, training_args: GigaPianoTrainingArguments) -> None:
    """Upload the finished run as a Hub model repo (`--push_to_hub --hub_model_id NAMESPACE/NAME`)."""
    from ..hub.publish import publish_model

    if not training_args.hub_model_id:
        raise ValueError("--push_to_hub needs --hub_model_id NAMESPACE/gigapiano-<style>.")
    publish_model(
        output_dir,
        training_args.hub_model_id,
        private=bool(training_args.hub_private_repo),
        token=training_args.hub_token,
    )
