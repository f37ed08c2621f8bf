"""Decoding speed: upstream-style full recomputation per token vs `generate()` with the key/value cache.

Both run in one process on the same random-weight model and prompt, so the ratio is meaningful on a
noisy shared machine. Prints a markdown table for docs/benchmarks.md.

    python bench/bench_generate.py --preset small --prompt_length 768 --threads 2
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modeling_gigapiano import GigaPianoConfig, GigaPianoForCausalLM  # noqa: E402


@torch.no_grad()
def upstream_decode(model: GigaPianoForCausalLM, prompt: torch.Tensor, new_tokens: int) -> torch.Tensor:
    """What upstream's generate did: a full forward over the whole sequence for every new token."""
    seq = prompt
    for _ in range(new_tokens):
        logits = model(seq, use_cache=False).logits[:, -1]
        seq = torch.cat([seq, logits.argmax(-1, keepdim=True)], dim=1)
    return seq


@torch.no_grad()
def cached_decode(model: GigaPianoForCausalLM, prompt: torch.Tensor, new_tokens: int) -> torch.Tensor:
    return model.generate(prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)


def seconds_per_token(decode, model, prompt, new_tokens: int, repeats: int) -> float:
    """Best of `repeats` runs (least disturbed by other load), per generated token, prompt included."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        decode(model, prompt, new_tokens)
        best = min(best, time.perf_counter() - start)
    return best / new_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small", help="Model size preset (default: small, 16 x 1024).")
    parser.add_argument("--prompt_length", type=int, default=768, help="Prompt tokens (default: 768).")
    parser.add_argument("--new_tokens", type=int, default=128, help="Tokens generated with the cache (default: 128).")
    parser.add_argument(
        "--baseline_tokens", type=int, default=6, help="Tokens generated upstream-style (default: 6; ~2 s each)."
    )
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default: 2).")
    parser.add_argument("--repeats", type=int, default=2, help="Runs per case; the best is kept (default: 2).")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = GigaPianoForCausalLM(GigaPianoConfig.from_preset(args.preset)).eval()
    prompt = torch.randint(0, 128, (1, args.prompt_length))
    cached_decode(model, prompt[:, :64], 4)  # warm up allocator and kernels

    rows = []
    baseline = seconds_per_token(upstream_decode, model, prompt, args.baseline_tokens, args.repeats)
    rows.append(("upstream: full forward per token", baseline))
    for implementation in ("sdpa", "eager"):
        model.config._attn_implementation = implementation
        with_prefill = seconds_per_token(cached_decode, model, prompt, args.new_tokens, args.repeats)
        prefill = seconds_per_token(cached_decode, model, prompt, 1, args.repeats)
        steady = (with_prefill * args.new_tokens - prefill) / (args.new_tokens - 1)
        rows.append((f"generate() + cache ({implementation}), {args.new_tokens} tokens incl. prompt prefill", with_prefill))
        rows.append((f"generate() + cache ({implementation}), per step after prefill", steady))
    model.config._attn_implementation = "sdpa"

    print(
        f"preset={args.preset} ({model.num_parameters() / 1e6:.1f}M params), batch 1, prompt {args.prompt_length} "
        f"tokens, {args.threads} threads, torch {torch.__version__}, {platform.processor() or platform.machine()}\n"
    )
    print("| decoding | ms / token | tokens / s | speed-up vs upstream |")
    print("|---|---:|---:|---:|")
    for name, spt in rows:
        print(f"| {name} | {spt * 1000:.1f} | {1 / spt:.2f} | {baseline / spt:.1f}x |")


if __name__ == "__main__":
    main()
