"""The markdown report of an evaluation run, written between markers so the hand-written method text stays.

`docs/evaluation.md` holds the method (written by people) and, between `BEGIN_MARKER` and `END_MARKER`, the
results (written by `python -m gigapiano.evaluation`). Re-running the command replaces only that block.
Every number in the block comes from the results dict; nothing is typed in.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .analysis import REAL_ROW
from .models import BASE_NAME
from .musicstats import COPY_STAT

BEGIN_MARKER = (
    "<!-- BEGIN GENERATED RESULTS: written by `python -m gigapiano.evaluation`; edits here are lost -->"
)
END_MARKER = "<!-- END GENERATED RESULTS -->"

STAT_HEADERS = {
    "notes_per_second": "notes/s",
    "pitch_range": "pitch range",
    "polyphony": "polyphony",
    "in_key_share": "in key",
    "motif_reuse": "motif reuse",
    "repeated_4grams": "repeated 4-grams",
    "dissonant_chord_pairs": "semitone/tritone in chords",
    COPY_STAT: "longest copied run",
}


def row_label(row: str) -> str:
    """Display name of a row: the model folder's name, or `real continuations`."""
    return "real continuations" if row == REAL_ROW else f"gigapiano-{row}"


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a table: fixed decimals, `n/a` for missing or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def est(estimate: dict, digits: int = 3, scale: float = 1.0, signed: bool = False) -> str:
    """`value [low, high]` of an estimate dict."""
    if estimate is None or estimate.get("pieces", 0) == 0:
        return "n/a"
    sign = "+" if signed else ""
    value, low, high = (scale * estimate[k] for k in ("value", "low", "high"))
    return f"{value:{sign}.{digits}f} [{low:{sign}.{digits}f}, {high:{sign}.{digits}f}]"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _settings(results: dict[str, Any]) -> str:
    args = results["run"]["arguments"]
    data = results["data"]
    styles = results["styles"]
    splits = "; ".join(
        f"{s}: {data[s]['train']} train / {data[s]['validation']} validation / {data[s]['test']} test"
        for s in styles
    )
    prompts = results["prompts"]
    by_style = ", ".join(f"{sum(p['style'] == s for p in prompts)} {s}" for s in styles)
    windows = ", ".join(
        f"{results['validation'][s]['windows']} {s}"
        + (
            f" (from its {split} performances)"
            if (split := results["loss_split"].get(s)) != "validation"
            else ""
        )
        for s in styles
    )
    contexts = ", ".join(f"{row_label(k)} {v}" for k, v in results["contexts"].items())
    seeds = ", ".join(map(str, args["seeds"]))
    return (
        f"Performances (pieces=all, composition-safe MAESTRO split): {splits}; the base style "
        f"`{args['base_style']}` has {data[args['base_style']]['train']} training performances. "
        f"Validation windows of the models' context ({contexts} tokens), at most "
        f"{args['windows_per_piece']} per performance: {windows}. Prompts: {len(prompts)} excerpts of "
        f"{args['prompt_notes']} notes from the test performances ({by_style}; "
        f"{args['prompts_per_piece']} per performance), each continued with {args['new_notes']} new notes "
        f"once per seed ({seeds}): the base model continues every prompt, a style model its own style's. "
        f"Sampling: temperature {args['temperature']}, top-k {args['top_k']}, top-p {args['top_p']}, "
        f"motif memory {args.get('motif_memory', 0):g} (remembering the prompt), "
        "grammar-constrained. Intervals: 95% bootstrap over performances "
        f"({args['bootstrap_resamples']} resamples, seed {args['bootstrap_seed']}); differences paired."
    )


def _timings(results: dict[str, Any]) -> str:
    timings = dict(results["run"].get("timings_seconds", {}))
    per_model = timings.pop("per_model", {})
    validation = sum(t.get("validation", 0.0) for t in per_model.values())
    generation = sum(t.get("generation", 0.0) for t in per_model.values())
    parts = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings.items())
    return f"Time: {parts} (models: validation {validation:.0f} s, generation {generation:.0f} s)."


def _checks(results: dict[str, Any]) -> str:
    lines = [
        f"- **{'PASS' if c['passed'] else 'FAIL'}** ({c['check']}) {c['style']}: {c['detail']}"
        for c in results["checks"]
    ]
    held = results["held_out"]
    lines.append(
        f"- **{'PASS' if held['passed'] else 'FAIL'}** held-out: "
        + (
            "no validation or test performance shares a composition with any training performance"
            if held["passed"]
            else f"{len(held['overlaps'])} held-out performances share a composition with training data"
        )
        + f" ({sum(held['held_out_files'].values())} held-out performances checked against "
        f"{len(held['training_files'])} training lists)"
    )
    return "\n".join(lines)


