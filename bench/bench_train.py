"""Training throughput: the old vs the new base-model recipe, fp32 vs bf16, plain loop vs `Trainer`.

For each model case (`compact` @ 512 tokens, `medium` @ 512 and @ 1024 by default; about 8192 tokens per
step, i.e. batch 16 x 512 or 8 x 1024 as in configs/train/) and each recipe

* **old**: the compact base's recipe until 2026-11: attention through `F.scaled_dot_product_attention`
  with the relative term and masks as a float bias, dropout 0.1 everywhere;
* **new**: what the model does now (configs/train/base_medium_*.yaml): dropout 0, and with gradients on
  a CPU the explicit attention path (matmul, softmax, matmul), whose backward is about 2x faster there
  than the fused kernel's with a float mask (on a GPU the model keeps the fused kernel);

in fp32 and under bf16 autocast, one optimiser step (forward, backward, fused AdamW as `Trainer` uses)
is timed on random token windows. All models of a case live in one process and their timed steps are
interleaved round by round, so a busy machine slows every variant alike; each figure is the median
step. The baseline of the last column is the old recipe on `compact` in bf16 (the shipped compact base
as it was trained), or the first case's old bf16 row when `compact` is not measured.

Achieved GFLOP/s counts the matrix products only, forward + backward (3x the forward), per token:

    FLOP/token = 6 * N + 18 * L * T * W

N: weights of the linear layers (L x (4 W^2 + 2 W I) + W x V, no biases, embeddings or tables), L
blocks, W width, I MLP width, V vocabulary, T window length; the 18 L T W term is the attention's three
T x T products per block (q.k, the relative term q.Er and a.v, 2 T W FLOP per token each in the
forward; the whole T x T square is computed, causal masking saves nothing).

Also measured:

* one row through the real training path (`GigaPianoTrainer` with the arguments of
  configs/train/base_medium_512.yaml, or base_medium_1024.yaml for 1024-token windows, on an Arrow
  dataset of random windows and `default_data_collator`, no evaluation, no saving). Between two of its
  steps a callback times one plain-loop step of an identical model, so the Trainer's overhead is a ratio
  of interleaved measurements;
* on Linux with glibc, the new bf16 recipe (plain loop and Trainer) once more in a child process started
  with `MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1073741824`: glibc then keeps freed memory for the next
  step. By default it returns large blocks (above its mmap threshold, at most 32 MiB, and the attention
  tensors of a 16 x 512 batch are larger) and the top of its heap to the kernel, and the next step
  faults them in again as fresh zeroed pages: 0.6 to 1.7 GiB of page faults per step at batch 16 x 512,
  a fifth to a quarter of the CPU time. `--no_malloc_rows` skips these rows;
* with `--compile`, the new bf16 recipe with every block compiled (`nn.Module.compile`);
* with `--isolated N`, instead of the tables: N rounds in which the old bf16 recipe (default allocator, as
  the compact base was trained) and the new one (freed memory kept, as `train.py` runs it on a CPU) each
  run alone in a fresh process, as a training run does; the baseline's speed depends on how many fresh
  pages its steps fault in, which depends on what else its process holds;
* a loss check: the old and the new recipe (bf16) from the same initial weights on the same learnable
  synthetic windows (a sparse bigram chain whose second half repeats the first), final training loss and
  held-out loss of each; with `--loss_data DIR` on real MAESTRO windows instead (the composition-safe TRAIN
  performances of a `python -m gigapiano.training.gpu_data` export, held out: its VALIDATION windows);
* with `--methods`, the older comparison of full fine-tuning, frozen lower blocks and LoRA.

    python bench/bench_train.py --threads 2                      # full table, about 15 minutes
    python bench/bench_train.py --presets compact --steps 6      # one case
    python bench/bench_train.py --quick --presets tiny           # smoke test, seconds
    python bench/bench_train.py --presets compact --trainer none --loss_steps 120 --loss_data gpu_data
    python bench/bench_train.py --presets compact --isolated 6                # each recipe in its own process
    python bench/bench_train.py --methods --preset small --batch_size 4 --seq_len 512
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import types
from contextlib import nullcontext, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

try:
    import resource
except ImportError:  # not on Windows
    resource = None

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gigapiano.training.gpu_recipe import matmul_flops_per_token  # noqa: E402
from modeling_gigapiano import GigaPianoConfig, GigaPianoForCausalLM  # noqa: E402
from modeling_gigapiano.modeling_gigapiano import (  # noqa: E402
    GigaPianoAttention,
    _blocked_keys,
    relative_position_bias,
)

TOKENS_PER_STEP = 8192  # batch 16 x 512 and 8 x 1024 in configs/train/
DEFAULT_WINDOWS = {
    "compact": (512,),
    "medium": (512, 1024),
    "tiny": (64,),
    "small": (1024,),
    "large": (1024,),
}
# glibc malloc returns large freed blocks (above its mmap threshold, at most 32 MiB) and the top of its heap
# to the kernel, so each step faults its activations in again as fresh zeroed pages. These settings keep
# freed memory in the process for the next step (a running process can do the same with mallopt).
MALLOC_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}
TRAINER_CONFIGS = {512: "configs/train/base_medium_512.yaml", 1024: "configs/train/base_medium_1024.yaml"}


@dataclass(frozen=True)
class Case:
    """One model size and window shape."""

    preset: str
    seq_len: int
    batch: int

    @property
    def label(self) -> str:
        return f"{self.preset} @ {self.seq_len} (batch {self.batch})"

    @property
    def spec(self) -> str:
        return f"{self.preset}@{self.seq_len}"


@dataclass(frozen=True)
class Variant:
    """A recipe in one precision."""

    recipe: str  # "old" or "new"
    bf16: bool
    compile: bool = False
    keep_dropout: bool = False  # the new recipe with the old dropout 0.1

    @property
    def fused_attention(self) -> bool:
        return self.recipe == "old"

    @property
    def dropout(self) -> float:
        return 0.1 if self.recipe == "old" or self.keep_dropout else 0.0

    @property
    def label(self) -> str:
        return self.recipe + (" + dropout 0.1" if self.keep_dropout else "")

    @property
    def precision(self) -> str:
        return "bf16" if self.bf16 else "fp32"


VARIANTS = (
    *(Variant(recipe, bf16) for recipe in ("old", "new") for bf16 in (False, True)),
    Variant("new", True, keep_dropout=True),
)


def parse_cases(specs: list[str]) -> list[Case]:
    """`compact`, `medium` (every default window of the preset), `medium@1024` or `medium@1024x8`."""
    cases = []
    for spec in specs:
        preset, _, shape = spec.partition("@")
        if not shape:
            lengths = DEFAULT_WINDOWS.get(preset)
            if lengths is None:
                context = GigaPianoConfig.from_preset(preset).max_position_embeddings
                lengths = (context,)
            cases += [Case(preset, length, max(1, TOKENS_PER_STEP // length)) for length in lengths]
            continue
        length, _, batch = shape.partition("x")
        length = int(length)
        cases.append(Case(preset, length, int(batch) if batch else max(1, TOKENS_PER_STEP // length)))
    return cases


def fused_attention_forward(
    self: GigaPianoAttention,
    hidden_states: torch.Tensor,
    key_padding_mask: torch.Tensor | None = None,
    cache=None,
    output_attentions: bool = False,
) -> tuple[torch.Tensor, None]:
    """The old recipe's attention: always the fused kernel, the relative term and masks as a float bias.

    The model itself now takes the explicit path when gradients flow on a CPU; the old path is restated
    here (training only: no cache, no attention weights) so both can be timed side by side.
    `check_attention_paths` verifies that both compute the same function.
    """
    if cache is not None or output_attentions:
        raise ValueError("The benchmark's fused attention is for training steps only.")
    batch, length, width = hidden_states.shape
    qkv = self.qkv_proj(hidden_states)
    q, k, v = qkv.view(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
    q = q * self.scaling
    bias = relative_position_bias(q, self.relative_embedding, length)
    bias = bias.masked_fill(
        _blocked_keys(length, length, key_padding_mask, q.device), torch.finfo(bias.dtype).min
    )
    dropout = self.attn_dropout if self.training else 0.0
    context = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout, scale=1.0)
    return self.out_proj(context.transpose(1, 2).reshape(batch, length, width)), None


def use_fused_attention(model: torch.nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, GigaPianoAttention):
            module.forward = types.MethodType(fused_attention_forward, module)


def build_model(preset: str, variant: Variant, device: torch.device, seed: int = 0) -> GigaPianoForCausalLM:
    rate = variant.dropout
    config = GigaPianoConfig.from_preset(preset, embd_pdrop=rate, resid_pdrop=rate, attn_pdrop=rate)
    torch.manual_seed(seed)
    model = GigaPianoForCausalLM(config).to(device)
    if variant.fused_attention:
        use_fused_attention(model)
    if variant.compile:
        for block in model.model.layers:
            block.compile()
    return model.train()


def make_optimizer(model: torch.nn.Module, lr: float = 1.5e-3) -> torch.optim.Optimizer:
    """AdamW as `Trainer` builds it: fused kernel, no weight decay on biases and norms."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if name.endswith("bias") or ".ln_" in name or "norm" in name else decay).append(param)
    groups = [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, fused=True)


def autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def cpu_usage() -> tuple[float, float, int]:
    """CPU seconds (user + system) and system seconds of this process so far, and its minor page faults."""
    if resource is None:
        return 0.0, 0.0, 0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_stime, usage.ru_minflt


def usage_since(start: tuple[float, float, int]) -> tuple[float, float, int]:
    return tuple(now - then for now, then in zip(cpu_usage(), start, strict=True))  # type: ignore[return-value]


class Stepper:
    """A model, its optimiser and one training step; `step()` returns (seconds, loss).

    `last_usage` holds the step's CPU seconds, system seconds and minor page faults.
    """

    def __init__(self, preset: str, variant: Variant, device: torch.device, seed: int = 0) -> None:
        self.variant = variant
        self.device = device
        self.model = build_model(preset, variant, device, seed)
        self.optimizer = make_optimizer(self.model)
        self.last_usage = (0.0, 0.0, 0)

    def step(self, batch: torch.Tensor) -> tuple[float, float]:
        synchronize(self.device)
        usage = cpu_usage()
        start = time.perf_counter()
        with autocast(self.device, self.variant.bf16):
            loss = self.model(input_ids=batch, labels=batch, use_cache=False).loss
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        synchronize(self.device)
        seconds = time.perf_counter() - start
        self.last_usage = usage_since(usage)
        return seconds, float(loss.detach())


