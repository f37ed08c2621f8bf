"""Style as a dial, measured: style strength, style blends and the anti-copy ("knn") mode on held-out prompts.

Two questions of issue 16, answered with the evaluation's own machinery (composition-held-out TEST prompts,
the key- and tempo-invariant style classifier fitted on TRAIN windows, piece bootstrap over several seeds,
the musical statistics of `musicstats`):

1. **Strength.** For each style, the share of continuations classified as that style at every strength of
   `--strengths` (0 = the base model, 1 = the style model, 0.5 and 1.5 = a `StyleMixture` of the two, as
   `load_blend(StyleBlend.parse(style, strength=s))` builds it), on the style's prompts with the same seeds
   at every strength, through the evaluation's batched sampler (`continue_prompts`). Consecutive strengths
   are compared with paired intervals (same prompts, same seeds). Each blend of `--blends` (e.g.
   `baroque:0.5,romantic:0.5`) continues every prompt; the report gives the share of each label.
2. **Anti-copy.** For every model of `--knn_models`, the prompts are continued by the library's
   `sample_notes(..., anti_copy=AntiCopy(...))` (one call per prompt, the seeds as its variations) and
   compared with the plain continuations of part 1 (strength 0 for the base, strength 1 for a style model)
   on repetition statistics (`repetition_stats`: exact repeats of a recent note, short loops in notes and in
   pitches), the musical statistics and the style share, with paired differences; plus the filter's
   fallback rate and its time cost, like for like (plain `sample_notes` on the first
   `--knn_timing_prompts` prompts of each model).

    python -m gigapiano.evaluation.style_dial --maestro_dir ../shared/maestro/maestro-v3.0.0 \\
        --models_dir models --num_threads 1

Writes a markdown block (between markers, the rest of the file kept) and every number as JSON beside it.
"""

from __future__ import annotations

import gc
import logging
import sys
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..generation.anti_copy import AntiCopy
from ..generation.style_spec import StyleBlend
from .arguments import GigaPianoEvaluationArguments
from .bootstrap import paired_bootstrap, piece_bootstrap

logger = logging.getLogger(__name__)

REPORT_START = "<!-- style-dial:start -->"
REPORT_END = "<!-- style-dial:end -->"
BASE_ROW = "base"
REAL_ROW = "real"
#: Defaults of this command that differ from the main evaluation's (a flag given on the command line wins).
COMMAND_DEFAULTS: dict[str, Any] = {"output": "docs/style_dial.md", "prompts_per_piece": 1}
#: Statistics of the anti-copy table, in column order (`classified_as_style`: 1 when the classifier
#: assigns the continuation to its prompt's style).
KNN_STATS: tuple[str, ...] = (
    "exact_repeat_share",
    "loop_share",
    "pitch_loop_share",
    "longest_pitch_loop",
    "motif_reuse",
    "repeated_4grams",
    "pc_entropy",
    "in_key_share",
    "notes_per_second",
    "classified_as_style",
)
STAT_HEADERS = {
    "exact_repeat_share": "exact repeats",
    "loop_share": "in note loops",
    "pitch_loop_share": "in pitch loops",
    "longest_pitch_loop": "longest pitch loop",
    "motif_reuse": "motif reuse",
    "repeated_4grams": "repeated 4-grams",
    "pc_entropy": "pitch-class entropy",
    "in_key_share": "in key",
    "notes_per_second": "notes/s",
    "classified_as_style": "classified as the style",
}

# (prompt style, piece, (prompt index, seed)): one generated or real continuation, as in `runner.measure`.
Item = tuple[str, str, tuple[int, int]]