def _held_out(results: dict[str, Any]) -> str:
    held = results["held_out"]
    sources = ", ".join(f"`{source}` ({count})" for source, count in held["training_files"].items())
    text = f"Training lists checked (files): {sources}."
    if held.get("models_without_pieces_json"):
        missing = ", ".join(held["models_without_pieces_json"])
        text += f" Model folders without `pieces.json` (not checkable): {missing}."
    if held["overlaps"]:
        rows = [[o["held_out"], o["file"], o["source"], o["training_file"]] for o in held["overlaps"][:20]]
        text += "\n\n" + table(["held out", "file", "training source", "same composition"], rows)
    return text


def _headline(results: dict[str, Any]) -> str:
    rows = []
    for style in results["styles"]:
        v = results["validation"][style]
        rows.append(
            [
                style,
                est(v["ngram_base"]),
                est(v["base"]),
                est(v["ngram_style"]),
                est(v["style"]),
                est(v["style_minus_base"], signed=True),
                est(v["style_minus_ngram"], signed=True),
            ]
        )
    loss = table(
        [
            "style",
            "n-gram (base data)",
            "gigapiano-base",
            "n-gram (base + style data)",
            "style model",
            "style − base (paired)",
            "style − its n-gram (paired)",
        ],
        rows,
    )
    hits = _hits_table(results["hits"], results["styles"])
    seeds = _per_seed(results["hits_by_seed"])
    return (
        "Validation loss in nats per token (every token of a window after its first, separators included; "
        "the same windows for every column):\n\n"
        + loss
        + "\n\nShare (%) of the continuations of the style's test prompts classified as the style (real "
        f"continuations: the {results['run']['arguments']['new_notes']} real notes after each prompt):\n\n"
        + hits
        + "\n\nPer seed: "
        + "; ".join(seeds)
        + "."
    )


def _hits_table(hits: dict[str, Any], styles: Sequence[str]) -> str:
    rows = [
        [
            style,
            hits[style]["continuations"],
            est(hits[style]["real"], 1, 100),
            est(hits[style]["base"], 1, 100),
            est(hits[style]["style"], 1, 100),
            est(hits[style]["style_minus_base"], 1, 100, signed=True),
        ]
        for style in styles
    ]
    header = ["style", "continuations", "real continuations", "gigapiano-base", "style model"]
    return table([*header, "style − base (points)"], rows)


def _per_seed(hits_by_seed: dict[str, Any]) -> list[str]:
    return [
        f"{style} / {row_label(row)}: " + ", ".join(f"seed {s} {100 * v:.1f}%" for s, v in by_seed.items())
        for style, by_row in hits_by_seed.items()
        for row, by_seed in by_row.items()
    ]


def _second_opinion(results: dict[str, Any]) -> str:
    second, styles = results["second_opinion"], results["styles"]
    c = second["classifier"]
    history = ", ".join(f"{100 * h['validation']:.1f}%" for h in c["history"])
    return (
        "The sequence network of `python -m gigapiano.evaluation.classifier_check` (a convolutional network "
        "on the key-normalised, tempo-relative note sequence), fitted on "
        f"{sum(c['train_windows'].values())} overlapping windows of the same TRAIN performances, its epoch "
        f"chosen on VALIDATION windows (balanced accuracy per epoch {history}; kept epoch "
        f"{c['best_epoch']}). "
        f"On the forest's TEST windows: accuracy {est(c['accuracy'], 1, 100)}%, balanced accuracy "
        f"{est(c['balanced_accuracy'], 1, 100)}%; recall "
        + ", ".join(f"{s} {est(c['recall'][s], 1, 100)}%" for s in styles)
        + "; label change rate "
        + ", ".join(
            f"{name} {est(p['label_change_rate'], 1, 100)}%" for name, p in c["perturbations"].items()
        )
        + ". It never decides a check: the forest was chosen before any model was scored, and it stays the "
        "measure. Share (%) of the same continuations that the network assigns to the style:\n\n"
        + _hits_table(second["hits"], styles)
        + "\n\nPer seed: "
        + "; ".join(_per_seed(second["hits_by_seed"]))
        + "."
    )


