"""How the product samples by default, chosen by measurement on VALIDATION prompts (never the test ones).

Sampling at the model's full distribution (temperature 1, no nucleus) lets every rare, wrong note through
now and then: the music drifts out of key, chords clash and the prompt's motifs are not taken up. Sharper
sampling fixes that up to a point, after which the music loops. This sweep measures, for every
(temperature, top-p) of a grid and every style model, the continuations of excerpts of the style's
VALIDATION performances (composition-disjoint from training and from the evaluation's test prompts) with
the musical statistics of `musicstats` and the style classifier of the evaluation, beside the real
continuations of the same prompts. A setting's *distance to real* is the mean, over the statistics in
`MATCHED_STATS`, of |generated mean - real mean| in units of the real continuations' spread; the setting
with the lowest distance averaged over the styles is the recommended default. The report is written as a
markdown table (and JSON beside it).

    python -m gigapiano.evaluation.sampling_sweep --maestro_dir ../shared/maestro/maestro-v3.0.0 \\
        --output docs/sampling.md
"""

from __future__ import annotations

import gc
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..generation.settings import MAX_MOTIF_BOOST
from .arguments import GigaPianoEvaluationArguments

logger = logging.getLogger(__name__)

#: The statistics a good default must bring close to the real continuations'.
MATCHED_STATS: tuple[str, ...] = (
    "in_key_share",
    "motif_reuse",
    "repeated_4grams",
    "dissonant_chord_pairs",
    "pitch_range",
    "polyphony",
    "notes_per_second",
)
#: A default must take up the prompt's motifs at least this share as often as the real continuations do.
MOTIF_REUSE_FLOOR = 0.5
REPORT_START = "<!-- sampling-sweep:start -->"
REPORT_END = "<!-- sampling-sweep:end -->"


@dataclass
class SamplingSweepArguments:
    """The grid of the sweep (the rest comes from the evaluation's own arguments)."""

    temperatures: list[float] = field(
        default_factory=lambda: [1.0, 0.9, 0.8],
        metadata={"help": "Temperatures to try. Default: 1.0 0.9 0.8."},
    )
    top_ps: list[float] = field(
        default_factory=lambda: [1.0, 0.95, 0.9],
        metadata={"help": "Nucleus (top-p) values to try (1.0 = off). Default: 1.0 0.95 0.9."},
    )
    motif_memories: list[float] = field(
        default_factory=lambda: [0.0],
        metadata={"help": "Motif-memory boosts to try (0 = off). Default: 0."},
    )

    def __post_init__(self) -> None:
        if not self.temperatures or any(not 0 < t <= 10 for t in self.temperatures):
            raise ValueError(f"--temperatures must be in (0, 10], got {self.temperatures}.")
        if not self.top_ps or any(not 0 < p <= 1 for p in self.top_ps):
            raise ValueError(f"--top_ps must be in (0, 1], got {self.top_ps}.")
        if not self.motif_memories or any(not 0 <= m <= MAX_MOTIF_BOOST for m in self.motif_memories):
            raise ValueError(
                f"--motif_memories must be in [0, {MAX_MOTIF_BOOST:g}], got {self.motif_memories}."
            )


def distance_to_real(
    generated: Sequence[dict], real: Sequence[dict], names: Sequence[str] = MATCHED_STATS
) -> float:
    """Mean over `names` of |mean generated - mean real| / spread of the real values (NaNs left out).

    A statistic whose real values do not vary (spread 0) is measured in its own units.
    """
    parts = []
    for name in names:
        gen = np.array([row[name] for row in generated], dtype=float)
        ref = np.array([row[name] for row in real], dtype=float)
        gen, ref = gen[np.isfinite(gen)], ref[np.isfinite(ref)]
        if gen.size == 0 or ref.size == 0:
            continue
        spread = float(ref.std()) or 1.0
        parts.append(abs(float(gen.mean()) - float(ref.mean())) / spread)
    return float(np.mean(parts)) if parts else float("nan")


