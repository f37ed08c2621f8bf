"""Is the style classifier's ceiling the features' or the task's? The forest beside a sequence network.

`python -m gigapiano.evaluation.classifier_check` fits the evaluation's forest (its own windows and settings)
and the `sequence_classifier` network on the same TRAIN performances, and scores both on the VALIDATION and
TEST windows of the composition-safe split, with piece-bootstrap intervals and the same label-change checks
(transposition, tempo). No model is loaded. If the network, free to learn its own invariant features from
about four times as many windows, recognises the styles no better than the forest, the forest's recall is a
property of the task (128 notes, compositions never seen in training), not of its hand-made features.

The report goes into `docs/classifier_check.md` between its markers; every number into the JSON beside it.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .arguments import GigaPianoEvaluationArguments
from .sequence_classifier import DEFAULT_EPOCHS, DEFAULT_STRIDE_NOTES

logger = logging.getLogger(__name__)

REPORT_START = "<!-- classifier-check:start -->"
REPORT_END = "<!-- classifier-check:end -->"
COMMAND_DEFAULTS: dict[str, Any] = {"output": "docs/classifier_check.md"}


@dataclass
class ClassifierCheckArguments:
    """The sequence network's training (the data and window settings are the evaluation's own flags)."""

    epochs: int = field(
        default=DEFAULT_EPOCHS,
        metadata={"help": f"Training epochs of the network. Default: {DEFAULT_EPOCHS}."},
    )
    stride_notes: int = field(
        default=DEFAULT_STRIDE_NOTES,
        metadata={
            "help": "Notes between the starts of the network's training windows. "
            f"Default: {DEFAULT_STRIDE_NOTES}."
        },
    )
    network_seed: int = field(default=0, metadata={"help": "Network initialisation seed. Default: 0."})

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.stride_notes < 1:
            raise ValueError(
                f"--epochs and --stride_notes must be at least 1, got {self.epochs} and {self.stride_notes}."
            )


def run_classifier_check(
    args: GigaPianoEvaluationArguments, check: ClassifierCheckArguments, command: str = ""
) -> dict[str, Any]:
    """Fits both classifiers and scores them (module docstring); returns every number as a dict."""
    import torch

    from .classifier import LabelledWindows, score_classifier
    from .data import load_evaluation_data
    from .runner import describe_run, fit_classifier, fit_second_opinion

    if args.num_threads is not None:
        torch.set_num_threads(args.num_threads)
    started = time.time()
    data = load_evaluation_data(
        args.styles, args.base_style, args.maestro_dir, args.cache_dir, args.styles_dir
    )
    forest, forest_test = fit_classifier(args, data)
    network, network_test = fit_second_opinion(
        args, data, stride_notes=check.stride_notes, epochs=check.epochs, seed=check.network_seed
    )
    validation = LabelledWindows.from_pieces(
        data.split("validation"), args.new_notes, None, args.classifier_test_windows
    )
    train_windows, scores = {}, {}
    for name, model, test in (("forest", forest, forest_test), ("network", network, network_test)):
        train_windows[name] = test.pop("train_windows")
        scores[name] = {
            "validation": score_classifier(
                model, validation, resamples=args.bootstrap_resamples, seed=args.bootstrap_seed
            ),
            "test": test,
        }
    for key in ("history", "best_epoch"):
        network_test.pop(key)
    run = describe_run(args, command)
    run["arguments"] = {**run["arguments"], **vars(check)}
    run["wall_seconds"] = time.time() - started
    return {
        "run": run,
        "styles": list(args.styles),
        "train_windows": train_windows,
        "network_history": network.history,
        "network_best_epoch": network.best_epoch,
        "scores": scores,
    }


def render_classifier_check(results: dict[str, Any]) -> str:
    """The markdown block: settings, accuracy table, label-change table."""
    from .report import est, table

    run, styles = results["run"], results["styles"]
    labels = {"forest": "forest (79 features)", "network": "sequence network"}
    rows, robust = [], []
    for name, splits in results["scores"].items():
        for split, score in splits.items():
            rows.append(
                [labels[name], split, score["windows"], est(score["accuracy"], 1, 100)]
                + [est(score["balanced_accuracy"], 1, 100)]
                + [est(score["recall"][s], 1, 100) for s in styles]
            )
            if split == "test":
                robust.append(
                    [labels[name]]
                    + [est(p["label_change_rate"], 1, 100) for p in score["perturbations"].values()]
                )
    perturbations = list(next(iter(results["scores"]["forest"].values()))["perturbations"])
    train = results["train_windows"]
    history = ", ".join(
        f"{100 * h['validation']:.1f}% after epoch {h['epoch']}" for h in results["network_history"]
    )
    return "\n".join(
        [
            REPORT_START,
            "",
            f"Command: `{run['command']}` ({run['date']}, {run['wall_seconds']:.0f} s, {run['threads']} "
            f"thread(s), git `{run['git_commit']}`).",
            "",
            "Training windows (TRAIN performances): forest "
            + ", ".join(f"{n} {s}" for s, n in train["forest"].items())
            + " (half-overlapping, as in the evaluation); network "
            + ", ".join(f"{n} {s}" for s, n in train["network"].items())
            + f" (a new window every {run['arguments']['stride_notes']} notes, random tempo x0.67..x1.5). "
            f"Network: validation balanced accuracy {history}; it keeps epoch "
            f"{results['network_best_epoch']}, so its validation figure is chosen on validation and its TEST "
            "figure is the clean one.",
            "",
            "**Accuracy (%) on held-out windows** (95% bootstrap over performances):",
            "",
            table(
                ["classifier", "split", "windows", "accuracy", "balanced accuracy"]
                + [f"recall {s}" for s in styles],
                rows,
            ),
            "",
            "**Label change rate (%) on the TEST windows:**",
            "",
            table(["classifier", *perturbations], robust),
            "",
            REPORT_END,
        ]
    )


def write_classifier_check(path: str | Path, results: dict[str, Any]) -> list[Path]:
    """Writes the block into `path` (keeping the rest of the file) and the JSON beside it."""
    from .sampling_sweep import write_block_and_json

    new_file = (
        "# The style classifier's ceiling\n\nWritten by `python -m gigapiano.evaluation.classifier_check`; "
        "the reading is in [evaluation.md](evaluation.md#the-style-classifier).\n"
    )
    return write_block_and_json(
        path, render_classifier_check(results), results, new_file, (REPORT_START, REPORT_END)
    )


def main(argv: list[str] | None = None) -> int:
    """Command line; returns the exit status."""
    from .__main__ import run_study

    return run_study(
        "classifier_check",
        ClassifierCheckArguments,
        "The evaluation's style classifier (a forest on hand-made invariant features) beside a "
        "convolutional network that learns from the key-normalised, tempo-relative note sequence: both "
        "fitted on the TRAIN performances, scored on VALIDATION and TEST windows. Needs MAESTRO, no "
        "model.",
        COMMAND_DEFAULTS,
        lambda args, check, command: write_classifier_check(
            args.output, run_classifier_check(args, check, command)
        ),
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
