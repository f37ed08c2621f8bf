"""The style evaluation end to end: data, classifier, prompts, generation, numbers. Returns a JSON-able dict.

Order of work: check that every model folder exists (fail before anything slow), build each style's pieces
(split by piece with the training split seed), fit or load the classifier on the TRAIN pieces, cut the prompts
from the TEST pieces, then load one model at a time to score its validation loss on every style's VALIDATION
pieces and to continue every prompt, and finally classify, measure and check for copying.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from gigapiano.data import build_style_dataset, default_cache_dir
from gigapiano.training.records import git_commit, library_versions
from tokenization import GigaPianoTokenizer

from .analysis import REAL_ROW, classify, copy_summary, feature_distances, hit_rates, hits_by_group, verdicts
from .arguments import GigaPianoEvaluationArguments
from .classifier import StyleClassifier, load_or_train_classifier, note_windows
from .continuations import SamplingSetup, continue_prompts
from .features import feature_table
from .memorization import CopyIndex
from .models import BASE_NAME, check_model_folders, load_evaluation_model
from .prompts import EvaluationPrompt, default_extra_prompts, file_prompts, prompts_from_test_pieces
from .validation import validation_metrics

logger = logging.getLogger(__name__)

Pieces = dict[str, dict[str, list[tuple[str, list[int]]]]]


def load_pieces(args: GigaPianoEvaluationArguments) -> Pieces:
    """Style -> split -> `(midi_filename, ids)` of its pieces, split as in training."""
    pieces: Pieces = {}
    for style in args.styles:
        data = build_style_dataset(
            style,
            maestro_dir=args.maestro_dir,
            cache_dir=args.cache_dir,
            seed=args.split_seed,
            styles_dir=args.styles_dir,
        )
        pieces[style] = {
            split: list(zip(data[split]["midi_filename"], map(list, data[split]["input_ids"]), strict=True))
            for split in data
        }
        logger.info("%s: %s pieces.", style, ", ".join(f"{len(v)} {k}" for k, v in pieces[style].items()))
    return pieces


def ids_of(pieces: Pieces, split: str) -> dict[str, list[list[int]]]:
    """Style -> token ids of its pieces in `split`."""
    return {style: [ids for _, ids in splits[split]] for style, splits in pieces.items()}


def fit_classifier(args: GigaPianoEvaluationArguments, pieces: Pieces) -> tuple[StyleClassifier, list[dict]]:
    """The style classifier (cached or trained) and its scores on test windows of both lengths."""
    window_notes = sorted({args.classifier_window_notes, args.new_notes})
    cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    classifier = load_or_train_classifier(
        ids_of(pieces, "train"),
        window_notes,
        args.classifier_seed,
        cache / "style-classifier",
        args.retrain_classifier,
    )
    scores = []
    for notes in dict.fromkeys([args.classifier_window_notes, args.new_notes]):
        windows = {style: note_windows(ids, notes) for style, ids in ids_of(pieces, "test").items()}
        scores.append(vars(classifier.score(windows, notes)))
    return classifier, scores


def make_prompts(args: GigaPianoEvaluationArguments, pieces: Pieces) -> list[EvaluationPrompt]:
    """Excerpts of the test pieces, then the extra prompt files."""
    test = {style: splits["test"] for style, splits in pieces.items()}
    prompts = prompts_from_test_pieces(test, args.prompt_notes, args.new_notes, args.prompts_per_piece)
    extra: list[str | Path] = []
    for entry in args.extra_prompts:
        if entry == "auto":
            extra += default_extra_prompts()
        elif entry != "none":
            extra.append(entry)
    prompts += file_prompts(extra, GigaPianoTokenizer(), args.prompt_notes)
    logger.info("%d prompts (%d from test pieces).", len(prompts), sum(p.style is not None for p in prompts))
    return prompts


def copy_indexes(args: GigaPianoEvaluationArguments, pieces: Pieces) -> dict[str, CopyIndex]:
    """A training-piece index per style, and for the base model one over all styles' training pieces."""
    indexes = {}
    everything: list[tuple[str, list[int]]] = []
    for style, splits in pieces.items():
        names, ids = zip(*splits["train"], strict=True) if splits["train"] else ((), ())
        indexes[style] = CopyIndex(ids, [f"{style}: {name}" for name in names], key=args.copy_key)
        everything += [(f"{style}: {name}", piece) for name, piece in splits["train"]]
    indexes[BASE_NAME] = CopyIndex(
        [ids for _, ids in everything], [name for name, _ in everything], args.copy_key
    )
    return indexes