def mean_stats(rows: Sequence[dict], names: Sequence[str] = MATCHED_STATS) -> dict[str, float]:
    """Per-statistic means (NaNs left out)."""
    means = {}
    for name in names:
        values = np.array([row[name] for row in rows], dtype=float)
        values = values[np.isfinite(values)]
        means[name] = float(values.mean()) if values.size else float("nan")
    return means


def recommend(results: dict[str, dict[str, dict]], real: dict[str, dict] | None = None) -> str:
    """The setting key with the lowest distance to real averaged over the styles, among the settings whose
    continuations take up the prompt's motifs at least `MOTIF_REUSE_FLOOR` times as often as the real
    continuations do in every style (all settings when none does, or without `real`)."""
    settings = list(next(iter(results.values())).keys())

    def reuses_motifs(key: str) -> bool:
        return all(
            results[style][key]["stats"]["motif_reuse"]
            >= MOTIF_REUSE_FLOOR * real[style]["stats"]["motif_reuse"]
            for style in results
        )

    eligible = [key for key in settings if real is not None and reuses_motifs(key)] or settings
    return min(eligible, key=lambda key: float(np.mean([results[s][key]["distance"] for s in results])))


def setting_key(temperature: float, top_p: float, motif_memory: float = 0.0) -> str:
    key = f"temperature {temperature:g}, top_p {top_p:g}"
    return key + (f", motif memory {motif_memory:g}" if motif_memory else "")


def run_sampling_sweep(
    args: GigaPianoEvaluationArguments, grid: SamplingSweepArguments, command: str = ""
) -> dict[str, Any]:
    """Runs the sweep (module docstring); returns every number as a JSON-able dict."""
    import torch

    from .continuations import SamplingSetup, continue_prompts
    from .data import check, load_evaluation_data
    from .models import check_model_folders, load_evaluation_model
    from .musicstats import continuation_stats
    from .prompts import prompts_from_test_pieces
    from .runner import describe_run, fit_classifier

    started = time.time()
    folders = check_model_folders(args.models_dir, list(args.styles))
    if args.num_threads is not None:
        torch.set_num_threads(args.num_threads)
    data = load_evaluation_data(
        args.styles, args.base_style, args.maestro_dir, args.cache_dir, args.styles_dir
    )
    check(data, folders, args.on_overlap)
    classifier, _ = fit_classifier(args, data)
    prompts = prompts_from_test_pieces(
        data.split("validation"), args.prompt_notes, args.new_notes, args.prompts_per_piece
    )
    results: dict[str, dict[str, dict]] = {}
    real: dict[str, dict] = {}
    for style in args.styles:
        chosen = [p for p in prompts if p.style == style]
        if not chosen:
            raise ValueError(
                f"No {style} validation performance holds a prompt of {args.prompt_notes} notes."
            )
        real_stats = [continuation_stats(p.ids, p.real_continuation) for p in chosen]
        real_labels = classifier.predict([p.real_continuation for p in chosen])
        real[style] = {
            "n": len(chosen),
            "pieces": len({p.piece for p in chosen}),
            "stats": mean_stats(real_stats),
            "style_share": float(np.mean([label == style for label in real_labels])),
        }
        model = load_evaluation_model(folders[style], args.device)
        results[style] = {}
        grid_points = [
            (temperature, top_p, memory)
            for temperature in grid.temperatures
            for top_p in grid.top_ps
            for memory in grid.motif_memories
        ]
        for temperature, top_p, memory in grid_points:
            setup = SamplingSetup(
                args.new_notes, tuple(args.seeds), temperature, 0, top_p, args.generation_batch_size, memory
            )
            key = setting_key(temperature, top_p, memory)
            ids = [p.ids for p in chosen]
            generated = continue_prompts(model, ids, setup, args.progress, f"{style} {key}")
            stats = [continuation_stats(chosen[c.prompt_index].ids, c.ids) for c in generated]
            labels = classifier.predict([c.ids for c in generated])
            results[style][key] = {
                "temperature": temperature,
                "top_p": top_p,
                "motif_memory": memory,
                "n": len(generated),
                "stats": mean_stats(stats),
                "style_share": float(np.mean([label == style for label in labels])),
                "distance": distance_to_real(stats, real_stats),
                "well_formed": float(np.mean([c.well_formed for c in generated])),
            }
            logger.info("%s, %s: distance to real %.3f", style, key, results[style][key]["distance"])
        del model
        gc.collect()
    run = describe_run(args, command)
    run["wall_seconds"] = round(time.time() - started, 1)
    return {"run": run, "real": real, "settings": results, "recommended": recommend(results, real)}