@dataclass
class StyleDialArguments:
    """What to measure (the data, sampling and bootstrap settings are the evaluation's own flags)."""

    strengths: list[float] = field(
        default_factory=lambda: [0.0, 0.5, 1.0, 1.5],
        metadata={"help": "Style strengths (0 = base, 1 = style model). Default: 0 0.5 1 1.5."},
    )
    blends: list[str] = field(
        default_factory=lambda: ["baroque:0.5,romantic:0.5"],
        metadata={
            "help": "Style blends continuing every prompt ('none': no blend). Default: baroque:0.5,"
            "romantic:0.5."
        },
    )
    knn_models: list[str] = field(
        default_factory=lambda: ["all"],
        metadata={
            "help": "Models run in knn (anti-copy) mode: base (on every style's prompts) and styles (on "
            "their own); 'all': base and every style of --styles; 'none' skips the part. Default: all."
        },
    )
    knn_candidates: int = field(default=AntiCopy.candidates, metadata={"help": "Candidates per note."})
    knn_threshold: float = field(default=AntiCopy.threshold, metadata={"help": "Least distance to memory."})
    knn_memory_tokens: int = field(default=AntiCopy.memory_tokens, metadata={"help": "Tokens remembered."})
    knn_timing_prompts: int = field(
        default=2,
        metadata={
            "help": "Prompts per knn model also continued by plain sample_notes, to time knn against "
            "plain on the same path. Default: 2."
        },
    )
    repeat_memory_notes: int = field(
        default=64, metadata={"help": "Exact repeats: notes looked back (knn's 256 tokens). Default: 64."}
    )
    loop_max_period: int = field(default=8, metadata={"help": "Longest loop period in notes. Default: 8."})
    loop_min_repeats: int = field(default=3, metadata={"help": "Repeats that make a loop. Default: 3."})

    def __post_init__(self) -> None:
        if not self.strengths or len(set(self.strengths)) != len(self.strengths):
            raise ValueError(f"--strengths needs at least one strength and no repeats, got {self.strengths}.")
        self.strengths = sorted(self.strengths)
        for strength in self.strengths:
            StyleBlend.parse("style", strength)  # 0..2, one clear error
        if self.blends == ["none"]:
            self.blends = []
        for spec in self.blends:
            StyleBlend.parse(spec)
        if self.knn_models == ["none"]:
            self.knn_models = []
        AntiCopy(self.knn_candidates, self.knn_threshold, self.knn_memory_tokens)  # validates the knn options
        if self.knn_timing_prompts < 0 or self.repeat_memory_notes < 1:
            raise ValueError("--knn_timing_prompts must be >= 0 and --repeat_memory_notes >= 1.")
        if self.loop_max_period < 1 or self.loop_min_repeats < 2:
            raise ValueError("--loop_max_period must be >= 1 and --loop_min_repeats >= 2.")

    @property
    def anti_copy(self) -> AntiCopy:
        return AntiCopy(self.knn_candidates, self.knn_threshold, self.knn_memory_tokens)


# ----------------------------------------------------------------------------------------------------------
# repetition statistics (pure functions on token ids)
# ----------------------------------------------------------------------------------------------------------


def loop_spans(
    keys: Sequence[Hashable], max_period: int = 8, min_repeats: int = 3
) -> list[tuple[int, int, int]]:
    """Maximal stretches that repeat a short pattern: `(start, end, period)` with
    `keys[i] == keys[i - period]` for every `i` in `start + period .. end - 1`, `period <= max_period` and
    `end - start >= min_repeats * period` (the pattern played at least `min_repeats` times in a row).
    """
    spans, n = [], len(keys)
    for period in range(1, max_period + 1):
        i = period
        while i < n:
            if keys[i] != keys[i - period]:
                i += 1
                continue
            j = i
            while j < n and keys[j] == keys[j - period]:
                j += 1
            if j - (i - period) >= min_repeats * period:
                spans.append((i - period, j, period))
            i = j
    return spans


def loop_coverage(keys: Sequence[Hashable], max_period: int = 8, min_repeats: int = 3) -> tuple[float, int]:
    """`(share of items inside a loop, longest loop in items)` (see `loop_spans`); `(nan, 0)` when empty."""
    if not keys:
        return float("nan"), 0
    inside = np.zeros(len(keys), dtype=bool)
    longest = 0
    for start, end, _ in loop_spans(keys, max_period, min_repeats):
        inside[start:end] = True
        longest = max(longest, end - start)
    return float(inside.mean()), longest


def exact_repeat_share(prompt: Sequence[int], continuation: Sequence[int], memory_notes: int = 64) -> float:
    """Share of the continuation's notes equal in dt, duration and pitch to one of the `memory_notes` notes
    before it (prompt notes included): what the knn filter refuses at its default threshold."""
    from .invariant_features import notes_of

    notes = [tuple(row) for row in notes_of(list(prompt)).tolist()]
    first = len(notes)
    notes += [tuple(row) for row in notes_of(list(continuation)).tolist()]
    if len(notes) == first:
        return float("nan")
    hits = sum(notes[j] in notes[max(0, j - memory_notes) : j] for j in range(first, len(notes)))
    return hits / (len(notes) - first)


