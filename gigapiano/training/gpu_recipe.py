"""The shipped recipe on one GPU: continue the base, fine-tune every style, compare with the `small` preset.

The CPU recipe (`shipping.py`) needs about 5 hours for the base; a GPU does far more in minutes, but a
device lease here is short (one 10-minute call), so this module runs the whole recipe as one command with
a time budget per phase (`configs/train/gpu_recipe.yaml`) and writes each phase's results as soon as it
ends. It needs only torch, numpy, yaml and the model code: the data comes as arrays from `gpu_data.py`
(the same composition-safe MAESTRO split that `train.py` builds), because the GPU machine has neither the
MIDI stack nor the MAESTRO folder.

Training reads random note-aligned 1024-token windows of the training performances (every start a
separator), optionally transposed by a random number of semitones per window (pitches kept in 1..126);
the learning rate warms up and then follows a cosine over the phase's budget. Validation uses every
1024-token window of the validation performances, in the recorded keys, and the checkpoint with the lowest
validation loss is the one kept. The shipped models are evaluated on the same windows in the same
process, so every "before / after" figure is like for like.

    python -m gigapiano.training.gpu_recipe --config configs/train/gpu_recipe.yaml --data gpu_data \\
        --output gpu_out

Outputs in `--output`: `results.json` (every phase's losses, curves, steps, tokens/s, the card's name),
`base.safetensors` and `<style>.safetensors` (fp16 weights of the medium preset; `gpu_recipe ship` turns
them into `models/`). The `small` model is measured, not saved (about 200 MB in fp16).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from modeling_gigapiano import GigaPianoConfig, GigaPianoForCausalLM

logger = logging.getLogger(__name__)

SEPARATOR = 127
NOTE_LENGTH = 4  # [separator, dt, duration, pitch]
PITCH_RANGE = (1, 126)
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class RandomWindows:
    """Random note-aligned windows of a set of performances, drawn on the device.

    Every window start is a separator of one performance and the window stays inside that performance;
    each start is equally likely, so long performances give proportionally more windows.
    """

    def __init__(self, tokens: np.ndarray, offsets: np.ndarray, window_length: int, device: torch.device):
        lengths = np.diff(offsets)
        starts_per_piece = np.where(lengths >= window_length, (lengths - window_length) // NOTE_LENGTH + 1, 0)
        if starts_per_piece.sum() == 0:
            raise ValueError(f"No training performance is {window_length} tokens long.")
        self.window_length = window_length
        self.tokens = torch.from_numpy(tokens.astype(np.int64)).to(device)
        self.piece_offsets = torch.from_numpy(offsets[:-1].astype(np.int64)).to(device)
        self.cumulative = torch.from_numpy(np.cumsum(starts_per_piece).astype(np.int64)).to(device)
        self.device = device

    @property
    def num_tokens(self) -> int:
        return int(self.tokens.numel())

    def sample(self, batch_size: int, generator: torch.Generator, transpose: int = 0) -> torch.Tensor:
        """`(batch_size, window_length)` token ids; pitches shifted by up to `transpose` semitones."""
        total = int(self.cumulative[-1])
        draw = torch.randint(total, (batch_size,), device=self.device, generator=generator)
        piece = torch.searchsorted(self.cumulative, draw, right=True)
        before = torch.where(piece > 0, self.cumulative[(piece - 1).clamp(min=0)], torch.zeros_like(draw))
        starts = self.piece_offsets[piece] + NOTE_LENGTH * (draw - before)
        windows = self.tokens[starts[:, None] + torch.arange(self.window_length, device=self.device)]
        if transpose:
            windows = transpose_windows(windows, transpose, generator)
        return windows


def transpose_windows(windows: torch.Tensor, max_semitones: int, generator: torch.Generator) -> torch.Tensor:
    """Each window's pitches moved by one random shift in ±max_semitones, clipped so none leaves 1..126."""
    pitches = windows[:, NOTE_LENGTH - 1 :: NOTE_LENGTH]
    low = (PITCH_RANGE[0] - pitches.min(dim=1).values).clamp(min=-max_semitones)
    high = (PITCH_RANGE[1] - pitches.max(dim=1).values).clamp(max=max_semitones)
    shift = torch.randint(
        -max_semitones, max_semitones + 1, (windows.shape[0],), device=windows.device, generator=generator
    )
    shift = torch.maximum(torch.minimum(shift, high), low)
    windows = windows.clone()
    windows[:, NOTE_LENGTH - 1 :: NOTE_LENGTH] += shift[:, None]
    return windows