def _cell(value: float, digits: int = 3) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.{digits}f}"


def render_sweep(results: dict[str, Any]) -> str:
    """The markdown block of the report (between the markers)."""
    header = (
        "| sampling | classified as the style | in key | motif reuse | repeated 4-grams | semitone/tritone "
        "in chords | pitch range | polyphony | notes/s | distance to real |"
    )
    run = results["run"]
    seeds = " ".join(map(str, run["arguments"]["seeds"]))
    lines = [
        REPORT_START,
        "",
        f"Command: `{run['command']}` ({run['date']}, {run['wall_seconds']:.0f} s, {run['threads']} threads, "
        f"seeds {seeds}).",
        "",
        f"**Recommended default: {results['recommended']}** (lowest distance to real, mean over the styles, "
        f"among the settings whose motif reuse is at least {MOTIF_REUSE_FLOOR:g} x the real continuations' "
        "in every style).",
        "",
    ]
    for style, settings in results["settings"].items():
        real = results["real"][style]
        lines += [
            f"**{style}** ({real['n']} validation prompts from {real['pieces']} performances):",
            "",
            header,
            "|---|---|---|---|---|---|---|---|---|---|",
            "| real continuations | " + _row_cells(real["style_share"], real["stats"]) + " 0 |",
        ]
        for key, entry in settings.items():
            lines.append(
                f"| {key} | "
                + _row_cells(entry["style_share"], entry["stats"])
                + f" {_cell(entry['distance'])} |"
            )
        lines.append("")
    lines.append(REPORT_END)
    return "\n".join(lines)


def _row_cells(share: float, stats: dict[str, float]) -> str:
    return (
        f"{100 * share:.1f}% | {_cell(stats['in_key_share'])} | {_cell(stats['motif_reuse'])} | "
        f"{_cell(stats['repeated_4grams'])} | {_cell(stats['dissonant_chord_pairs'])} | "
        f"{_cell(stats['pitch_range'], 1)} | {_cell(stats['polyphony'], 2)} | "
        f"{_cell(stats['notes_per_second'], 2)} |"
    )


def write_sweep(path: str | Path, results: dict[str, Any]) -> list[Path]:
    """Writes the block into `path` (replacing an earlier block, keeping the rest) and the JSON beside it."""
    return write_block_and_json(path, render_sweep(results), results, "# Default sampling\n\n")


def write_block_and_json(
    path: str | Path,
    block: str,
    results: Any,
    new_file_text: str,
    markers: tuple[str, str] = (REPORT_START, REPORT_END),
) -> list[Path]:
    """Writes `block` (which starts and ends with `markers`) into `path`, replacing an earlier block and
    keeping the rest (a missing file starts as `new_file_text`), and `results` as JSON beside it."""
    start, end = markers
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else new_file_text
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)
    json_path = path.with_suffix(".json")
    json_path.write_text(json.dumps(results, indent=2, default=float) + "\n")
    return [path, json_path]


def main(argv: list[str] | None = None) -> int:
    """Command line; returns the exit status."""
    from .__main__ import run_study

    return run_study(
        "sampling_sweep",
        SamplingSweepArguments,
        "Choose the default sampling (temperature, top-p, motif memory) on the styles' "
        "VALIDATION prompts: musical statistics and style share of the style models' continuations per "
        "setting, beside the real continuations.",
        {"output": "docs/sampling.md"},
        lambda args, grid, command: write_sweep(args.output, run_sampling_sweep(args, grid, command)),
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