def repetition_stats(
    prompt: Sequence[int],
    continuation: Sequence[int],
    memory_notes: int = 64,
    max_period: int = 8,
    min_repeats: int = 3,
) -> dict[str, float]:
    """Loop statistics of one continuation (new notes only; the prompt only as memory for exact repeats).

    Returns:
        `exact_repeat_share` (see `exact_repeat_share`); `loop_share` / `longest_loop`: share of notes
        inside, and length in notes of the longest, stretch repeating a pattern of at most `max_period`
        whole notes (dt, duration, pitch) `min_repeats` times; `pitch_loop_share` / `longest_pitch_loop`:
        the same on the pitch sequence alone (a loop whose timing wobbles still counts); `pc_entropy`: the
        pitch-class entropy in bits (the classifier's feature).
    """
    from .invariant_features import STYLE_FEATURE_NAMES, notes_of, style_features

    rows = notes_of(list(continuation))
    notes = [tuple(row) for row in rows.tolist()]
    loop_share, longest = loop_coverage(notes, max_period, min_repeats)
    pitch_share, longest_pitch = loop_coverage(rows[:, 2].tolist(), max_period, min_repeats)
    entropy = (
        float(style_features(continuation)[STYLE_FEATURE_NAMES.index("pc_entropy")])
        if notes
        else float("nan")
    )
    return {
        "exact_repeat_share": exact_repeat_share(prompt, continuation, memory_notes),
        "loop_share": loop_share,
        "longest_loop": float(longest),
        "pitch_loop_share": pitch_share,
        "longest_pitch_loop": float(longest_pitch),
        "pc_entropy": entropy,
    }


# ----------------------------------------------------------------------------------------------------------
# tables (from labels / statistics per item to estimates)
# ----------------------------------------------------------------------------------------------------------


def strength_row(style: str, strength: float) -> str:
    """Row name of a style at a strength: `base` at 0 (the base model serves every style), else `style@s`."""
    return BASE_ROW if strength == 0 else f"{style}@{strength:g}"


def _by_key(
    values: Sequence[Any], items: Sequence[Item], style: str
) -> dict[tuple[int, int], tuple[str, Any]]:
    """Key -> (piece, value) of the items whose prompt is of `style`."""
    return {key: (piece, value) for value, (s, piece, key) in zip(values, items, strict=True) if s == style}


def strength_table(
    labels: Mapping[str, Sequence[str]],
    items: Mapping[str, Sequence[Item]],
    styles: Sequence[str],
    strengths: Sequence[float],
    resamples: int,
    seed: int,
) -> dict[str, dict[str, Any]]:
    """Per style: the share of its prompts' continuations classified as the style at every strength (the
    same prompt-and-seed items at every strength), the paired change between consecutive strengths, the
    real continuations' share, and whether the shares rise (`monotonic`: point estimates never fall;
    `separated`: every consecutive paired interval lies above 0), and the paired change from the lowest to
    the highest strength (`overall`).

    Args:
        labels / items: row (`strength_row`, and `real`) -> classifier label / `Item` per continuation.
    """
    table = {}
    for style in styles:
        rows = [strength_row(style, s) for s in strengths]
        hits = {row: _by_key([float(x == style) for x in labels[row]], items[row], style) for row in rows}
        keys = sorted(set.intersection(*(set(h) for h in hits.values())))
        pieces = [hits[rows[0]][key][0] for key in keys]
        values = {row: [hits[row][key][1] for key in keys] for row in rows}
        shares = {
            f"{s:g}": piece_bootstrap(pieces, values[row], resamples=resamples, seed=seed).to_dict()
            for s, row in zip(strengths, rows, strict=True)
        }
        steps = {
            f"{b:g} - {a:g}": paired_bootstrap(
                pieces, values[row_b], values[row_a], resamples=resamples, seed=seed
            ).to_dict()
            for (a, row_a), (b, row_b) in zip(
                zip(strengths, rows, strict=True), list(zip(strengths, rows, strict=True))[1:], strict=False
            )
        }
        entry: dict[str, Any] = {"continuations": len(keys), "pieces": len(set(pieces)), "shares": shares}
        entry["steps"] = steps
        entry["overall"] = {
            f"{strengths[-1]:g} - {strengths[0]:g}": paired_bootstrap(
                pieces, values[rows[-1]], values[rows[0]], resamples=resamples, seed=seed
            ).to_dict()
        }
        points = [shares[f"{s:g}"]["value"] for s in strengths]
        entry["monotonic"] = bool(all(b >= a for a, b in zip(points, points[1:], strict=False)))
        entry["separated"] = bool(all(step["low"] > 0 for step in steps.values()))
        if REAL_ROW in labels:
            real = _by_key([float(x == style) for x in labels[REAL_ROW]], items[REAL_ROW], style)
            entry["real"] = piece_bootstrap(
                [p for p, _ in real.values()], [v for _, v in real.values()], resamples=resamples, seed=seed
            ).to_dict()
        table[style] = entry
    return table