def next_token_loss(model: torch.nn.Module, windows: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of every position's next token (what `labels=input_ids` gives in transformers)."""
    logits = model(input_ids=windows).logits
    return F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1))


@torch.no_grad()
def validation_loss(model: torch.nn.Module, windows: torch.Tensor, batch_size: int, bf16: bool) -> float:
    """Mean next-token loss over every position of every validation window."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, windows.shape[0], batch_size):
        batch = windows[start : start + batch_size]
        with autocast(batch.device, bf16):
            loss = next_token_loss(model, batch)
        tokens = batch[:, 1:].numel()
        total += float(loss) * tokens
        count += tokens
    model.train(was_training)
    return total / max(count, 1)


def autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def make_optimizer(model: torch.nn.Module, learning_rate: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW as `Trainer` sets it up: weight decay on matrices, none on biases and norms."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = next(model.parameters()).device.type == "cuda"
    return torch.optim.AdamW(groups, lr=learning_rate, betas=(0.9, 0.999), fused=fused)


def warmup_cosine(progress: float, warmup_fraction: float) -> float:
    """Learning-rate factor at `progress` (0..1): linear warm-up, then a cosine down to zero."""
    if progress < warmup_fraction:
        return max(progress / warmup_fraction, 0.01)
    rest = (progress - warmup_fraction) / max(1.0 - warmup_fraction, 1e-9)
    return 0.5 * (1.0 + math.cos(math.pi * min(rest, 1.0)))


def clone_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def matmul_flops_per_token(config: GigaPianoConfig, window_length: int) -> int:
    """Training FLOP per token of the matrix products, forward + backward (bench/bench_train.py's docstring
    explains the count; the benchmark uses this function)."""
    width, layers = config.hidden_size, config.num_hidden_layers
    linear = layers * (4 * width * width + 2 * width * config.intermediate_size) + width * config.vocab_size
    return 6 * linear + 18 * layers * window_length * width


def load_model(init: str, preset: str, device: torch.device) -> GigaPianoForCausalLM:
    """`scratch` builds the preset without dropout; anything else is a model folder (project-relative)."""
    if init == "scratch":
        config = GigaPianoConfig.from_preset(preset, embd_pdrop=0.0, resid_pdrop=0.0, attn_pdrop=0.0)
        torch.manual_seed(0)
        model = GigaPianoForCausalLM(config)
    else:
        path = Path(init) if Path(init).is_absolute() else PROJECT_ROOT / init
        model = GigaPianoForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.config.use_cache = False
    return model.to(device)


@dataclass
class Phase:
    """What one training run reads: its windows, its validation windows, its random stream and precision."""

    name: str
    data: RandomWindows
    validation: torch.Tensor
    generator: torch.Generator
    bf16: bool
    eval_batch_size: int


def train_for_budget(model: torch.nn.Module, phase: Phase, settings: dict[str, Any]) -> dict[str, Any]:
    """Train until `budget_seconds` of training time have passed (evaluation excluded) or `max_steps` (if
    given) were taken, whichever comes first, on a warm-up + cosine schedule over that progress; evaluate
    `evaluations` times; leave the best-validated weights in `model`."""
    data, validation, generator = phase.data, phase.validation, phase.generator
    bf16, eval_batch_size, name = phase.bf16, phase.eval_batch_size, phase.name
    budget = float(settings["budget_seconds"])
    max_steps = settings.get("max_steps")
    evaluations = int(settings.get("evaluations", 4))
    transpose_until = float(settings.get("transpose_until", 1.0))
    optimizer = make_optimizer(model, float(settings["learning_rate"]), float(settings["weight_decay"]))
    peak = float(settings["learning_rate"])
    batch_size = int(settings["batch_size"])
    start_loss = validation_loss(model, validation, eval_batch_size, bf16)
    curve = [{"step": 0, "seconds": 0.0, "validation_loss": start_loss}]
    best_loss, best_state, best_step = start_loss, clone_state(model), 0
    logger.info("%s: validation loss before training %.4f", name, start_loss)
    model.train()
    trained, step, next_eval, train_losses = 0.0, 0, 1, []
    tick = time.perf_counter()
    while True:
        progress = min(1.0, max(trained / budget, step / max_steps if max_steps else 0.0))
        for group in optimizer.param_groups:
            group["lr"] = peak * warmup_cosine(progress, float(settings["warmup_fraction"]))
        transpose = int(settings.get("transpose", 0)) if progress < transpose_until else 0
        windows = data.sample(batch_size, generator, transpose)
        with autocast(windows.device, bf16):
            loss = next_token_loss(model, windows)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        if step % 20 == 0:
            train_losses.append({"step": step, "loss": float(loss.detach())})  # float() waits for the GPU
            trained += time.perf_counter() - tick
            tick = time.perf_counter()
            if step % 200 == 0:
                logger.info(
                    "%s: step %d, %.0f/%.0f s, training loss %.4f", name, step, trained, budget, float(loss)
                )
        progress = max(trained / budget, step / max_steps if max_steps else 0.0)
        done = progress >= 1.0
        if done or (next_eval < evaluations and progress >= next_eval / evaluations):
            loss_now = validation_loss(model, validation, eval_batch_size, bf16)
            curve.append({"step": step, "seconds": round(trained, 1), "validation_loss": loss_now})
            logger.info("%s: step %d, validation loss %.4f", name, step, loss_now)
            if loss_now < best_loss:
                best_loss, best_state, best_step = loss_now, clone_state(model), step
            next_eval += 1
            tick = time.perf_counter()
        if done:
            break
    model.load_state_dict(best_state)
    tokens = step * batch_size * data.window_length
    return {
        "steps": step,
        "train_seconds": round(trained, 1),
        "tokens": tokens,
        "tokens_per_second": round(tokens / max(trained, 1e-9)),
        "batch_size": batch_size,
        "learning_rate": peak,
        "validation_before": start_loss,
        "validation_best": best_loss,
        "best_step": best_step,
        "curve": curve,
        "training_loss": train_losses,
    }


def fine_tune_style(
    base_state: dict[str, torch.Tensor],
    model: GigaPianoForCausalLM,
    method: str,
    phase: Phase,
    settings: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """One style fine-tune from the base's weights: step-based warm-up + cosine over `max_steps`, evaluated
    every `eval_every` steps, stopped after `patience` evaluations without improvement or at the budget."""
    data, validation, generator = phase.data, phase.validation, phase.generator
    bf16, eval_batch_size, name = phase.bf16, phase.eval_batch_size, phase.name
    model.load_state_dict(base_state)
    model.requires_grad_(True)
    if method == "blocks":  # the upper half of the blocks, the final norm and the head
        model.requires_grad_(False)
        layers = model.model.layers
        for block in layers[len(layers) // 2 :]:
            block.requires_grad_(True)
        model.model.norm.requires_grad_(True)
        model.lm_head.requires_grad_(True)
    elif method != "full":
        raise ValueError(f"Unknown fine-tuning method {method!r}; use 'full' or 'blocks'.")
    optimizer = make_optimizer(model, float(settings["learning_rate"]), float(settings["weight_decay"]))
    peak, max_steps = float(settings["learning_rate"]), int(settings["max_steps"])
    start_loss = validation_loss(model, validation, eval_batch_size, bf16)
    best_loss, best_state, best_step, stale = start_loss, clone_state(model), 0, 0
    curve = [{"step": 0, "validation_loss": start_loss}]
    model.train()
    began = time.perf_counter()
    step = 0
    for step in range(1, max_steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = peak * warmup_cosine(step / max_steps, float(settings["warmup_fraction"]))
        windows = data.sample(int(settings["batch_size"]), generator, int(settings.get("transpose", 0)))
        with autocast(windows.device, bf16):
            loss = next_token_loss(model, windows)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step % int(settings["eval_every"]) == 0 or step == max_steps:
            loss_now = validation_loss(model, validation, eval_batch_size, bf16)
            curve.append({"step": step, "validation_loss": loss_now})
            if loss_now < best_loss - 1e-4:
                best_loss, best_state, best_step, stale = loss_now, clone_state(model), step, 0
            else:
                stale += 1
            if stale >= int(settings["patience"]) or time.perf_counter() - began > float(
                settings["budget_seconds"]
            ):
                break
    model.requires_grad_(True)
    logger.info(
        "%s (%s): validation %.4f -> %.4f at step %d of %d",
        name,
        method,
        start_loss,
        best_loss,
        best_step,
        step,
    )
    record = {
        "method": method,
        "steps": step,
        "best_step": best_step,
        "seconds": round(time.perf_counter() - began, 1),
        "batch_size": int(settings["batch_size"]),
        "learning_rate": peak,
        "validation_before": start_loss,
        "validation_best": best_loss,
        "curve": curve,
    }
    return record, best_state


def measure_throughput(
    preset: str, settings: dict[str, Any], window_length: int, device: torch.device
) -> list[dict]:
    """Tokens/s and achieved GFLOP/s of one optimiser step on random windows, fp32 (TF32 off) vs bf16."""
    rows: list[dict] = []
    batch_size, steps = int(settings["batch_size"]), int(settings["steps"])
    for bf16 in (False, True):
        try:
            rows.append(_time_steps(preset, batch_size, steps, window_length, device, bf16))
        except torch.OutOfMemoryError:
            rows.append(
                {"preset": preset, "precision": "bf16 autocast" if bf16 else "fp32", "error": "out of memory"}
            )
        logger.info("throughput: %s", rows[-1])
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def _time_steps(
    preset: str, batch_size: int, steps: int, window_length: int, device: torch.device, bf16: bool
) -> dict:
    """The median time of `steps` optimiser steps (after two warm-up steps) as one throughput row."""
    model = load_model("scratch", preset, device)
    optimizer = make_optimizer(model, 1e-4, 0.0)
    windows = torch.randint(0, 128, (batch_size, window_length), device=device)
    timings = []
    for step in range(steps + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        began = time.perf_counter()
        with autocast(device, bf16):
            loss = next_token_loss(model, windows)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= 2:  # two warm-up steps
            timings.append(time.perf_counter() - began)
    seconds = float(np.median(timings))
    tokens_per_second = batch_size * window_length / seconds
    return {
        "preset": preset,
        "precision": "bf16 autocast" if bf16 else "fp32",
        "parameters": count_parameters(model),
        "batch_size": batch_size,
        "window_length": window_length,
        "step_seconds": round(seconds, 4),
        "tokens_per_second": round(tokens_per_second),
        "gflops": round(tokens_per_second * matmul_flops_per_token(model.config, window_length) / 1e9, 1),
    }


def load_dataset(
    data_dir: Path, name: str, window_length: int, device: torch.device, max_eval_windows: int | None = None
) -> tuple[RandomWindows, torch.Tensor]:
    path = data_dir / f"{name}.npz"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python -m gigapiano.training.gpu_data` first.")
    arrays = np.load(path)
    windows = RandomWindows(arrays["train_tokens"], arrays["train_offsets"], window_length, device)
    validation = torch.from_numpy(arrays["validation_windows"][:max_eval_windows].astype(np.int64)).to(device)
    return windows, validation


def learning_rates(settings: dict[str, Any]) -> list[float]:
    """The style phase's peak learning rates: `learning_rate` may be one value or a list to compare."""
    rates = settings["learning_rate"]
    return [float(rate) for rate in (rates if isinstance(rates, list) else [rates])]