def random_batch(case: Case, device: torch.device, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 128, (case.batch, case.seq_len), generator=generator).to(device)


@dataclass
class Row:
    case: Case
    recipe: str
    loop: str
    attention: str
    precision: str
    tokens_per_s: float
    gflops: float
    usage: tuple[float, float, float] | None = None  # median CPU s, system s, minor page faults per step
    ratio: float | None = None  # paired ratio to the baseline, when measured in the same rounds

    @property
    def numbers(self) -> dict:
        return {"tokens_per_s": self.tokens_per_s, "gflops": self.gflops, "usage": self.usage}


def median_usage(usages: list[tuple[float, float, int]]) -> tuple[float, float, float]:
    return tuple(statistics.median(column) for column in zip(*usages, strict=True))  # type: ignore[return-value]


def attention_label(variant: Variant, device: torch.device) -> str:
    if variant.fused_attention or device.type != "cpu":
        return "fused SDPA"
    return "explicit"


def time_all(
    entries: list[tuple[Case, Variant]], args, device: torch.device, baseline: int | None
) -> list[Row]:
    """Warm up every (case, variant), then time them all round by round, interleaved.

    Each row's tokens/s is its median step; its ratio to `entries[baseline]` is the median of the per-round
    ratios, so both were measured within seconds of each other.
    """
    steppers = [Stepper(case.preset, variant, device) for case, variant in entries]
    batches = {case: [random_batch(case, device, seed) for seed in range(2)] for case, _ in entries}
    for (case, _), stepper in zip(entries, steppers, strict=True):
        for index in range(args.warmup):
            stepper.step(batches[case][index % 2])
    rates: list[list[float]] = [[] for _ in steppers]
    usages: list[list[tuple[float, float, int]]] = [[] for _ in steppers]
    for round_index in range(args.steps):
        order = range(len(steppers)) if round_index % 2 == 0 else reversed(range(len(steppers)))
        for index in order:
            case = entries[index][0]
            seconds, _ = steppers[index].step(batches[case][round_index % 2])
            rates[index].append(case.batch * case.seq_len / seconds)
            usages[index].append(steppers[index].last_usage)
    rows = []
    for index, ((case, variant), stepper) in enumerate(zip(entries, steppers, strict=True)):
        tokens_per_s = statistics.median(rates[index])
        ratio = None
        if baseline is not None:
            ratio = statistics.median(a / b for a, b in zip(rates[index], rates[baseline], strict=True))
        rows.append(
            Row(
                case,
                variant.label,
                "plain + compile" if variant.compile else "plain",
                attention_label(variant, device),
                variant.precision,
                tokens_per_s,
                tokens_per_s * matmul_flops_per_token(stepper.model.config, case.seq_len) / 1e9,
                median_usage(usages[index]),
                ratio,
            )
        )
    return rows


def check_attention_paths(preset: str, device: torch.device) -> float:
    """Largest difference between the fused and the explicit path (loss and gradients, fp32, no dropout)."""
    config = GigaPianoConfig.from_preset(preset)
    length = min(config.max_position_embeddings, 128)
    batch = torch.randint(0, 128, (2, length), generator=torch.Generator().manual_seed(1)).to(device)
    results = []
    for variant in (Variant("new", False), Variant("old", False)):
        model = build_model(preset, variant, device)
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
            if isinstance(module, GigaPianoAttention):
                module.attn_dropout = 0.0
        loss = model(input_ids=batch, labels=batch, use_cache=False).loss
        loss.backward()
        results.append((loss.detach(), model.model.layers[0].attn.relative_embedding.grad.clone()))
    (loss_a, grad_a), (loss_b, grad_b) = results
    return max(float((loss_a - loss_b).abs()), float((grad_a - grad_b).abs().max() / grad_a.abs().max()))


# ------------------------------------------------------------------------------------------------------
# The real Trainer path
# ------------------------------------------------------------------------------------------------------