def run_models(
    args: GigaPianoEvaluationArguments,
    folders: dict[str, Path],
    pieces: Pieces,
    prompts: Sequence[EvaluationPrompt],
) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, list]]:
    """Validation metrics on every style and continuations of every prompt, one model at a time."""
    setup = SamplingSetup(args.new_notes, args.samples, args.seed, args.temperature, args.top_k, args.top_p)
    validation_ids = ids_of(pieces, "validation")
    validation, continuations = {}, {}
    for name, folder in folders.items():
        started = time.time()
        model = load_evaluation_model(folder, args.device)
        validation[name] = {
            style: validation_metrics(
                model,
                ids,
                args.eval_batch_size,
                args.max_eval_windows,
                args.progress,
                f"{name} on {style} validation",
            )
            for style, ids in validation_ids.items()
        }
        continuations[name] = continue_prompts(model, prompts, setup, args.progress, f"{name} continuations")
        logger.info("%s: scored and generated in %.0f s.", name, time.time() - started)
        del model
    return validation, continuations


def analyse(
    args: GigaPianoEvaluationArguments,
    pieces: Pieces,
    prompts: Sequence[EvaluationPrompt],
    classifier: StyleClassifier,
    continuations: dict[str, list],
) -> dict[str, Any]:
    """Hits, distances, well-formedness and copying of every row (the models and the real continuations)."""
    styles = list(args.styles)
    test_windows = {style: note_windows(ids, args.new_notes) for style, ids in ids_of(pieces, "test").items()}
    references = {
        style: feature_table(windows) for style, windows in test_windows.items() if len(windows) >= 2
    }
    indexes = copy_indexes(args, pieces)
    real = [(prompt, prompt.real_continuation) for prompt in prompts if prompt.real_continuation]
    rows: dict[str, tuple[list[list[int]], list[str], list[CopyIndex]]] = {
        REAL_ROW: (
            [ids for _, ids in real],
            [prompt.style for prompt, _ in real],
            [indexes[prompt.style] for prompt, _ in real],
        )
    }
    for name, generated in continuations.items():
        groups = [prompts[c.prompt_index].style or "file" for c in generated]
        rows[name] = ([c.ids for c in generated], groups, [indexes[name]] * len(generated))
    result: dict[str, Any] = {"hits": {}, "hits_by_prompt_style": {}, "distances": {}, "memorization": {}}
    for row, (sequences, groups, row_indexes) in rows.items():
        labels = classify(classifier, sequences)
        result["hits"][row] = hit_rates(labels, styles)
        result["hits_by_prompt_style"][row] = hits_by_group(labels, groups, styles)
        result["distances"][row] = feature_distances(sequences, references) if sequences else {}
        result["memorization"][row] = copy_summary(row_indexes, sequences)
    result["well_formed"] = {
        name: sum(c.well_formed for c in generated) / max(len(generated), 1)
        for name, generated in continuations.items()
    }
    result["reference_windows"] = {style: len(windows) for style, windows in test_windows.items()}
    return result


def describe_run(args: GigaPianoEvaluationArguments, command: str) -> dict[str, Any]:
    """What produced the numbers: command, arguments, versions, commit, device."""
    return {
        "command": command,
        "arguments": vars(args),
        "versions": library_versions(),
        "git_commit": git_commit(),
        "device": "cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu",
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def run_classifier_only(args: GigaPianoEvaluationArguments, command: str) -> dict[str, Any]:
    """The classifier part alone (no models needed)."""
    pieces = load_pieces(args)
    _, scores = fit_classifier(args, pieces)
    return {"run": describe_run(args, command), "styles": list(args.styles), "classifier": scores}


def run_evaluation(args: GigaPianoEvaluationArguments, command: str = "") -> dict[str, Any]:
    """Runs the whole evaluation (see the module docstring).

    Args:
        args: The arguments.
        command: The command line, recorded in the report.

    Returns:
        Every number of the report, JSON-serialisable.

    Raises:
        FileNotFoundError: A model folder, the MAESTRO folder or a prompt file is missing.
        ValueError: Unusable settings or data (e.g. no test piece long enough for a prompt).
    """
    started = time.time()
    folders = check_model_folders(args.models_dir, [BASE_NAME, *args.styles])
    if args.num_threads is not None:
        torch.set_num_threads(args.num_threads)
    pieces = load_pieces(args)
    classifier, scores = fit_classifier(args, pieces)
    prompts = make_prompts(args, pieces)
    if not prompts:
        raise ValueError(f"No prompts: no test piece has more than --prompt_notes={args.prompt_notes} notes.")
    validation, continuations = run_models(args, folders, pieces, prompts)
    results: dict[str, Any] = {
        "run": describe_run(args, command),
        "styles": list(args.styles),
        "models": {name: str(folder) for name, folder in folders.items()},
        "prompts": [{"name": p.name, "style": p.style} for p in prompts],
        "classifier": scores,
        "validation": validation,
        **analyse(args, pieces, prompts, classifier, continuations),
    }
    results["verdicts"] = verdicts(validation, results["hits"], args.styles, BASE_NAME)
    results["run"]["wall_seconds"] = round(time.time() - started, 1)
    return results


__all__ = ["run_classifier_only", "run_evaluation"]
