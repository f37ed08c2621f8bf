"""The markdown report of an evaluation run, written between markers so the hand-written method text stays.

`docs/evaluation.md` holds the method (written by people) and, between `BEGIN_MARKER` and `END_MARKER`, the
results (written by `python -m gigapiano.evaluation`). Re-running the command replaces only that block.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .analysis import REAL_ROW
from .features import distance_feature_names
from .models import BASE_NAME

BEGIN_MARKER = (
    "<!-- BEGIN GENERATED RESULTS: written by `python -m gigapiano.evaluation`; edits here are lost -->"
)
END_MARKER = "<!-- END GENERATED RESULTS -->"


def row_label(row: str) -> str:
    """Display name of a table row: the model folder's name, or `real continuations`."""
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


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _settings(results: dict[str, Any]) -> str:
    args = results["run"]["arguments"]
    prompts = results["prompts"]
    from_tests = [p for p in prompts if p["style"] is not None]
    by_style = ", ".join(f"{sum(p['style'] == s for p in from_tests)} {s}" for s in results["styles"])
    files = [p["name"].removeprefix("file: ") for p in prompts if p["style"] is None]
    extra = f", plus {', '.join(files)}" if files else ""
    last_seed = args["seed"] + len(prompts) - 1
    return (
        f"{len(prompts)} prompts of {args['prompt_notes']} notes ({len(from_tests)} excerpts of the test "
        f"pieces: {by_style}{extra}); every model continues every prompt {args['samples']} times with "
        f"{args['new_notes']} new notes (temperature {args['temperature']}, top-k {args['top_k']}, top-p "
        f"{args['top_p']}; prompt i uses seed {args['seed']} + i, seeds {args['seed']}..{last_seed})."
    )


def _verdicts(results: dict[str, Any]) -> str:
    rows = []
    for style, verdict in results["verdicts"].items():
        rows.append(
            [
                style,
                fmt(verdict["base_loss"]),
                fmt(verdict["style_loss"]),
                fmt(verdict["loss_lower"]),
                fmt(verdict["base_hits"]),
                fmt(verdict["style_hits"]),
                fmt(verdict["hits_higher"]),
                fmt(verdict["passed"]),
            ]
        )
    header = [
        "style",
        "val. loss, base",
        "val. loss, style model",
        "lower",
        "classified as the style: base",
        "style model",
        "higher",
        "passed",
    ]
    failed = [style for style, verdict in results["verdicts"].items() if not verdict["passed"]]
    summary = (
        "Every style passes both checks."
        if not failed
        else f"**Not passed: {', '.join(failed)}** (see the tables below for where it falls short)."
    )
    return table(header, rows) + "\n\n" + summary


def _classifier(results: dict[str, Any]) -> str:
    styles = results["styles"]
    parts = []
    for scores in results["classifier"]:
        notes = scores["window_notes"]
        counts = ", ".join(f"{scores['counts'][s]} {s}" for s in styles)
        parts.append(
            f"- windows of {notes} notes ({4 * notes} tokens): accuracy **{fmt(scores['accuracy'])}**, "
            f"balanced accuracy {fmt(scores['balanced_accuracy'])} ({counts} test windows)"
        )
    first = results["classifier"][0]
    confusion = table(
        [f"true \\ predicted ({first['window_notes']} notes)", *styles],
        [[style, *row] for style, row in zip(styles, first["confusion"], strict=True)],
    )
    return "\n".join(parts) + "\n\n" + confusion


def _validation(results: dict[str, Any]) -> str:
    styles = results["styles"]
    rows = []
    for model, by_style in results["validation"].items():
        cells = [
            f"{fmt(m['loss'])} / {fmt(m['accuracy'])} / {fmt(m['perplexity'], 2)}"
            for m in (by_style[s] for s in styles)
        ]
        rows.append([row_label(model), *cells])
    header = ["model", *(f"{s}: loss / acc. / ppl." for s in styles)]
    return table(header, rows)


