"""Decoding speed: upstream-style full recomputation per token vs `generate()` with the key/value cache.

Both run in one process on the same random-weight model and prompt, so the ratio is meaningful on a
noisy shared machine. Prints markdown tables for docs/benchmarks.md.

Inpainting case: a source of `--inpaint_notes` notes inpainted with `gigapiano.generation` (key/value
cache; each note's known `<sep> dt dur` ride in the forward that samples its pitch, so one cached forward
per note; the window slides past the context) vs upstream's loop (one full forward of up to `context`
tokens per note). The upstream loop is timed twice: on upstream's forward (`upstream_forward`: the same
weights through the computation upstream's model code performs, explicit attention scores with the
relative term skewed into place; checked equal to the model's logits) and on this project's model without
cache (whose long forwards are themselves faster now). The upstream side is timed on
`--inpaint_upstream_notes` notes spread evenly over the piece and scaled to the whole piece.

Versus GPT-2 case: `model.generate()` of GIGA-Piano (dynamic cache; static cache, the saved
defaults; that static cache compiled with `--compile`) side by side with transformers' native GPT-2 of the
same width, depth, feed-forward width, heads and context, in fp32 and bf16: first call (compilation
included), prefill of the prompt and decode time per token after it, with ratios to GPT-2.

    python bench/bench_generate.py --preset small --prompt_length 768 --threads 2
    python bench/bench_generate.py --preset small --threads 1 --cases inpainting
    python bench/bench_generate.py --preset small --prompt_length 768 --threads 2 --cases gpt2 --compile
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transformers import CompileConfig, GPT2Config, GPT2LMHeadModel  # noqa: E402

from gigapiano.generation import generate_continuation  # noqa: E402
from gigapiano.generation.grammar import SEP_ID, join_notes  # noqa: E402
from modeling_gigapiano import (  # noqa: E402
    FAST_GENERATION_DEFAULTS,
    GigaPianoConfig,
    GigaPianoForCausalLM,
)


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


def inpaint_source(num_notes: int, seed: int = 0) -> list[int]:
    """A plausible piano source: steps of 0-400 ms (a third are chord notes), 32 ms-1.3 s notes."""
    g = torch.Generator().manual_seed(seed)
    dt = torch.randint(0, 25, (num_notes,), generator=g) * (torch.rand(num_notes, generator=g) > 0.33)
    dur = torch.randint(1, 40, (num_notes,), generator=g)
    pitch = torch.randint(36, 96, (num_notes,), generator=g)
    dt[0] = 0
    return join_notes(zip(dt.tolist(), dur.tolist(), pitch.tolist(), strict=True))


@torch.no_grad()
def upstream_forward(model: GigaPianoForCausalLM, ids: torch.Tensor) -> torch.Tensor:
    """Logits of `model`'s weights computed the way upstream's model code computes them.

    Upstream's relative-position attention (a PyTorch 1.2-era multi-head attention with a relative table)
    projects q, k, v with one `F.linear`, scales q, forms every head's full `q @ k^T` and `q @ Er^T` with
    batched products, shifts the relative scores into place by padding one column and reshaping (the
    "skew"), masks the future with -inf, softmaxes and multiplies with v; no fused attention kernel and no
    key/value cache. Used only as the timing baseline of upstream's loops.
    """
    base = model.model
    batch, length = ids.shape
    heads = model.config.num_attention_heads
    head_dim = model.config.hidden_size // heads
    x = base.embed_tokens(ids) + base.position_embedding[:, :length]
    future = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)
    for block in base.layers:
        attention = block.attn
        h = block.ln_1(x)
        q, k, v = F.linear(h, attention.qkv_proj.weight, attention.qkv_proj.bias).chunk(3, dim=-1)
        q, k, v = (t.reshape(batch, length, heads, head_dim).transpose(1, 2) for t in (q, k, v))
        q = q * head_dim**-0.5
        table = attention.relative_embedding[-length:]  # distances length-1 .. 0
        relative = torch.matmul(q, table.transpose(0, 1))  # (B, H, L, L), column c = distance L-1-c
        skewed = F.pad(relative, (1, 0)).reshape(batch, heads, length + 1, length)[:, :, 1:]
        scores = torch.matmul(q, k.transpose(-1, -2)) + skewed
        weights = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
        context = torch.matmul(weights, v).transpose(1, 2).reshape(batch, length, -1)
        x = x + F.linear(context, attention.out_proj.weight, attention.out_proj.bias)
        h = block.ln_2(x)
        h = F.gelu(F.linear(h, block.mlp.fc_in.weight, block.mlp.fc_in.bias))
        x = x + F.linear(h, block.mlp.fc_out.weight, block.mlp.fc_out.bias)
    return model.lm_head(base.norm(x))


def check_upstream_forward(model: GigaPianoForCausalLM) -> float:
    """Largest logit difference between `upstream_forward` and the model on a random input of at most 96
    tokens."""
    length = min(96, model.config.max_position_embeddings)
    ids = torch.randint(0, 128, (1, length), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        difference = (upstream_forward(model, ids) - model(ids, use_cache=False).logits).abs().max().item()
    if difference > 1e-3:
        raise AssertionError(f"upstream_forward differs from the model by {difference:.2e}")
    return difference


@torch.no_grad()
def upstream_inpaint_seconds(
    model: GigaPianoForCausalLM,
    source: list[int],
    note_indices: list[int],
    repeats: int = 1,
    forward=upstream_forward,
) -> list[float]:
    """Upstream's inpainting cost per note: the sequence so far plus the note's `<sep> dt dur`, cut to the
    last `context` tokens, through one full forward; the pitch is sampled from the last position.

    Only the listed notes are timed, each `repeats` times (the best is kept). The sequence "so far" uses
    the source pitches in place of earlier inpainted ones: the cost of a forward depends on its length only.
    """
    context = model.config.max_position_embeddings
    seconds = []
    for index in note_indices:
        prefix = source[: 4 * index] + source[4 * index : 4 * index + 3]  # ... <sep> dt dur
        window = torch.tensor([prefix[-context:]])
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            logits = forward(model, window)[0, -1, 1:SEP_ID]
            torch.multinomial(torch.softmax(logits, dim=-1), 1)
            best = min(best, time.perf_counter() - start)
        seconds.append(best)
    return seconds


def _model_without_cache(model: GigaPianoForCausalLM, ids: torch.Tensor) -> torch.Tensor:
    return model(ids, use_cache=False).logits


def bench_inpainting(model: GigaPianoForCausalLM, args: argparse.Namespace) -> None:
    difference = check_upstream_forward(model)
    source = inpaint_source(args.inpaint_notes)
    generate_continuation(model, source[:64], mode="inpaint", seed=0)  # warm up
    notes = args.inpaint_notes
    sampled = min(args.inpaint_upstream_notes, notes)
    indices = [round(i * (notes - 1) / max(1, sampled - 1)) for i in range(sampled)]
    cached = upstream = today = float("inf")
    result = None
    for _ in range(args.repeats):  # rounds interleaved, best of each side
        start = time.perf_counter()
        result = generate_continuation(model, source, mode="inpaint", seed=0)
        cached = min(cached, time.perf_counter() - start)
        upstream = min(upstream, sum(upstream_inpaint_seconds(model, source, indices)) / sampled)
        on_model = upstream_inpaint_seconds(model, source, indices, forward=_model_without_cache)
        today = min(today, sum(on_model) / sampled)
    kept = [(dt, dur) for dt, dur in zip(result.pieces[0][1::4], result.pieces[0][2::4], strict=True)]
    assert kept == list(zip(source[1::4], source[2::4], strict=True)), "inpainting must keep every dt and dur"

    cached_per_note = cached / notes
    print(
        f"\npreset={args.preset} ({model.num_parameters() / 1e6:.1f}M params), {args.threads} threads, "
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}. Inpainting a {notes}-note "
        f"source ({4 * notes} tokens, context {model.config.max_position_embeddings}, keep=time+dur), "
        f"batch 1, fp32. Upstream's loop timed on notes {indices} ({sampled} of {notes}) and scaled; the "
        f"cached run generates every note ({result.extra['windows']} windows). Best of {args.repeats} "
        f"interleaved rounds. upstream_forward vs the model: largest logit difference {difference:.1e}.\n"
    )
    print("| inpainting | s / note | whole piece (s) | speed-up vs upstream |")
    print("|---|---:|---:|---:|")
    scope = "measured" if sampled == notes else f"{sampled} notes timed, scaled to {notes}"
    for name, per_note in (
        (f"upstream: full forward per note, upstream's forward ({scope})", upstream),
        (f"upstream's loop on this project's model, no cache ({scope})", today),
    ):
        print(f"| {name} | {per_note:.3f} | {per_note * notes:.1f} | {upstream / per_note:.1f}x |")
    print(
        f"| gigapiano.generation inpaint (cache, one forward / note) | {cached_per_note:.3f} "
        f"| {cached:.1f} | **{upstream / cached_per_note:.1f}x** ({today / cached_per_note:.1f}x vs the "
        "loop on this model) |"
    )


def bench_decoding(model: GigaPianoForCausalLM, args: argparse.Namespace) -> None:
    prompt = torch.randint(0, 128, (1, args.prompt_length))
    cached_decode(model, prompt[:, :64], 4)  # warm up allocator and kernels

    rows = []
    baseline = seconds_per_token(upstream_decode, model, prompt, args.baseline_tokens, args.repeats)
    rows.append(("upstream: full forward per token", baseline))
    for implementation in ("sdpa", "eager"):
        model.set_attn_implementation(implementation)
        with_prefill = seconds_per_token(cached_decode, model, prompt, args.new_tokens, args.repeats)
        prefill = seconds_per_token(cached_decode, model, prompt, 1, args.repeats)
        steady = (with_prefill * args.new_tokens - prefill) / (args.new_tokens - 1)
        rows.append(
            (
                f"generate() + cache ({implementation}), {args.new_tokens} tokens incl. prompt prefill",
                with_prefill,
            )
        )
        rows.append((f"generate() + cache ({implementation}), per step after prefill", steady))
    model.set_attn_implementation("sdpa")

    print(
        f"preset={args.preset} ({model.num_parameters() / 1e6:.1f}M params), batch 1, prompt "
        f"{args.prompt_length} tokens, {args.threads} threads, torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}\n"
    )
    print("| decoding | ms / token | tokens / s | speed-up vs upstream |")
    print("|---|---:|---:|---:|")
    for name, spt in rows:
        print(f"| {name} | {spt * 1000:.1f} | {1 / spt:.2f} | {baseline / spt:.1f}x |")


def gpt2_twin(config: GigaPianoConfig) -> GPT2LMHeadModel:
    """transformers' GPT-2 with GIGA-Piano's width, depth, feed-forward, heads, context and vocabulary."""
    return GPT2LMHeadModel(
        GPT2Config(
            vocab_size=config.vocab_size,
            n_positions=config.max_position_embeddings,
            n_embd=config.hidden_size,
            n_layer=config.num_hidden_layers,
            n_head=config.num_attention_heads,
            n_inner=config.intermediate_size,
            bos_token_id=config.bos_token_id,
            eos_token_id=None,
        )
    ).eval()


def timed_generate(model: torch.nn.Module, prompt: torch.Tensor, tokens: int, **kwargs) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        model.generate(prompt, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, **kwargs)
    return time.perf_counter() - start


def bench_versus_gpt2(args: argparse.Namespace) -> None:
    """Every variant in one process, rounds interleaved: first call (a whole `new_tokens` generation, so a
    compiled variant compiles for the shapes it is timed on), then per round a one-token call (the prefill)
    and a `new_tokens` call; decode = (whole - prefill) / (new_tokens - 1), best of `repeats` rounds."""
    config = GigaPianoConfig.from_preset(args.preset)
    prompt = torch.randint(0, 128, (1, args.prompt_length))
    defaults = dict(FAST_GENERATION_DEFAULTS)
    variants = [
        ("GIGA-Piano, dynamic cache", "giga", {}),
        ("GIGA-Piano, static cache (saved defaults)", "giga", defaults),
    ]
    if args.compile:
        # A fresh compiler cache, so the first call times a cold compilation.
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-inductor-")
        compile_config = CompileConfig()
        # A class attribute, not an init field: transformers compiles on CPU only when it is set.
        compile_config._compile_all_devices = True
        compiled = {**defaults, "compile_config": compile_config}
        variants.append(("GIGA-Piano, static cache + compile", "giga", compiled))
    variants.append(("GPT-2 (transformers), dynamic cache", "gpt2", {}))

    runs = []
    for dtype in (torch.float32, torch.bfloat16):
        for name, kind, kwargs in variants:
            torch.manual_seed(0)
            model = gpt2_twin(config) if kind == "gpt2" else GigaPianoForCausalLM(config).eval()
            runs.append(
                {"name": name, "kind": kind, "dtype": dtype, "kwargs": kwargs, "model": model.to(dtype)}
            )
    for run in runs:
        torch._dynamo.reset()
        run["first"] = timed_generate(run["model"], prompt, args.new_tokens, **run["kwargs"])
        run["prefill"] = run["whole"] = float("inf")
    for _ in range(args.repeats):
        for run in runs:
            run["prefill"] = min(run["prefill"], timed_generate(run["model"], prompt, 1, **run["kwargs"]))
            whole = timed_generate(run["model"], prompt, args.new_tokens, **run["kwargs"])
            run["whole"] = min(run["whole"], whole)
    for run in runs:
        run["decode"] = (run["whole"] - run["prefill"]) / (args.new_tokens - 1)
    gpt2 = {run["dtype"]: run for run in runs if run["kind"] == "gpt2"}
    gpt2_best_decode = min(run["decode"] for run in gpt2.values())

    print(
        f"\npreset={args.preset}, batch 1, prompt {args.prompt_length} tokens, {args.new_tokens} new tokens, "
        f"{args.threads} threads, torch {torch.__version__}, {platform.processor() or platform.machine()}; "
        f"first call, then best of {args.repeats} interleaved rounds; saved defaults: {defaults}\n"
    )
    print(
        "| model.generate() | dtype | first call (s) | prefill (s) | prefill vs GPT-2 fp32 "
        "| decode ms / token | decode vs GPT-2 same dtype | decode vs GPT-2 fp32 |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for run in runs:
        same, fp32 = gpt2[run["dtype"]], gpt2[torch.float32]
        print(
            f"| {run['name']} | {str(run['dtype']).removeprefix('torch.')} | {run['first']:.2f} "
            f"| {run['prefill']:.3f} | {run['prefill'] / fp32['prefill']:.2f}x | {run['decode'] * 1000:.1f} "
            f"| {run['decode'] / same['decode']:.2f}x | {run['decode'] / fp32['decode']:.2f}x |"
        )
    print()
    for name, kind, _ in variants:
        if kind == "gpt2":
            continue
        mine = [run for run in runs if run["name"] == name]
        best = min(mine, key=lambda run: run["decode"])
        prefill = next(run for run in mine if run["dtype"] == torch.float32)["prefill"]
        first = max(run["first"] for run in mine)
        dtype = str(best["dtype"]).removeprefix("torch.")
        print(
            f"- {name}: best decode {best['decode'] * 1000:.1f} ms ({dtype}) "
            f"= {best['decode'] / gpt2[torch.float32]['decode']:.2f}x GPT-2 fp32, "
            f"{best['decode'] / gpt2_best_decode:.2f}x GPT-2's best dtype (target <= 0.5x); fp32 prefill "
            f"{prefill / gpt2[torch.float32]['prefill']:.2f}x GPT-2's (target <= 1.2x); slowest first call "
            f"{first:.1f} s (target <= 90 s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small", help="Model size preset (default: small, 16 x 1024).")
    parser.add_argument("--prompt_length", type=int, default=768, help="Prompt tokens (default: 768).")
    parser.add_argument(
        "--new_tokens", type=int, default=128, help="Tokens generated with the cache (default: 128)."
    )
    parser.add_argument(
        "--baseline_tokens",
        type=int,
        default=6,
        help="Tokens generated upstream-style (default: 6; ~2 s each).",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default: 2).")
    parser.add_argument(
        "--repeats", type=int, default=2, help="Runs per case; the best is kept (default: 2)."
    )
    parser.add_argument(
        "--cases",
        default="decoding,inpainting",
        help="Comma-separated cases: decoding, inpainting, gpt2 (default: decoding,inpainting).",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="gpt2 case: also time the static cache compiled on this device.",
    )
    parser.add_argument(
        "--inpaint_notes", type=int, default=300, help="Notes of the inpainted source (default: 300)."
    )
    parser.add_argument(
        "--inpaint_upstream_notes",
        type=int,
        default=20,
        help="Notes timed upstream-style, spread over the piece (default: 20; 1 to 2 s each on small).",
    )
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = GigaPianoForCausalLM(GigaPianoConfig.from_preset(args.preset)).eval()
    cases = set(args.cases.split(","))
    if "decoding" in cases:
        bench_decoding(model, args)
    if "inpainting" in cases:
        bench_inpainting(model, args)
    if "gpt2" in cases:
        bench_versus_gpt2(args)


if __name__ == "__main__":
    main()