def label_table(
    labels: Mapping[str, Sequence[str]],
    items: Mapping[str, Sequence[Item]],
    rows: Sequence[str],
    styles: Sequence[str],
    resamples: int,
    seed: int,
) -> dict[str, dict[str, dict[str, dict]]]:
    """Per prompt style and row (e.g. `base` and a blend): the share of its continuations given each label."""
    table: dict[str, dict[str, dict[str, dict]]] = {}
    for prompt_style in styles:
        table[prompt_style] = {}
        for row in rows:
            chosen = [
                (piece, label)
                for label, (s, piece, _) in zip(labels[row], items[row], strict=True)
                if s == prompt_style
            ]
            pieces = [piece for piece, _ in chosen]
            table[prompt_style][row] = {
                label: piece_bootstrap(
                    pieces, [float(x == label) for _, x in chosen], resamples=resamples, seed=seed
                ).to_dict()
                for label in styles
            }
    return table


def knn_table(
    stats: Mapping[str, Sequence[Mapping[str, float]]],
    items: Mapping[str, Sequence[Item]],
    pairs: Mapping[str, tuple[str, str]],
    styles: Sequence[str],
    names: Sequence[str],
    resamples: int,
    seed: int,
) -> dict[str, dict[str, Any]]:
    """Per prompt style: every statistic for the real continuations and, per model, its plain and its knn
    continuations (the same prompt-and-seed items), with the paired difference knn - plain.

    Args:
        stats / items: row -> per continuation statistics / `Item`.
        pairs: model -> `(plain row, knn row)`.

    Items whose statistic is NaN (e.g. no chord) are left out of that statistic (of both rows when paired).
    """
    table: dict[str, dict[str, Any]] = {}
    for style in styles:
        entry: dict[str, Any] = {}
        if REAL_ROW in stats:
            real = _by_key(stats[REAL_ROW], items[REAL_ROW], style)
            entry[REAL_ROW] = _stat_estimates(list(real.values()), names, resamples, seed)
        for model, (plain_row, knn_row) in pairs.items():
            plain = _by_key(stats[plain_row], items[plain_row], style)
            knn = _by_key(stats[knn_row], items[knn_row], style)
            keys = sorted(set(plain) & set(knn))
            if not keys:
                continue
            difference = {}
            for name in names:
                kept = [k for k in keys if np.isfinite(plain[k][1][name]) and np.isfinite(knn[k][1][name])]
                difference[name] = paired_bootstrap(
                    [knn[k][0] for k in kept],
                    [knn[k][1][name] for k in kept],
                    [plain[k][1][name] for k in kept],
                    resamples=resamples,
                    seed=seed,
                ).to_dict()
            entry[model] = {
                "continuations": len(keys),
                "plain": _stat_estimates([plain[k] for k in keys], names, resamples, seed),
                "knn": _stat_estimates([knn[k] for k in keys], names, resamples, seed),
                "knn_minus_plain": difference,
            }
        table[style] = entry
    return table


def _stat_estimates(
    chosen: Sequence[tuple[str, Mapping[str, float]]], names: Sequence[str], resamples: int, seed: int
) -> dict[str, dict]:
    out = {}
    for name in names:
        kept = [(piece, values[name]) for piece, values in chosen if np.isfinite(values[name])]
        out[name] = piece_bootstrap(
            [p for p, _ in kept], [v for _, v in kept], resamples=resamples, seed=seed
        ).to_dict()
    return out


# ----------------------------------------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------------------------------------


@dataclass
class _Clock:
    """Wall and process-CPU seconds of the runs of one kind (CPU time is what contention does not inflate)."""

    wall: float = 0.0
    cpu: float = 0.0
    continuations: int = 0

    def add(self, started: tuple[float, float], continuations: int) -> None:
        self.wall += time.perf_counter() - started[0]
        self.cpu += time.process_time() - started[1]
        self.continuations += continuations

    def to_dict(self) -> dict[str, float]:
        per = max(self.continuations, 1)
        return {
            "wall_s": round(self.wall, 2),
            "cpu_s": round(self.cpu, 2),
            "continuations": self.continuations,
            "cpu_s_per_continuation": round(self.cpu / per, 3),
            "wall_s_per_continuation": round(self.wall / per, 3),
        }


def cost_ratio(numerator: _Clock, denominator: _Clock) -> float | None:
    """CPU seconds per continuation of one clock over another's (None when either timed nothing)."""
    if not numerator.continuations or not denominator.continuations or denominator.cpu <= 0:
        return None
    return round((numerator.cpu / numerator.continuations) / (denominator.cpu / denominator.continuations), 2)