def _hits(results: dict[str, Any], plot: str | None) -> str:
    styles = results["styles"]
    rows = [[row_label(row), *(fmt(rates[s]) for s in styles)] for row, rates in results["hits"].items()]
    text = table(["generated by \\ classified as", *styles], rows)
    by_prompt = results["hits_by_prompt_style"]
    groups = list(by_prompt.get(BASE_NAME, {}))
    detail = []
    for style in styles:
        cells = []
        for group in groups:
            base = by_prompt[BASE_NAME].get(group, {}).get(style)
            own = by_prompt[style].get(group, {}).get(style)
            cells.append(f"{fmt(base)} → {fmt(own)}")
        detail.append([style, *cells])
    text += (
        "\n\nShare of continuations classified as the style, by the prompt's origin (base model → style "
        "model; `file` = extra prompt files):\n\n"
        + table(["style", *(f"{g} prompts" for g in groups)], detail)
    )
    real = by_prompt.get(REAL_ROW, {})
    if real:
        own = ", ".join(f"{style} {fmt(real.get(style, {}).get(style))}" for style in styles)
        text += f"\n\nReal continuations classified as the style of their own piece: {own}."
    if plot:
        text = f"![Style-hit matrix]({plot})\n\n" + text
    return text


def _distances(results: dict[str, Any], plot: str | None) -> str:
    styles = results["styles"]
    distances = results["distances"]
    rows = [
        [row_label(row), *(fmt(by_style.get(s, {}).get("overlap_mean")) for s in styles)]
        for row, by_style in distances.items()
    ]
    text = (
        "Mean overlapping area over the features (1 = same distribution as the style's real test music):\n\n"
    )
    text += table(["continuations of \\ compared with", *styles], rows)
    header, detail = ["feature"], []
    for style in styles:
        header += [f"{style}: base", f"{style}: style model", f"{style}: real"]
    for feature in distance_feature_names():
        cells = [feature]
        for style in styles:
            for row in (BASE_NAME, style, REAL_ROW):
                cells.append(fmt(distances.get(row, {}).get(style, {}).get(f"{feature}_overlap")))
        detail.append(cells)
    text += "\n\nPer feature, each style's real test music against the base model, the style's own model and "
    text += "the real continuations:\n\n" + table(header, detail)
    if plot:
        text += f"\n\n![Per-feature overlap with each style]({plot})"
    return text


def _well_formed(results: dict[str, Any]) -> str:
    rows = [[row_label(model), fmt(rate)] for model, rate in results["well_formed"].items()]
    return table(["model", "well-formed continuations"], rows)


def _memorization(results: dict[str, Any]) -> str:
    rows = [
        [row_label(row), fmt(m["mean"], 1), fmt(m["median"], 1), fmt(m["max"]), m["max_source"] or "n/a"]
        for row, m in results["memorization"].items()
    ]
    key = results["run"]["arguments"]["copy_key"].replace("_", ", ")
    text = (
        f"Longest run of consecutive notes (equal in {key}) that a continuation shares with a training piece "
        "of its model's style (the base model: all three styles; real continuations: their own style), in "
        "notes:\n\n"
    )
    return text + table(["continuations of", "mean", "median", "max", "longest run found in"], rows)


def render_results(results: dict[str, Any], plots: dict[str, str] | None = None) -> str:
    """The generated block of the report (markers included).

    Args:
        results: The output of `run_evaluation`.
        plots: `hits` and `overlap` plot paths relative to the report (missing keys: no image).

    Returns:
        Markdown text.
    """
    plots = plots or {}
    run = results["run"]
    sections = [
        BEGIN_MARKER,
        "## Results",
        f"Produced on {run['date']} (git commit `{run['git_commit'] or 'unknown'}`, {run['device']}, "
        f"{run.get('wall_seconds', 'n/a')} s) by:",
        f"```bash\n{run['command']}\n```",
        _settings(results),
        "### Does style fine-tuning work?",
        _verdicts(results),
        "### Style classifier",
        _classifier(results),
        "### Validation loss, accuracy and perplexity",
        _validation(results),
        "### Style-hit matrix",
        _hits(results, plots.get("hits")),
        "### Feature distances",
        _distances(results, plots.get("overlap")),
        "### Well-formedness of the raw generated ids",
        _well_formed(results),
        "### Memorisation",
        _memorization(results),
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


def write_results_json(path: str | Path, results: dict[str, Any]) -> Path:
    """Every number of the run as JSON (the report shows a selection)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")
    return path


__all__ = ["BEGIN_MARKER", "END_MARKER", "render_results", "write_report", "write_results_json"]
