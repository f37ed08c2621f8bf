"""Learning-rate range test: upstream picked its fine-tuning LR as the "valley" of such a sweep, halved.

The test trains a few dozen steps while the learning rate grows geometrically from `min_lr` to `max_lr`,
records the smoothed loss, then restores the weights it started from. The valley is taken two thirds
of the way along the longest chain of ever lower losses: late enough to learn fast, early enough to stay
clear of the blow-up at the end of the sweep.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)


@dataclass
class LRFindResult:
    """Outcome of a range test: the sweep and the rates read off it."""

    learning_rates: list[float]
    losses: list[float]  # smoothed
    valley_lr: float
    suggested_lr: float  # valley / 2, as upstream

    def save(self, output_dir: str | Path) -> Path:
        """Write `lr_find.json` and the plot `lr_find.png`; returns the PNG path."""
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "lr_find.json").write_text(json.dumps(asdict(self), indent=2))
        return plot_lr_find(self, output_dir / "lr_find.png")


def find_valley(losses: list[float]) -> int:
    """Index two thirds along the longest decreasing subsequence of the smoothed losses.

    A subsequence (not a contiguous run) tolerates the batch-to-batch noise that dominates the flat start
    of a sweep on an already-trained model: the longest chain of ever lower losses starts where the loss
    first responds and ends at its minimum, whatever wiggles lie between.

    Args:
        losses: smoothed losses in sweep order.
    """
    count = len(losses)
    if count < 3:
        return 0
    chain = [1] * count  # length of the longest decreasing chain ending at each point
    previous = [-1] * count
    for index in range(count):
        for earlier in range(index):
            if losses[earlier] > losses[index] and chain[earlier] + 1 > chain[index]:
                chain[index], previous[index] = chain[earlier] + 1, earlier
    end = max(range(count), key=lambda i: (chain[i], -i))
    start = end
    while previous[start] != -1:
        start = previous[start]
    return start + (2 * (end - start)) // 3


#: Bounds of a range test sized to the run (`range_test_steps`).
MIN_RANGE_TEST_STEPS, MAX_RANGE_TEST_STEPS = 8, 60


def planned_training_steps(training_args, num_train_windows: int) -> int:
    """Optimisation steps the run will take: `max_steps`, or the epochs over the training windows."""
    if training_args.max_steps and training_args.max_steps > 0:
        return int(training_args.max_steps)
    per_step = (
        training_args.per_device_train_batch_size
        * max(training_args.world_size, 1)
        * max(training_args.gradient_accumulation_steps, 1)
    )
    return max(1, math.ceil(num_train_windows / per_step * training_args.num_train_epochs))


def range_test_steps(requested: int | None, planned_steps: int) -> int:
    """`requested`, or a test sized to the run: a quarter of its steps, at least `MIN_RANGE_TEST_STEPS` (or
    the whole run when it is shorter) and at most `MAX_RANGE_TEST_STEPS`."""
    if requested is not None:
        return requested
    floor = min(MIN_RANGE_TEST_STEPS, planned_steps)
    return max(2, min(MAX_RANGE_TEST_STEPS, max(planned_steps // 4, floor)))


def lr_range_test(
    model: torch.nn.Module,
    dataset: Dataset,
    collate_fn,
    batch_size: int,
    min_lr: float = 1e-6,
    max_lr: float = 1e-1,
    steps: int = 60,
    seed: int = 0,
    weight_decay: float = 0.0,
    show_progress: bool = True,
) -> LRFindResult:
    """Sweep the learning rate geometrically and suggest valley / 2; the model's weights are restored.

    Args:
        model: the model as it will be trained (frozen parameters are left alone).
        dataset: training examples with `input_ids` and `labels`.
        collate_fn: batch collator.
        batch_size: examples per step.
        min_lr / max_lr: ends of the sweep.
        steps: number of optimisation steps (stops early once the loss explodes).
        seed: shuffling seed, so every process of a multi-process run finds the same rate.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("The model has no trainable parameters to run an LR range test on.")
    logger.info(
        "LR range test (--learning_rate auto): %d steps of batch %d, learning rate %.0e -> %.0e; a number "
        "for --learning_rate skips it.",
        steps,
        batch_size,
        min_lr,
        max_lr,
    )
    saved = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    optimizer = torch.optim.AdamW(trainable, lr=min_lr, weight_decay=weight_decay)
    growth = (max_lr / min_lr) ** (1 / max(steps - 1, 1))
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        collate_fn=collate_fn,
        generator=torch.Generator().manual_seed(seed),
    )
    device = next(model.parameters()).device
    was_training = model.training
    model.train()
    rates: list[float] = []
    smoothed: list[float] = []
    average, best = 0.0, math.inf
    batches = iter(loader)
    try:
        for step in tqdm(range(steps), desc="LR range test", disable=not show_progress):
            try:
                batch = next(batches)
            except StopIteration:
                batches = iter(loader)
                batch = next(batches)
            lr = min_lr * growth**step
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = model(**{k: v.to(device) for k, v in batch.items()}).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                break
            average = 0.9 * average + 0.1 * value
            current = average / (1 - 0.9 ** (step + 1))  # bias-corrected moving average
            rates.append(lr)
            smoothed.append(current)
            best = min(best, current)
            if current > 4 * best:
                break
    finally:
        model.load_state_dict(saved)
        model.train(was_training)
    if not rates:
        raise ValueError("The LR range test diverged at its first step; lower --lr_find_range.")
    valley = rates[find_valley(smoothed)]
    logger.info("LR range test: valley %.3g, using valley / 2 = %.3g.", valley, valley / 2)
    return LRFindResult(learning_rates=rates, losses=smoothed, valley_lr=valley, suggested_lr=valley / 2)


def plot_lr_find(result: LRFindResult, path: Path) -> Path:
    """Loss against learning rate (log axis) with the valley and the chosen rate marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(result.learning_rates, result.losses, color="tab:blue")
    ax.axvline(result.valley_lr, color="tab:orange", linestyle="--", label=f"valley {result.valley_lr:.2e}")
    ax.axvline(result.suggested_lr, color="tab:green", label=f"chosen (valley/2) {result.suggested_lr:.2e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("smoothed training loss")
    ax.set_title("LR range test")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
