"""Command line of the style evaluation: `python -m gigapiano.evaluation --help`.

Prints the written paths (report, JSON, gallery) on stdout; progress and diagnostics go to the logger on
stderr.
Any failure (a missing model folder, no MAESTRO, bad flags) is one `error: ...` line and exit status 1.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..cli import EXPECTED_ERRORS, OneLineErrorParser, report_failure
from .arguments import GigaPianoEvaluationArguments

logger = logging.getLogger("gigapiano.evaluation")

EPILOG = """examples:
  python -m gigapiano.evaluation --maestro_dir ../shared/maestro/maestro-v3.0.0 --models_dir models \\
      --output docs/evaluation.md --num_threads 1
  python -m gigapiano.evaluation --maestro_dir ../shared/maestro/maestro-v3.0.0 --classifier_only
"""


def parse_flags(parser: OneLineErrorParser, argv: list[str]) -> tuple | int:
    """The parsed dataclasses, or the exit status when parsing ends the run (`--help`: 0, a bad flag: 2).

    A bad flag or value is reported as one `error:` line on stderr.
    """
    try:
        return tuple(parser.parse_args_into_dataclasses(args=argv))
    except SystemExit as stop:  # --help, or argparse's own flag error
        return stop.code if isinstance(stop.code, int) else 0
    except ValueError as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2


def flag_given(argv: Sequence[str], name: str) -> bool:
    """Whether `--name` (or `--name-with-dashes`) is on the command line, with or without `=value`."""
    flags = {f"--{name}", f"--{name.replace('_', '-')}"}
    return any(arg.split("=", 1)[0] in flags for arg in argv)


def run_study(
    module: str,
    study: type,
    description: str,
    defaults: Mapping[str, Any],
    work: Callable[[GigaPianoEvaluationArguments, Any, str], list[Path]],
    argv: list[str] | None = None,
) -> int:
    """The command line of a study beside the evaluation (`python -m gigapiano.evaluation.<module>`).

    Its flags are the evaluation's plus the `study` dataclass's; evaluation flags not given take `defaults`
    (e.g. its own `--output`, named at the end of `--help`); `work(args, study_args, command)` runs it and
    returns the files written, which are printed. Errors are one line, as for the evaluation.
    """
    argv = sys.argv[1:] if argv is None else argv
    if defaults:
        changed = ", ".join(f"--{name} {value}" for name, value in defaults.items())
        description += f" Defaults that differ from the evaluation's: {changed}."
    parser = OneLineErrorParser(
        (GigaPianoEvaluationArguments, study),
        prog=f"python -m gigapiano.evaluation.{module}",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parsed = parse_flags(parser, argv)
    if isinstance(parsed, int):
        return parsed
    args, own = parsed
    for name, value in defaults.items():
        if not flag_given(argv, name):
            setattr(args, name, value)
    setup_logging(args.log_level)
    command = shlex.join(["python", "-m", f"gigapiano.evaluation.{module}", *argv])
    return run_and_print_paths(lambda: work(args, own, command))


def build_parser() -> OneLineErrorParser:
    """The evaluation's flags."""
    return OneLineErrorParser(
        GigaPianoEvaluationArguments,
        prog="python -m gigapiano.evaluation",
        description="Evaluate the GIGA-Piano base and style models on composition-held-out MAESTRO "
        "performances: validation loss beside a music n-gram baseline, the share of continuations a key- and "
        "tempo-invariant classifier assigns to the style, musical statistics, with 95% piece-bootstrap "
        "intervals over several seeds, written as a markdown report with a piano-roll gallery.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def setup_logging(level: str) -> None:
    """One logging setup for the run; the libraries' own chatter is kept to warnings."""
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # weight-loading bars; the evaluation shows its own progress
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    # One line per generated prompt would drown the progress bars; the evaluation logs its own progress.
    logging.getLogger("gigapiano.generation").setLevel(max(logging.WARNING, logging.getLogger().level))


def write_outputs(results: dict, output: str | Path) -> list[Path]:
    """The report (generated block) and its JSON; the gallery PNGs were written by the run."""
    from .report import render_results, write_report, write_results_json

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    paths = [
        write_report(output, render_results(results)),
        write_results_json(output.with_suffix(".json"), results),
    ]
    return paths + [Path(path) for path in results.get("gallery", [])]


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    parsed = parse_flags(build_parser(), argv)
    if isinstance(parsed, int):
        return parsed
    (args,) = parsed
    setup_logging(args.log_level)
    command = shlex.join(["python", "-m", "gigapiano.evaluation", *argv])
    try:
        from .runner import run_classifier_only, run_evaluation

        if args.classifier_only:
            scores = run_classifier_only(args, command)["classifier"]
            changes = ", ".join(
                f"{name} {100 * p['label_change_rate']['value']:.1f}%"
                for name, p in scores["perturbations"].items()
            )
            print(
                f"test windows of {scores['window_notes']} notes: accuracy "
                f"{scores['accuracy']['value']:.3f}, balanced accuracy "
                f"{scores['balanced_accuracy']['value']:.3f} ({scores['windows']} windows); "
                f"label changes: {changes}"
            )
            return 0
    except (*EXPECTED_ERRORS, KeyboardInterrupt) as error:
        return report_failure(error, __name__)
    return run_and_print_paths(lambda: write_outputs(run_evaluation(args, command), args.output))


def run_and_print_paths(work: Callable[[], list[Path]]) -> int:
    """Runs `work` and prints the paths it wrote; an expected failure is one `error:` line (status 1)."""
    try:
        paths = work()
    except (*EXPECTED_ERRORS, KeyboardInterrupt) as error:
        return report_failure(error, "gigapiano.evaluation")
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