def _now() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _sample_calls(
    model: Any,
    prompts: Sequence[Any],
    indices: Sequence[int],
    seeds: Sequence[int],
    new_notes: int,
    sampling: Any,
    anti_copy: AntiCopy | None,
    clock: _Clock,
) -> tuple[list[Any], list[dict]]:
    """One library `sample_notes` call per prompt, the seeds as its variations (variation v is keyed by
    `seeds[v]`), `torch.manual_seed(seeds[0])` before each call; returns the continuations and per call
    `{prompt_index, piece, knn_notes, knn_fallbacks}`."""
    import torch

    from gigapiano.generation import is_well_formed, sample_notes

    from .continuations import Continuation

    out, calls = [], []
    with torch.random.fork_rng(devices=[]):
        for index in indices:
            torch.manual_seed(seeds[0])
            report: dict = {}
            started = _now()
            ids, _ = sample_notes(
                model,
                list(prompts[index].ids),
                new_notes,
                batch_size=len(seeds),
                sampling=sampling,
                anti_copy=anti_copy,
                report=report,
            )
            clock.add(started, len(seeds))
            for seed, row in zip(seeds, ids.tolist(), strict=True):
                out.append(Continuation(index, seed, row, is_well_formed(row)))
            calls.append({"prompt_index": index, "piece": prompts[index].piece, **report})
    return out, calls


