"""Training-step cost: full fine-tuning vs upstream's frozen lower blocks vs LoRA, in one run.

Each method gets the same model size, batch and random data; a step is forward + backward + AdamW
update. Frozen parameters have `requires_grad=False`, so the backward pass stops at the lowest trainable
block; LoRA still back-propagates through every block (its adapters sit in all of them) but updates far
fewer weights. Prints a markdown table for docs/benchmarks.md.

    python bench/bench_train.py --preset small --batch_size 4 --seq_len 512 --threads 2
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gigapiano.training.arguments import GigaPianoModelArguments  # noqa: E402
from gigapiano.training.model_setup import add_lora, freeze_for_finetuning  # noqa: E402
from modeling_gigapiano import GigaPianoConfig, GigaPianoForCausalLM  # noqa: E402


def build(method: str, preset: str, trainable_blocks: int) -> torch.nn.Module:
    torch.manual_seed(0)
    model = GigaPianoForCausalLM(GigaPianoConfig.from_preset(preset))
    if method == "full":
        return model
    if method == "frozen":
        freeze_for_finetuning(model, trainable_blocks)
        return model
    return add_lora(model, GigaPianoModelArguments(lora=True))


def seconds_per_step(model: torch.nn.Module, batch: torch.Tensor, steps: int) -> float:
    """Best of `steps` timed steps after one warm-up step."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    model.train()
    best = float("inf")
    for step in range(steps + 1):
        start = time.perf_counter()
        loss = model(input_ids=batch, labels=batch, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step:
            best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small", help="Model size preset (default: small, 16 x 1024).")
    parser.add_argument("--batch_size", type=int, default=4, help="Sequences per step (default: 4).")
    parser.add_argument("--seq_len", type=int, default=512, help="Tokens per sequence (default: 512).")
    parser.add_argument(
        "--trainable_blocks", type=int, default=4, help="Top blocks trained when frozen (default 4)."
    )
    parser.add_argument(
        "--steps", type=int, default=2, help="Timed steps per method; the best is kept (default 2)."
    )
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default: 2).")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    batch = torch.randint(0, 128, (args.batch_size, args.seq_len), generator=torch.Generator().manual_seed(0))
    tokens = args.batch_size * args.seq_len
    rows = []
    for method, label in (
        ("full", "full fine-tuning"),
        ("frozen", f"top {args.trainable_blocks} blocks (upstream)"),
        ("lora", "LoRA r=8 (qkv, out, fc_in, fc_out)"),
    ):
        model = build(method, args.preset, args.trainable_blocks)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        rows.append((label, trainable, seconds_per_step(model, batch, args.steps)))
        del model

    layers = GigaPianoConfig.from_preset(args.preset).num_hidden_layers
    print(
        f"preset={args.preset} ({layers} blocks), batch {args.batch_size} x {args.seq_len} tokens, "
        f"{args.threads} threads, "
        f"torch {torch.__version__}, {platform.machine()}\n"
    )
    print("| method | trainable parameters | s / step | tokens / s | step cost vs full |")
    print("|---|---:|---:|---:|---:|")
    full = rows[0][2]
    for label, trainable, seconds in rows:
        print(
            f"| {label} | {trainable / 1e6:.2f}M | {seconds:.2f} | {tokens / seconds:.0f} "
            f"| {seconds / full:.2f}x |"
        )


if __name__ == "__main__":
    main()