def save_fp16(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    tensors = {name: tensor.detach().to(torch.float16).cpu().contiguous() for name, tensor in state.items()}
    tied = getattr(model, "_tied_weights_keys", None) or {}
    for name in tied if isinstance(tied, dict) else tied:
        tensors.pop(name, None)
    save_file(tensors, str(path), metadata={"format": "pt"})


def peak_memory_gib(device: torch.device) -> float | None:
    """The most GPU memory allocated since the last call (then the counter restarts)."""
    if device.type != "cuda":
        return None
    peak = torch.cuda.max_memory_allocated(device) / 2**30
    torch.cuda.reset_peak_memory_stats(device)
    return round(peak, 1)


def machine_record(device: torch.device) -> dict[str, Any]:
    import transformers

    record = {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }
    if device.type == "cuda":
        record["cuda"] = torch.version.cuda
    return record


def run_recipe(
    config: dict[str, Any],
    data_dir: Path,
    output: Path,
    device: torch.device,
    phases: list[str],
    max_eval_windows: int | None = None,
) -> dict:
    """Run the phases in order, rewriting `results.json` after each."""
    needed = (["maestro"] if {"base", "small"} & set(phases) else []) + (
        list(config["styles"]["names"]) if "styles" in phases else []
    )
    missing = [name for name in needed if not (data_dir / f"{name}.npz").exists()]
    if missing:
        raise FileNotFoundError(
            f"{data_dir} lacks {', '.join(f'{name}.npz' for name in missing)}: run "
            "`python -m gigapiano.training.gpu_data` first."
        )
    output.mkdir(parents=True, exist_ok=True)
    bf16 = bool(config.get("bf16", True)) and (device.type == "cpu" or torch.cuda.is_bf16_supported())
    window_length, eval_batch = int(config["window_length"]), int(config["eval_batch_size"])
    generator = torch.Generator(device=device)
    generator.manual_seed(int(config["seed"]))
    results: dict[str, Any] = {"machine": machine_record(device), "config": config, "phases": phases}

    def save_results() -> None:
        (output / "results.json").write_text(json.dumps(results, indent=2) + "\n")

    save_results()
    base_state = None
    base_settings = config["base"]
    model = load_model(base_settings["init"], base_settings["preset"], device)
    if "base" in phases:
        data, validation = load_dataset(data_dir, "maestro", window_length, device, max_eval_windows)
        phase = Phase("base", data, validation, generator, bf16, eval_batch)
        record = train_for_budget(model, phase, base_settings)
        record["parameters"] = count_parameters(model)
        record["train_tokens_per_epoch"] = data.num_tokens
        record["peak_memory_gib"] = peak_memory_gib(device)
        results["base"] = record
        base_state = clone_state(model)
        save_fp16(model, base_state, output / "base.safetensors")
        save_results()
        del data
    else:
        base_state = clone_state(model)
    if "styles" in phases:
        settings = config["styles"]
        results["styles"] = {}
        shipped_base = load_model(base_settings["init"], base_settings["preset"], device)
        for style in settings["names"]:
            data, validation = load_dataset(data_dir, style, window_length, device, max_eval_windows)
            record: dict[str, Any] = {
                "shipped_base": validation_loss(shipped_base, validation, eval_batch, bf16),
                "new_base": None,
                "methods": {},
            }
            shipped_style = PROJECT_ROOT / "models" / f"gigapiano-{style}"
            if (shipped_style / "model.safetensors").exists():
                shipped = load_model(str(shipped_style), base_settings["preset"], device)
                record["shipped_style"] = validation_loss(shipped, validation, eval_batch, bf16)
                del shipped
            best_state, best_loss = None, math.inf
            for method in settings["methods"]:
                for rate in learning_rates(settings):
                    outcome, state = fine_tune_style(
                        base_state,
                        model,
                        method,
                        Phase(style, data, validation, generator, bf16, eval_batch),
                        {**settings, "learning_rate": rate},
                    )
                    record["new_base"] = outcome["validation_before"]
                    key = f"{method}@{rate:g}"
                    record["methods"][key] = outcome
                    if outcome["validation_best"] < best_loss:
                        best_loss, best_state, record["chosen"] = outcome["validation_best"], state, key
            record["validation_best"] = best_loss
            save_fp16(model, best_state, output / f"{style}.safetensors")
            results["styles"][style] = record
            save_results()
            del data, validation
        del shipped_base
        model.load_state_dict(base_state)
    if "small" in phases:
        settings = config["small"]
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
        data, validation = load_dataset(data_dir, "maestro", window_length, device, max_eval_windows)
        small = load_model(settings["init"], settings["preset"], device)
        record = train_for_budget(
            small, Phase("small", data, validation, generator, bf16, eval_batch // 2), settings
        )
        record["parameters"] = count_parameters(small)
        record["peak_memory_gib"] = peak_memory_gib(device)
        results["small"] = record
        save_results()
        del small, data
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if "throughput" in phases:
        settings = config["throughput"]
        results["throughput"] = [
            row
            for preset in settings["presets"]
            for row in measure_throughput(preset, settings, window_length, device)
        ]
        save_results()
    return results


def output_taken(marker: Path, overwrite: bool, what: str) -> bool:
    """Whether `marker` shows an earlier output that must not be replaced unasked (then says so on stderr)."""
    if marker.exists() and not overwrite:
        print(
            f"error: {marker.parent} already holds {what}; choose another --output or pass --overwrite",
            file=sys.stderr,
        )
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run the shipped recipe on one GPU (see the module docstring)."
    )
    parser.add_argument("--config", default="configs/train/gpu_recipe.yaml", help="Recipe YAML.")
    parser.add_argument("--data", default="gpu_data", help="Folder written by gigapiano.training.gpu_data.")
    parser.add_argument("--output", default="gpu_out", help="Folder for results.json and the weights.")
    parser.add_argument(
        "--phases",
        nargs="+",
        default=["base", "styles", "small", "throughput"],
        choices=["base", "styles", "small", "throughput"],
        help="Phases to run, in the recipe's order (default: all).",
    )
    parser.add_argument(
        "--device", default=None, help="torch device (default: cuda when available, else cpu)."
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="Multiply every time budget and step count (smoke tests: 0.01).",
    )
    parser.add_argument(
        "--max_eval_windows",
        type=int,
        default=None,
        help="Evaluate on the first N windows only (smoke tests).",
    )
    parser.add_argument(
        "--base_init",
        default=None,
        help="Start from this model folder instead of the config's base.init (e.g. to fine-tune the styles "
        "of a base trained by an earlier call: --phases styles --base_init gpu_base).",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="Replace the results and weights of an earlier run in --output.",
    )
    args = parser.parse_args(argv)
    if output_taken(Path(args.output) / "results.json", args.overwrite, "a run's results"):
        return 1
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config_path = Path(args.config)
    if not config_path.exists() and (PROJECT_ROOT / config_path).exists():
        config_path = PROJECT_ROOT / config_path
    if not config_path.exists():
        print(f"error: no recipe config at {args.config}", file=sys.stderr)
        return 1
    config = yaml.safe_load(config_path.read_text())
    if args.scale != 1.0:
        for section in ("base", "styles", "small"):
            config[section]["budget_seconds"] = float(config[section]["budget_seconds"]) * args.scale
        config["styles"]["max_steps"] = max(2, int(config["styles"]["max_steps"] * args.scale))
        config["styles"]["eval_every"] = max(1, int(config["styles"]["eval_every"] * args.scale))
    if args.base_init:
        config["base"]["init"] = args.base_init
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
    try:
        results = run_recipe(
            config, Path(args.data), Path(args.output), device, args.phases, args.max_eval_windows
        )
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps({k: v for k, v in results.items() if k in ("machine", "throughput")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