def run_style_dial(
    args: GigaPianoEvaluationArguments, dial: StyleDialArguments, command: str = ""
) -> dict[str, Any]:
    """Runs both parts (module docstring); returns every number as a JSON-able dict."""
    import torch

    from gigapiano.generation.style_mix import blend_members, load_blend

    from .classifier import evenly
    from .continuations import SamplingSetup, continue_prompts
    from .data import check, load_evaluation_data
    from .models import check_model_folders, load_evaluation_model
    from .musicstats import continuation_stats
    from .prompts import prompts_from_test_pieces
    from .runner import describe_run, fit_classifier

    started = time.time()
    styles = list(args.styles)
    folders = check_model_folders(args.models_dir, [BASE_ROW, *styles])
    if dial.knn_models == ["all"]:
        dial.knn_models = [BASE_ROW, *styles]
    unknown = [m for m in dial.knn_models if m not in (BASE_ROW, *styles)]
    if unknown:
        raise ValueError(f"--knn_models {unknown} are neither base nor one of --styles {styles}.")
    blends = [StyleBlend.parse(spec) for spec in dial.blends]
    for blend in [*blends, *(StyleBlend.parse(s, x) for s in styles for x in dial.strengths)]:
        blend_members(blend, args.models_dir)  # a missing model folder fails here, before any work
    if args.num_threads is not None:
        torch.set_num_threads(args.num_threads)
    data = load_evaluation_data(styles, args.base_style, args.maestro_dir, args.cache_dir, args.styles_dir)
    held_out = check(data, folders, args.on_overlap)
    classifier, classifier_scores = fit_classifier(args, data)
    prompts = prompts_from_test_pieces(
        data.split("test"), args.prompt_notes, args.new_notes, args.prompts_per_piece
    )
    timings = {"data_and_classifier": round(time.time() - started, 1)}
    setup = SamplingSetup.from_arguments(args)
    by_style = {s: [i for i, p in enumerate(prompts) if p.style == s] for s in styles}
    everything = list(range(len(prompts)))

    def load(blend: StyleBlend) -> Any:
        return load_blend(blend, args.models_dir, device=args.device, dtype=torch.float32)

    continuations: dict[str, list] = {}
    clocks: dict[str, _Clock] = {}

    def batched(row: str, model: Any, indices: Sequence[int]) -> None:
        clock = clocks.setdefault(row, _Clock())
        begun = _now()
        generated = continue_prompts(model, [prompts[i].ids for i in indices], setup, args.progress, row)
        clock.add(begun, len(generated))
        for item in generated:
            item.prompt_index = indices[item.prompt_index]
        continuations[row] = generated
        logger.info("%s: %d continuations, %.0f s CPU.", row, len(generated), clock.cpu)

    # 1. strengths (strength 0 is the base model, shared by every style) and blends
    for strength in dial.strengths:
        for style in styles:
            row = strength_row(style, strength)
            if row in continuations:
                continue
            model = load(StyleBlend.parse(style, strength))
            batched(row, model, everything if row == BASE_ROW else by_style[style])
            del model
            gc.collect()
    blend_rows = []
    for blend in blends:
        row = f"blend {blend.describe()}"
        blend_rows.append(row)
        model = load(blend)
        batched(row, model, everything)
        del model
        gc.collect()
    timings["strengths_and_blends"] = round(time.time() - started - sum(timings.values()), 1)

    # 2. knn against plain
    knn_calls: dict[str, list[dict]] = {}
    plain_timing_calls: dict[str, list[dict]] = {}
    pairs: dict[str, tuple[str, str]] = {}
    for name in dial.knn_models:
        plain_row = BASE_ROW if name == BASE_ROW else strength_row(name, 1.0)
        model = load_evaluation_model(folders[name], args.device)
        indices = everything if name == BASE_ROW else by_style[name]
        if plain_row not in continuations:
            batched(plain_row, model, indices)
        knn_row = f"{name} knn"
        clock = clocks.setdefault(knn_row, _Clock())
        continuations[knn_row], knn_calls[name] = _sample_calls(
            model, prompts, indices, args.seeds, args.new_notes, setup.sampling, dial.anti_copy, clock
        )
        timed = evenly(list(indices), dial.knn_timing_prompts) if dial.knn_timing_prompts else []
        plain_clock = clocks.setdefault(f"{name} plain sample_notes", _Clock())
        _, plain_timing_calls[name] = _sample_calls(
            model, prompts, timed, args.seeds, args.new_notes, setup.sampling, None, plain_clock
        )
        pairs[name] = (plain_row, knn_row)
        logger.info("%s knn: %d continuations, %.0f s CPU.", name, len(continuations[knn_row]), clock.cpu)
        del model
        gc.collect()
    timings["knn"] = round(time.time() - started - sum(timings.values()), 1)

    # 3. labels and statistics
    labels = {REAL_ROW: classifier.predict([p.real_continuation for p in prompts])}
    items: dict[str, list[Item]] = {REAL_ROW: [(p.style, p.piece, (i, -1)) for i, p in enumerate(prompts)]}
    for row, generated in continuations.items():
        labels[row] = classifier.predict([c.ids for c in generated])
        items[row] = [
            (prompts[c.prompt_index].style, prompts[c.prompt_index].piece, (c.prompt_index, c.seed))
            for c in generated
        ]
    stat_rows = [REAL_ROW, *(row for pair in pairs.values() for row in pair)]
    stats: dict[str, list[dict[str, float]]] = {}
    for row in dict.fromkeys(stat_rows):
        if row == REAL_ROW:
            sequences = [(p.ids, p.real_continuation) for p in prompts]
        else:
            sequences = [(prompts[c.prompt_index].ids, c.ids) for c in continuations[row]]
        stats[row] = []
        for (prompt, ids), label, item in zip(sequences, labels[row], items[row], strict=True):
            values = continuation_stats(prompt, ids)
            values.update(
                repetition_stats(
                    prompt, ids, dial.repeat_memory_notes, dial.loop_max_period, dial.loop_min_repeats
                )
            )
            values["classified_as_style"] = float(label == item[0])
            stats[row].append(values)
    timings["measure"] = round(time.time() - started - sum(timings.values()), 1)

    resamples, seed = args.bootstrap_resamples, args.bootstrap_seed
    names = [*KNN_STATS, "longest_loop"]
    knn_summary = {}
    for name, calls in knn_calls.items():
        fallbacks = piece_bootstrap(
            [c["piece"] for c in calls],
            [c["knn_fallbacks"] for c in calls],
            [c["knn_notes"] for c in calls],
            resamples=resamples,
            seed=seed,
        ).to_dict()
        knn_clock, plain_clock = clocks[f"{name} knn"], clocks[f"{name} plain sample_notes"]
        knn_summary[name] = {
            "fallback_rate": fallbacks,
            "knn_notes": int(sum(c["knn_notes"] for c in calls)),
            "knn_fallbacks": int(sum(c["knn_fallbacks"] for c in calls)),
            "timing_prompts": len(plain_timing_calls[name]),
            "plain_sample_notes": plain_clock.to_dict(),
            "knn_sample_notes": knn_clock.to_dict(),
            "batched_plain": clocks[pairs[name][0]].to_dict(),
            # per continuation (all prompts have the same length), knn's calls against plain calls
            "cpu_ratio_knn_to_plain_sample_notes": cost_ratio(knn_clock, plain_clock),
        }
    well_formed = {row: float(np.mean([c.well_formed for c in gen])) for row, gen in continuations.items()}
    run = describe_run(args, command)
    run["style_dial_arguments"] = vars(dial)
    run["timings_seconds"] = timings
    run["wall_seconds"] = round(time.time() - started, 1)
    run["cpu_seconds"] = round(time.process_time(), 1)
    return {
        "run": run,
        "styles": styles,
        "strengths": list(dial.strengths),
        "prompts": {s: len(v) for s, v in by_style.items()},
        "pieces": {s: len({prompts[i].piece for i in v}) for s, v in by_style.items()},
        "held_out": {k: v for k, v in held_out.items() if k != "groups"},
        "classifier_accuracy": classifier_scores["accuracy"],
        "strength": strength_table(labels, items, styles, dial.strengths, resamples, seed),
        "blends": {
            row: {"weights": blend.record()["model_weights"]}
            for row, blend in zip(blend_rows, blends, strict=True)
        },
        "blend_labels": label_table(labels, items, [BASE_ROW, *blend_rows], styles, resamples, seed)
        if blend_rows
        else {},
        "knn": knn_table(stats, items, pairs, styles, names, resamples, seed),
        "knn_runs": knn_summary,
        "anti_copy": vars(dial.anti_copy),
        "timings_by_row": {row: clock.to_dict() for row, clock in clocks.items()},
        "well_formed": well_formed,
        "raw": {"labels": labels, "items": items},
    }