def trainer_rows(case: Case, args, device: torch.device) -> tuple[Row, Row]:
    """Time `GigaPianoTrainer` steps (new recipe, bf16, the base_medium config's arguments).

    Returns the Trainer's row and the row of an identical model's plain steps run between its steps.
    """
    import datasets
    from transformers import TrainerCallback, default_data_collator, set_seed

    from gigapiano.training import parse_training_args
    from gigapiano.training.model_setup import prepare_model
    from gigapiano.training.trainer import GigaPianoTrainer

    total_steps = args.warmup + args.steps
    config_file = TRAINER_CONFIGS[1024 if case.seq_len >= 1024 else 512]
    output_dir = tempfile.mkdtemp(prefix="bench-train-")
    argv = [
        "--config", config_file,
        "--base_model", f"scratch:{case.preset}",
        "--output_dir", output_dir,
        "--window_length", str(case.seq_len),
        "--window_stride", str(case.seq_len),
        "--per_device_train_batch_size", str(case.batch),
        "--max_steps", str(total_steps),
        "--eval_strategy", "no",
        "--save_strategy", "no",
        "--report_to", "none",
        "--disable_tqdm", "true",
        "--bf16", "true",
        "--use_cpu", str(device.type == "cpu").lower(),
    ]  # fmt: skip
    model_args, _, training_args = parse_training_args(argv)
    if device.type == "cpu":
        training_args.dataloader_pin_memory = False  # as run_training does
    set_seed(training_args.seed)
    model = prepare_model(model_args)

    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 128, (case.batch * total_steps, case.seq_len), generator=generator).tolist()
    windows = datasets.Dataset.from_dict({"input_ids": ids, "labels": ids}).shuffle(seed=training_args.seed)

    twin = Stepper(case.preset, Variant("new", True), device)
    twin_batch = random_batch(case, device, 0)
    twin.step(twin_batch)

    class Interleave(TrainerCallback):
        """Trainer step periods (on_step_end to on_step_end), with one twin plain step between steps."""

        def __init__(self) -> None:
            self.last: tuple[float, tuple[float, float, int]] | None = None
            self.trainer: list[tuple[float, tuple[float, float, int]]] = []
            self.plain: list[tuple[float, tuple[float, float, int]]] = []

        def on_step_end(self, args_, state, control, **kwargs):
            now = time.perf_counter()
            if self.last is not None and state.global_step > args.warmup:
                self.trainer.append((now - self.last[0], usage_since(self.last[1])))
            if args.warmup <= state.global_step < total_steps:
                seconds, _ = twin.step(twin_batch)
                self.plain.append((seconds, twin.last_usage))
            self.last = (time.perf_counter(), cpu_usage())

    timer = Interleave()
    trainer = GigaPianoTrainer(
        model=model,
        args=training_args,
        train_dataset=windows,
        data_collator=default_data_collator,
        callbacks=[timer],
    )
    with redirect_stdout(sys.stderr):  # the Trainer prints its final metrics
        trainer.train()
    tokens = case.batch * case.seq_len
    per_token = matmul_flops_per_token(model.config, case.seq_len)
    rows = []
    loops = (f"Trainer ({Path(config_file).name})", "plain, between Trainer steps")
    for loop, samples in zip(loops, (timer.trainer, timer.plain), strict=True):
        tokens_per_s = tokens / statistics.median(seconds for seconds, _ in samples)
        usage = median_usage([usage for _, usage in samples])
        attention = attention_label(Variant("new", True), device)
        rows.append(
            Row(case, "new", loop, attention, "bf16", tokens_per_s, tokens_per_s * per_token / 1e9, usage)
        )
    return rows[0], rows[1]


# ------------------------------------------------------------------------------------------------------
# Loss check
# ------------------------------------------------------------------------------------------------------


def learnable_batches(case: Case, count: int, seed: int) -> list[torch.Tensor]:
    """Windows of a sparse bigram chain (each token has two successors, 80/20); the second half of a
    window repeats its first half, so attention at distance T/2 can predict it exactly."""
    generator = torch.Generator().manual_seed(1000)
    successors = torch.randint(0, 128, (128, 2), generator=generator)
    generator.manual_seed(seed)
    half = case.seq_len // 2
    batches = []
    for _ in range(count):
        tokens = torch.empty(case.batch, half, dtype=torch.long)
        tokens[:, 0] = torch.randint(0, 128, (case.batch,), generator=generator)
        for position in range(1, half):
            choice = (torch.rand(case.batch, generator=generator) < 0.2).long()
            tokens[:, position] = successors[tokens[:, position - 1], choice]
        window = torch.cat([tokens, tokens], dim=1)
        if window.shape[1] < case.seq_len:
            window = torch.cat([window, tokens[:, :1]], dim=1)
        batches.append(window)
    return batches