def _classifier(results: dict[str, Any]) -> str:
    c = results["classifier"]
    styles = results["styles"]
    train = ", ".join(f"{c['train_windows'][s]} {s}" for s in styles)
    counts = ", ".join(f"{c['counts'][s]} {s}" for s in styles)
    text = (
        f"Fitted on {sum(c['train_windows'].values())} half-overlapping windows of {c['window_notes']} notes "
        f"from the TRAIN performances ({train}); scored on {c['windows']} non-overlapping windows of the "
        f"{c['pieces']} TEST performances ({counts}): accuracy **{est(c['accuracy'], 1, 100)}%**, "
        "balanced accuracy "
        f"{est(c['balanced_accuracy'], 1, 100)}%; recall "
        + ", ".join(f"{s} {est(c['recall'][s], 1, 100)}%" for s in styles)
        + ".\n\n"
    )
    text += table(
        ["true \\ predicted", *styles], [[s, *row] for s, row in zip(styles, c["confusion"], strict=True)]
    )
    rows = [
        [name, f"{100 * p['accuracy']:.1f}%", est(p["label_change_rate"], 1, 100)]
        for name, p in c["perturbations"].items()
    ]
    text += (
        "\n\nRobustness on the same test windows (label change rate = share of windows whose predicted style "
    )
    text += "changes):\n\n" + table(["perturbation", "accuracy", "label change rate (%)"], rows)
    return text


def _statistics(results: dict[str, Any]) -> str:
    parts = []
    stats = results["statistics"]
    for style in results["styles"]:
        rows = []
        for row in (REAL_ROW, BASE_NAME, style):
            entry = stats[style][row]
            cells = [row_label(row), entry["continuations"]]
            cells += [est(entry[name], 2) for name in STAT_HEADERS]
            cells.append(entry["outside_piano_total"])
            rows.append(cells)
        header = ["continuations of", "n", *STAT_HEADERS.values(), "notes outside 21..108"]
        parts.append(f"**{style}** prompts:\n\n" + table(header, rows))
    return "\n\n".join(parts)


def _gallery(results: dict[str, Any]) -> str:
    if not results.get("gallery"):
        return "No gallery (`--gallery_prompts 0`)."
    images = [f"![{Path(path).stem}]({Path(path).name})" for path in results["gallery"]]
    return (
        "Blue: the prompt; orange: the continuation. Top: the real continuation; middle: gigapiano-base; "
        "bottom: the style model (first seed). The images lie next to this report.\n\n" + "\n\n".join(images)
    )


def render_results(results: dict[str, Any]) -> str:
    """The generated block of the report (markers included).

    Args:
        results: The output of `run_evaluation`.

    Returns:
        Markdown text.
    """
    run = results["run"]
    well_formed = ", ".join(f"{row_label(r)} {100 * v:.1f}%" for r, v in results["well_formed"].items())
    sections = [
        BEGIN_MARKER,
        "## Results",
        f"Produced on {run['date']} (git commit `{run['git_commit'] or 'unknown'}`, {run['device']}, "
        f"{run['threads']} thread(s), {run.get('wall_seconds', 'n/a')} s) by:",
        f"```bash\n{run['command']}\n```",
        _timings(results),
        _settings(results),
        "### Done-when checks",
        _checks(results),
        "### Validation loss and style of the continuations",
        _headline(results),
        "### Held-out check",
        _held_out(results),
        "### Style classifier",
        _classifier(results),
        *(
            ["### Second opinion: a sequence network", _second_opinion(results)]
            if results.get("second_opinion")
            else []
        ),
        "### Musical statistics of the continuations",
        "Means per continuation with 95% intervals; a continuation without chords has no semitone/tritone "
        "share and is left out of that column. Longest copied run: notes in a row (equal in "
        f"{run['arguments']['copy_key'].replace('_', ' and ')}) found in the base style's training "
        "performances.\n\n" + _statistics(results),
        f"Well-formed continuations: {well_formed}.",
        "### Gallery",
        _gallery(results),
        END_MARKER,
    ]
    return "\n\n".join(sections) + "\n"


def write_report(path: str | Path, block: str, title: str = "# Style evaluation") -> Path:
    """Writes `block` into the report at `path`, replacing an earlier generated block if there is one.

    Args:
        path: The markdown file; created (with `title`) when missing.
        block: The output of `render_results`.
        title: First line of a new file.

    Returns:
        The path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file():
        path.write_text(f"{title}\n\n{block}", encoding="utf-8")
        return path
    text = path.read_text(encoding="utf-8")
    begin, end = text.find(BEGIN_MARKER), text.find(END_MARKER)
    if begin >= 0 and end > begin:
        text = text[:begin] + block.rstrip("\n") + text[end + len(END_MARKER) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text, encoding="utf-8")
    return path


def _finite(value: Any) -> Any:
    """The value with every NaN float replaced by None (JSON has no NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def write_results_json(path: str | Path, results: dict[str, Any]) -> Path:
    """Every number of the run as JSON (the report shows a selection)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(results), indent=1, default=str) + "\n", encoding="utf-8")
    return path


__all__ = ["BEGIN_MARKER", "END_MARKER", "render_results", "write_report", "write_results_json"]