# ----------------------------------------------------------------------------------------------------------
# the report
# ----------------------------------------------------------------------------------------------------------


def _estimate(entry: Mapping[str, float], scale: float = 1.0, digits: int = 1, sign: bool = False) -> str:
    value, low, high = (entry[k] * scale for k in ("value", "low", "high"))
    if not np.isfinite(value):
        return "n/a"
    spec = f"{'+' if sign else ''}.{digits}f"
    return f"{value:{spec}} [{low:{spec}}, {high:{spec}}]"


def _stat_digits(name: str) -> int:
    return 1 if name in ("longest_pitch_loop", "longest_loop", "notes_per_second") else 2


def render_style_dial(results: Mapping[str, Any]) -> str:
    """The markdown block of the report (between the markers)."""
    run = results["run"]
    arguments = run["arguments"]
    seeds = " ".join(map(str, arguments["seeds"]))
    prompts = ", ".join(f"{results['prompts'][s]} {s}" for s in results["styles"])
    lines = [
        REPORT_START,
        "",
        f"Command: `{run['command']}` ({run['date']}, {run['wall_seconds']:.0f} s wall, "
        f"{run['cpu_seconds']:.0f} s CPU, {run['threads']} thread(s), git `{run['git_commit'] or '?'}`).",
        "",
        f"Prompts: {prompts} excerpts of {arguments['prompt_notes']} notes from the TEST performances "
        f"({arguments['prompts_per_piece']} per performance), each continued with {arguments['new_notes']} "
        f"new notes once per seed ({seeds}); temperature {arguments['temperature']:g}, grammar-constrained. "
        "Intervals: 95% bootstrap over performances; differences paired (same prompts and seeds).",
        "",
        "**Share (%) of the style's prompts' continuations classified as the style, by strength** (0 = "
        "gigapiano-base, 1 = the style model; the same prompt-and-seed continuations in every column):",
        "",
    ]
    strengths = [f"{s:g}" for s in results["strengths"]]
    first = next(iter(results["strength"].values()))
    steps = [*first["steps"], *(step for step in first["overall"] if step not in first["steps"])]
    lines.append(
        "| style | n | real continuations | "
        + " | ".join(f"strength {s}" for s in strengths)
        + " | "
        + " | ".join(f"{step} (points)" for step in steps)
        + " | rises |"
    )
    lines.append("|---" * (4 + len(strengths) + len(steps)) + "|")
    for style, entry in results["strength"].items():
        real = _estimate(entry["real"], 100) if "real" in entry else "n/a"
        rises = ("monotonic" if entry["monotonic"] else "not monotonic") + (
            ", every step above 0" if entry["separated"] else ""
        )
        lines.append(
            f"| {style} | {entry['continuations']} | {real} | "
            + " | ".join(_estimate(entry["shares"][s], 100) for s in strengths)
            + " | "
            + " | ".join(
                _estimate((entry["steps"] | entry["overall"])[step], 100, sign=True) for step in steps
            )
            + f" | {rises} |"
        )
    lines.append("")
    if results.get("blend_labels"):
        styles = results["styles"]
        lines += [
            "**Blends**: share (%) of the continuations given each label, by the prompts' style "
            "(effective weights: "
            + "; ".join(
                f"{row.removeprefix('blend ')}: "
                + ", ".join(f"{name} {weight:g}" for name, weight in entry["weights"].items())
                for row, entry in results["blends"].items()
            )
            + "):",
            "",
            "| prompts | model | " + " | ".join(f"classified {s}" for s in styles) + " |",
            "|---|---" + "|---" * len(styles) + "|",
        ]
        for prompt_style, rows in results["blend_labels"].items():
            for row, shares in rows.items():
                name = "gigapiano-base" if row == BASE_ROW else row
                lines.append(
                    f"| {prompt_style} | {name} | "
                    + " | ".join(_estimate(shares[s], 100) for s in styles)
                    + " |"
                )
        lines.append("")
    if results.get("knn"):
        lines += _render_knn(results)
    well = ", ".join(f"{row} {100 * share:.1f}%" for row, share in results["well_formed"].items())
    lines += [f"Well-formed continuations: {well}.", "", REPORT_END]
    return "\n".join(lines)