def real_batches(
    case: Case, data_dir: Path, count: int, seed: int, held_out: int = 64
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Training batches of random note-aligned windows of MAESTRO's TRAIN performances and held-out windows
    from its VALIDATION performances, both from a `gigapiano.training.gpu_data` export (`maestro.npz`: the
    composition-safe split of the shipped base's data)."""
    import numpy as np

    from gigapiano.training.gpu_recipe import RandomWindows

    path = data_dir / "maestro.npz"
    if not path.exists():
        raise SystemExit(
            f"error: {path} is missing; make it with `python -m gigapiano.training.gpu_data --maestro_dir "
            f"../shared/maestro/maestro-v3.0.0 --output {data_dir}`."
        )
    arrays = np.load(path)
    sampler = RandomWindows(
        arrays["train_tokens"], arrays["train_offsets"], case.seq_len, torch.device("cpu")
    )
    generator = torch.Generator().manual_seed(seed)
    train = [sampler.sample(case.batch, generator) for _ in range(count)]
    validation = torch.from_numpy(arrays["validation_windows"].astype(np.int64))
    if validation.shape[1] < case.seq_len:
        raise SystemExit(
            f"error: {path} holds {validation.shape[1]}-token windows, shorter than {case.seq_len}."
        )
    # Evenly spread over the validation performances; a window's first `seq_len` tokens start at a note.
    picks = torch.linspace(0, validation.shape[0] - 1, held_out).long()
    windows = validation[picks, : case.seq_len]
    return train, list(windows.split(case.batch))


def loss_check(
    case: Case, steps: int, seed: int, device: torch.device, data_dir: Path | None = None
) -> dict[str, tuple[list[float], float]]:
    """Old vs new recipe in bf16 from the same initial weights on the same batches.

    Returns, per recipe, the training-loss curve and the held-out loss (eval mode): 2 fresh synthetic
    batches, or with `data_dir` 64 windows of MAESTRO validation performances.
    """
    if data_dir is None:
        train_batches = learnable_batches(case, steps, seed=1 + 10 * seed)
        held_out = learnable_batches(case, 2, seed=2 + 10 * seed)
    else:
        train_batches, held_out = real_batches(case, data_dir, steps, seed=1 + 10 * seed)
    train_batches = [b.to(device) for b in train_batches]
    held_out = [b.to(device) for b in held_out]
    warmup = max(1, steps // 6)
    results = {}
    for variant in (Variant("old", True), Variant("new", True), Variant("new", True, keep_dropout=True)):
        stepper = Stepper(case.preset, variant, device, seed=seed)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            stepper.optimizer, lambda step, warmup=warmup: min(1.0, (step + 1) / warmup)
        )
        curve = []
        for batch in tqdm(train_batches, desc=f"loss check, seed {seed}, {variant.label}", leave=False):
            curve.append(stepper.step(batch)[1])
            scheduler.step()
        stepper.model.eval()
        with torch.no_grad(), autocast(device, True):
            held = [float(stepper.model(input_ids=b, labels=b, use_cache=False).loss) for b in held_out]
        results[variant.label] = (curve, sum(held) / len(held))
    return results


def print_loss_check(
    case: Case, steps: int, seeds: int, device: torch.device, data_dir: Path | None = None
) -> None:
    """Curves at evenly spaced steps, final training loss (mean of the last 5 steps), held-out loss."""
    if data_dir is None:
        data = "synthetic windows whose loss floor is about 0.25 nats"
    else:
        data = (
            f"real MAESTRO windows ({data_dir / 'maestro.npz'}: random note-aligned windows of the "
            "composition-safe TRAIN performances; held-out: 64 windows spread over the VALIDATION "
            "performances)"
        )
    print(
        f"\nLoss check: {case.label}, bf16, {steps} steps (learning rate 1.5e-3 after a linear warm-up), "
        f"same initial weights and batches for every recipe; {data}.\n"
    )
    every = max(5, steps // 6)
    marks = list(range(every - 1, steps, every)) or [steps - 1]
    steps_label = ", ".join(str(m + 1) for m in marks)
    print(f"| seed | recipe | training loss at steps {steps_label} | final | held-out |")
    print("|---|---|---|---:|---:|")
    differences: dict[str, list[float]] = {}
    for seed in range(seeds):
        results = loss_check(case, steps, seed, device, data_dir)
        for recipe, (curve, held) in results.items():
            tail = curve[-min(5, len(curve)) :]
            points = " / ".join(f"{curve[m]:.2f}" for m in marks)
            print(f"| {seed} | {recipe} | {points} | {sum(tail) / len(tail):.3f} | {held:.3f} |", flush=True)
            if recipe != "old":
                differences.setdefault(recipe, []).append(held - results["old"][1])
    print()
    for recipe, values in differences.items():
        mean = sum(values) / len(values)
        verdict = "not worse" if mean <= 0.02 else "worse"
        listed = ", ".join(f"{value:+.3f}" for value in values)
        print(f"- {recipe} minus old, held-out loss: {listed} nats (mean {mean:+.3f}): {verdict}.")


# ------------------------------------------------------------------------------------------------------
# The older comparison: full fine-tuning vs frozen lower blocks vs LoRA
# ------------------------------------------------------------------------------------------------------


def methods_table(args) -> None:
    from gigapiano.training.arguments import GigaPianoModelArguments
    from gigapiano.training.model_setup import add_lora, freeze_for_finetuning

    def build(method: str) -> torch.nn.Module:
        torch.manual_seed(0)
        model = GigaPianoForCausalLM(GigaPianoConfig.from_preset(args.preset))
        if method == "frozen":
            freeze_for_finetuning(model, args.trainable_blocks)
        elif method == "lora":
            model = add_lora(model, GigaPianoModelArguments(lora=True))
        return model

    def seconds_per_step(model: torch.nn.Module, batch: torch.Tensor) -> float:
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        model.train()
        best = float("inf")
        for step in range(args.steps + 1):
            start = time.perf_counter()
            model(input_ids=batch, labels=batch, use_cache=False).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step:
                best = min(best, time.perf_counter() - start)
        return best

    batch = torch.randint(0, 128, (args.batch_size, args.seq_len), generator=torch.Generator().manual_seed(0))
    tokens = args.batch_size * args.seq_len
    rows = []
    for method, label in (
        ("full", "full fine-tuning"),
        ("frozen", f"top {args.trainable_blocks} blocks (upstream)"),
        ("lora", "LoRA r=8 (qkv, out, fc_in, fc_out)"),
    ):
        model = build(method)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        rows.append((label, trainable, seconds_per_step(model, batch)))
        del model
    layers = GigaPianoConfig.from_preset(args.preset).num_hidden_layers
    print(
        f"preset={args.preset} ({layers} blocks), batch {args.batch_size} x {args.seq_len} tokens, fp32, "
        f"{args.threads} threads, torch {torch.__version__}, {platform.machine()}\n"
    )
    print("| method | trainable parameters | s / step | tokens / s | step cost vs full |")
    print("|---|---:|---:|---:|---:|")
    full = rows[0][2]
    for label, trainable, seconds in rows:
        print(
            f"| {label} | {trainable / 1e6:.2f}M | {seconds:.2f} | {tokens / seconds:.0f} "
            f"| {seconds / full:.2f}x |"
        )


# ------------------------------------------------------------------------------------------------------


def glibc() -> bool:
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def machine_line(args, device: torch.device) -> str:
    if device.type == "cuda":
        hardware = torch.cuda.get_device_name()
    else:
        features = [
            name
            for name, probe in (
                ("AVX-512", "_is_avx512_supported"),
                ("AVX-512-BF16", "_is_avx512_bf16_supported"),
                ("AMX", "_is_amx_tile_supported"),
            )
            if getattr(torch.cpu, probe, lambda: False)()
        ]
        hardware = f"{platform.machine()} CPU ({', '.join(features) or 'no native bf16'})"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{hardware}, {args.threads} threads, torch {torch.__version__}, load average {load:.1f}, "
        f"malloc {'keeps freed memory' if malloc_tuned() else 'default'}; "
        f"{args.warmup} warm-up + {args.steps} timed steps per variant, median step"
    )


def print_table(rows: list[Row], baseline: Row) -> None:
    print("| model | recipe | loop | attention | precision | tokens / s | GFLOP/s | vs baseline |")
    print("|---|---|---|---|---|---:|---:|---:|")
    for row in rows:
        ratio = row.ratio if row.ratio is not None else row.tokens_per_s / baseline.tokens_per_s
        marker = " (baseline)" if row is baseline else ""
        print(
            f"| {row.case.label} | {row.recipe}{marker} | {row.loop} | {row.attention} | {row.precision} "
            f"| {row.tokens_per_s:,.0f} | {row.gflops:.1f} | {ratio:.2f}x |"
        )


def print_usage_table(rows: list[Row]) -> None:
    """CPU seconds, kernel share and page faults per step (contention inflates wall time far more)."""
    print("| model | recipe | loop | precision | CPU s / step | of which system | minor page faults / step |")
    print("|---|---|---|---|---:|---:|---:|")
    for row in rows:
        if row.usage is None:
            continue
        cpu, system, faults = row.usage
        print(
            f"| {row.case.label} | {row.recipe} | {row.loop} | {row.precision} | {cpu:.2f} "
            f"| {system:.2f} ({system / max(cpu, 1e-9):.0%}) | {faults:,.0f} ({faults * 4 / 1024:,.0f} MiB) |"
        )


def malloc_tuned() -> bool:
    """Whether glibc malloc already keeps freed memory in this process (see MALLOC_ENV)."""
    return os.environ.get("MALLOC_MMAP_MAX_") == "0" or "mmap_max=0" in os.environ.get("GLIBC_TUNABLES", "")


def case_key(case: Case) -> str:
    return f"{case.spec}x{case.batch}"


def tuned_rows(args, cases: list[Case], trainer_case: Case | None, device: torch.device) -> list[Row]:
    """The new bf16 recipe (plain loop and Trainer) in a child process whose malloc keeps freed memory."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--_child",
        "--presets",
        *(case_key(case) for case in cases),
        "--trainer",
        case_key(trainer_case) if trainer_case else "none",
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--threads",
        str(args.threads),
        "--device",
        device.type,
    ]
    result = subprocess.run(
        command, env={**os.environ, **MALLOC_ENV}, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"The malloc-tuned child run failed:\n{result.stderr[-3000:]}")
    by_key = {case_key(case): case for case in [*cases, *([trainer_case] if trainer_case else [])]}
    rows = []
    for line in result.stdout.splitlines():
        if line.startswith("ROW "):
            item = json.loads(line[4:])
            loop = item["loop"] + ", malloc keeps memory"
            usage = tuple(item["usage"]) if item["usage"] else None
            case = by_key[item["case"]]
            rows.append(
                Row(case, "new", loop, "explicit", "bf16", item["tokens_per_s"], item["gflops"], usage)
            )
    return rows


def print_row_for_parent(row: Row) -> None:
    """One measured row as a JSON line that a parent process reads back."""
    print("ROW " + json.dumps({"case": case_key(row.case), "loop": row.loop, **row.numbers}))


def child_main(args, cases: list[Case], device: torch.device) -> None:
    """`--_child`: print the new bf16 rows (plain and Trainer) as JSON lines for the parent."""
    rows = time_all([(case, Variant("new", True)) for case in cases], args, device, baseline=None)
    if args.trainer != "none":
        rows += trainer_rows(parse_cases([args.trainer])[0], args, device)
    for row in rows:
        print_row_for_parent(row)


def trainer_note(trainer: Row, plain: Row) -> str:
    malloc = ", malloc keeps memory" if "malloc" in trainer.loop else ""
    return (
        f"Trainer overhead ({trainer.case.label}, new recipe, bf16{malloc}): {trainer.tokens_per_s:,.0f} "
        f"tokens/s through the Trainer vs {plain.tokens_per_s:,.0f} tokens/s for plain steps interleaved "
        f"with its steps: {plain.tokens_per_s / trainer.tokens_per_s:.2f}x."
    )


# ------------------------------------------------------------------------------------------------------
# Each recipe alone in a fresh process, as a training run is
# ------------------------------------------------------------------------------------------------------

#: `--isolated`: the recipes as training runs execute them: the old one as the compact base was trained
#: (default allocator), the new one as `train.py` runs it on a CPU (freed memory kept, see MALLOC_ENV).
ISOLATED = {"old": (Variant("old", True), False), "new": (Variant("new", True), True)}


def isolated_run(recipe: str, case: Case, args, device: torch.device) -> float:
    """Tokens/s (median step) of one recipe in bf16, alone in a fresh child process."""
    _, keep_memory = ISOLATED[recipe]
    env = {key: value for key, value in os.environ.items() if key not in MALLOC_ENV}
    if keep_memory and glibc():
        env.update(MALLOC_ENV)
    command = [
        sys.executable, str(Path(__file__).resolve()), "--_isolated_child", recipe,
        "--presets", case_key(case), "--steps", str(args.steps), "--warmup", str(args.warmup),
        "--threads", str(args.threads), "--device", device.type,
    ]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    rows = [line for line in result.stdout.splitlines() if line.startswith("ROW ")]
    if result.returncode != 0 or not rows:
        raise SystemExit(f"The isolated {recipe} run failed:\n{result.stderr[-3000:]}")
    return json.loads(rows[0][4:])["tokens_per_s"]


def print_isolated(case: Case, rounds: int, args, device: torch.device) -> None:
    """Alternates fresh processes of the old and the new recipe (old-new, then new-old, ...) and prints
    each round's tokens/s and their ratio; a slow spell of the machine hits the two runs of a round alike."""
    print(
        f"\nEach recipe alone in a fresh process ({case.label}, bf16, {args.warmup} warm-up + {args.steps} "
        "timed steps, median step): old = the compact base's recipe with the default allocator, new = the "
        "recipe as train.py runs it on a CPU (freed memory kept).\n"
    )
    print("| round | old, tokens/s | new, tokens/s | new / old |")
    print("|---|---:|---:|---:|")
    ratios = []
    for round_index in range(rounds):
        order = ("old", "new") if round_index % 2 == 0 else ("new", "old")
        rates = {}
        for recipe in tqdm(order, desc=f"isolated round {round_index + 1}", leave=False):
            rates[recipe] = isolated_run(recipe, case, args, device)
        ratios.append(rates["new"] / rates["old"])
        print(
            f"| {round_index + 1} | {rates['old']:,.0f} | {rates['new']:,.0f} | {ratios[-1]:.2f}x |",
            flush=True,
        )
    print(
        f"\nnew / old over {rounds} rounds: median {statistics.median(ratios):.2f}x, "
        f"lowest {min(ratios):.2f}x, highest {max(ratios):.2f}x."
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--presets",
        nargs="+",
        default=["compact", "medium"],
        help="Cases: a preset (its default windows: compact @ 512, medium @ 512 and 1024), preset@T or "
        "preset@TxB. Default: compact medium.",
    )
    parser.add_argument("--steps", type=int, default=8, help="Timed steps per variant (default 8).")
    parser.add_argument(
        "--warmup", type=int, default=2, help="Untimed warm-up steps per variant (default 2)."
    )
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2).")
    parser.add_argument(
        "--trainer",
        default=None,
        help="Case for the Trainer row (default medium@512 when measured, else the first case); 'none' "
        "skips it.",
    )
    parser.add_argument(
        "--loss_steps", type=int, default=30, help="Steps of the old-vs-new loss check (0 skips; default 30)."
    )
    parser.add_argument(
        "--loss_seeds",
        type=int,
        default=2,
        help="Initial weights and data seeds of the loss check (default 2).",
    )
    parser.add_argument(
        "--loss_data",
        type=Path,
        default=None,
        help="Run the loss check on real MAESTRO windows from this `python -m gigapiano.training.gpu_data` "
        "export folder (its maestro.npz) instead of synthetic windows.",
    )
    parser.add_argument("--compile", action="store_true", help="Add a torch.compile row per case.")
    parser.add_argument(
        "--no_malloc_rows",
        action="store_true",
        help="Skip the rows measured in a child process whose glibc malloc keeps freed memory.",
    )
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available).")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="Smoke test: 1 warm-up, 2 timed steps, a 4-step loss check with one seed.",
    )
    parser.add_argument(
        "--isolated",
        type=int,
        default=0,
        help="Instead of the tables: N rounds of the old and the new bf16 recipe, each alone in a fresh "
        "process as a training run is (first case only).",
    )
    parser.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--_isolated_child", choices=sorted(ISOLATED), help=argparse.SUPPRESS)
    methods = parser.add_argument_group("the --methods comparison (full vs frozen blocks vs LoRA, fp32)")
    methods.add_argument("--methods", action="store_true", help="Run that comparison instead.")
    methods.add_argument("--preset", default="small", help="Its model preset (default small).")
    methods.add_argument("--batch_size", type=int, default=4, help="Its sequences per step (default 4).")
    methods.add_argument("--seq_len", type=int, default=512, help="Its tokens per sequence (default 512).")
    methods.add_argument("--trainable_blocks", type=int, default=4, help="Top blocks trained when frozen.")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.warmup = 2, 1
        args.loss_steps, args.loss_seeds = min(args.loss_steps, 4), 1

    torch.set_num_threads(args.threads)
    if args.methods:
        methods_table(args)
        return
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cases = parse_cases(args.presets)
    if args._child:
        child_main(args, cases, device)
        return
    if args._isolated_child:
        variant, _ = ISOLATED[args._isolated_child]
        print_row_for_parent(time_all([(cases[0], variant)], args, device, baseline=None)[0])
        return
    if args.isolated:
        print(machine_line(args, device))
        print_isolated(cases[0], args.isolated, args, device)
        return
    trainer_case = None
    if (args.trainer or "").lower() != "none":
        specs = {case.spec: case for case in cases}
        if args.trainer:
            trainer_case = specs.get(args.trainer) or parse_cases([args.trainer])[0]
        else:
            trainer_case = specs.get("medium@512", cases[0])

    print(machine_line(args, device))
    difference = check_attention_paths(cases[0].preset, device)
    print(
        f"fused vs explicit attention (fp32, {cases[0].preset}): largest relative difference {difference:.1e}"
    )
    if difference > 1e-3:
        raise SystemExit("The benchmark's fused attention no longer matches the model; update it.")

    variants = list(VARIANTS) + ([Variant("new", True, compile=True)] if args.compile else [])
    entries = [(case, variant) for case in cases for variant in variants]
    baseline_case = next((c for c in cases if c.preset == "compact"), cases[0])
    baseline_index = entries.index((baseline_case, Variant("old", True)))
    print(f"timing {len(entries)} variants ...", file=sys.stderr, flush=True)
    rows = time_all(entries, args, device, baseline_index)
    baseline = rows[baseline_index]

    pairs = []
    if trainer_case is not None:
        print(f"timing the Trainer on {trainer_case.label} ...", file=sys.stderr, flush=True)
        pairs.append(trainer_rows(trainer_case, args, device))
    if not args.no_malloc_rows and device.type == "cpu" and glibc() and not malloc_tuned():
        print("timing the new recipe with malloc keeping freed memory ...", file=sys.stderr, flush=True)
        tuned = tuned_rows(args, cases, trainer_case, device)
        rows += [row for row in tuned if row.loop.startswith("plain, malloc")]
        trainer_pair = [row for row in tuned if not row.loop.startswith("plain, malloc")]
        if trainer_pair:
            pairs.append((trainer_pair[0], trainer_pair[1]))
    rows += [row for pair in pairs for row in pair]
    order = {case: index for index, case in enumerate(cases)}
    rows.sort(key=lambda row: (row.loop.startswith(("Trainer", "plain, between")), order.get(row.case, 0)))

    print()
    print_table(rows, baseline)
    print()
    for trainer, plain in pairs:
        print(trainer_note(trainer, plain))
    print()
    print_usage_table(rows)
    if args.loss_steps > 0:
        print(f"loss check on {baseline_case.label} ...", file=sys.stderr, flush=True)
        print_loss_check(baseline_case, args.loss_steps, args.loss_seeds, device, args.loss_data)


if __name__ == "__main__":
    main()