def _render_knn(results: Mapping[str, Any]) -> list[str]:
    anti, dial = results["anti_copy"], results["run"]["style_dial_arguments"]
    lines = [
        f"**Anti-copy (knn) against plain continuation** ({anti['candidates']} candidates, threshold "
        f"{anti['threshold']:g}, memory {anti['memory_tokens']} tokens; plain: the batched continuations "
        "above, strength 0 for the base, 1 for the style model; knn: the library's "
        "`sample_notes(..., anti_copy=...)`, one call per prompt with the seeds as its variations). Means "
        "per continuation: exact repeats = share of new notes equal in dt, duration and pitch to one of the "
        f"{dial['repeat_memory_notes']} notes before them; in note / pitch loops = share of notes inside a "
        f"stretch that plays a pattern of at most {dial['loop_max_period']} notes (whole notes / pitches "
        f"only) {dial['loop_min_repeats']} or more times in a row; longest pitch loop in notes; pitch-class "
        "entropy in bits.",
        "",
    ]
    header = "| continuations of | n | " + " | ".join(STAT_HEADERS[n] for n in KNN_STATS) + " |"
    for style, entry in results["knn"].items():
        if not entry:
            continue
        lines += [f"*{style} prompts:*", "", header, "|---|---" + "|---" * len(KNN_STATS) + "|"]
        if REAL_ROW in entry:
            real = entry[REAL_ROW]
            lines.append(
                f"| real continuations | {real[KNN_STATS[0]]['pieces']} pieces | "
                + " | ".join(_cell(real[n], n) for n in KNN_STATS)
                + " |"
            )
        for model, parts in entry.items():
            if model == REAL_ROW:
                continue
            name = "gigapiano-base" if model == BASE_ROW else f"gigapiano-{model}"
            n = parts["continuations"]
            lines.append(
                f"| {name} | {n} | " + " | ".join(_cell(parts["plain"][x], x) for x in KNN_STATS) + " |"
            )
            lines.append(
                f"| {name} knn | {n} | " + " | ".join(_cell(parts["knn"][x], x) for x in KNN_STATS) + " |"
            )
            lines.append(
                f"| knn − plain (paired) | {n} | "
                + " | ".join(_cell(parts["knn_minus_plain"][x], x, sign=True) for x in KNN_STATS)
                + " |"
            )
        lines.append("")
    lines += [
        "| model | knn fallbacks (no candidate far enough) | CPU s per continuation: batched plain / "
        "plain `sample_notes` / knn `sample_notes` | knn / plain `sample_notes` |",
        "|---|---|---|---|",
    ]
    for model, run in results["knn_runs"].items():
        name = "gigapiano-base" if model == BASE_ROW else f"gigapiano-{model}"
        ratio = run["cpu_ratio_knn_to_plain_sample_notes"]
        lines.append(
            f"| {name} | {_estimate(run['fallback_rate'], 100)}% of {run['knn_notes']} notes | "
            f"{run['batched_plain']['cpu_s_per_continuation']:.2f} / "
            f"{run['plain_sample_notes']['cpu_s_per_continuation']:.2f} / "
            f"{run['knn_sample_notes']['cpu_s_per_continuation']:.2f} | "
            f"{'n/a' if ratio is None else f'{ratio:.2f}x'} |"
        )
    lines.append("")
    return lines


def _cell(entry: Mapping[str, float], name: str, sign: bool = False) -> str:
    scale = 100 if name == "classified_as_style" else 1
    digits = 1 if scale == 100 else _stat_digits(name)
    return _estimate(entry, scale, digits, sign)


def write_style_dial(path: str | Path, results: Mapping[str, Any]) -> list[Path]:
    """Writes the block into `path` (replacing an earlier block, keeping the rest) and the JSON beside it."""
    from .sampling_sweep import write_block_and_json

    new_file = (
        "# Style strength and anti-copy mode\n\nWritten by `python -m gigapiano.evaluation.style_dial`; "
        "the method and a reading are in "
        "[evaluation.md](evaluation.md#style-strength-and-anti-copy-mode).\n\n"
    )
    return write_block_and_json(
        path, render_style_dial(results), results, new_file, (REPORT_START, REPORT_END)
    )


def main(argv: list[str] | None = None) -> int:
    """Command line; returns the exit status."""
    from .__main__ import run_study

    return run_study(
        "style_dial",
        StyleDialArguments,
        "Style as a dial on held-out TEST prompts: the share of continuations classified as the "
        "style at each style strength (0 = base, 1 = style model) and for style blends, and the anti-copy "
        "(knn) mode's repetition statistics against plain continuation, with piece-bootstrap intervals.",
        COMMAND_DEFAULTS,
        lambda args, dial, command: write_style_dial(args.output, run_style_dial(args, dial, command)),
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
