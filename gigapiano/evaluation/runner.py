"""The style evaluation end to end; returns every number as a JSON-able dict (the report renders it).

Order of work: check that every model folder exists (fail before anything slow); build every style's
performances with the composition-safe split and check that no held-out composition is in any training data;
fit the style classifier on the TRAIN performances and score it on TEST windows; cut the prompts from the
TEST performances; load one model at a time to score it on VALIDATION windows and to continue the prompts
(the base model: every style's prompts; a style model: its own style's); fit the n-gram baselines on the
training performances of each model and score them on the same windows; classify and measure everything;
draw the gallery.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gigapiano.training.records import git_commit, library_versions

from .analysis import REAL_ROW, done_when, hit_table, hits_by_seed, stats_table, validation_table
from .arguments import GigaPianoEvaluationArguments
from .classifier import LabelledWindows, StyleClassifier, score_classifier, train_style_classifier
from .continuations import Continuation, SamplingSetup, continue_prompts
from .data import EvaluationData, check, load_evaluation_data
from .memorization import CopyIndex
from .models import BASE_NAME, check_model_folders, load_evaluation_model
from .musicstats import COPY_STAT, STAT_NAMES, continuation_stats
from .ngram import NoteNgram
from .plots import save_gallery
from .prompts import EvaluationPrompt, prompts_from_test_pieces
from .sequence_classifier import DEFAULT_EPOCHS, DEFAULT_STRIDE_NOTES, train_sequence_classifier
from .validation import ScoredWindows, model_window_losses

logger = logging.getLogger(__name__)


def fit_classifier(args: GigaPianoEvaluationArguments, data: EvaluationData) -> tuple[StyleClassifier, dict]:
    """The classifier on continuation-length windows of the TRAIN performances, scored on TEST ones."""
    notes = args.new_notes
    train = LabelledWindows.from_pieces(
        data.split("train"), notes, max(notes // 2, 1), args.classifier_train_windows
    )
    classifier = train_style_classifier(train, seed=args.classifier_seed)
    test = LabelledWindows.from_pieces(data.split("test"), notes, None, args.classifier_test_windows)
    scores = score_classifier(classifier, test, resamples=args.bootstrap_resamples, seed=args.bootstrap_seed)
    scores["train_windows"] = {style: train.styles.count(style) for style in classifier.styles}
    return classifier, scores


def fit_second_opinion(
    args: GigaPianoEvaluationArguments,
    data: EvaluationData,
    *,
    stride_notes: int = DEFAULT_STRIDE_NOTES,
    epochs: int = DEFAULT_EPOCHS,
    seed: int | None = None,
) -> tuple[Any, dict]:
    """The sequence network (`sequence_classifier`) on TRAIN windows starting every `stride_notes` notes, its
    epoch chosen on VALIDATION windows, scored on the same TEST windows as the forest (`seed`: default the
    forest's)."""
    notes = args.new_notes
    train = LabelledWindows.from_pieces(data.split("train"), notes, stride_notes, None)
    validation = LabelledWindows.from_pieces(
        data.split("validation"), notes, None, args.classifier_test_windows
    )
    network = train_sequence_classifier(
        train,
        validation,
        epochs=epochs,
        seed=args.classifier_seed if seed is None else seed,
        progress=args.progress,
    )
    test = LabelledWindows.from_pieces(data.split("test"), notes, None, args.classifier_test_windows)
    scores = score_classifier(network, test, resamples=args.bootstrap_resamples, seed=args.bootstrap_seed)
    scores["train_windows"] = {style: train.styles.count(style) for style in network.styles}
    scores["history"], scores["best_epoch"] = network.history, network.best_epoch
    return network, scores


class _Windows:
    """Validation windows per (style, window length), built once and shared by models and n-grams.

    A style whose validation performances hold no whole window is scored on its test performances instead
    (recorded in `split_used`); both are held out from every model.
    """

    def __init__(self, data: EvaluationData, per_piece: int) -> None:
        self.data, self.per_piece = data, per_piece
        self.built: dict[tuple[str, int], ScoredWindows] = {}
        self.split_used: dict[str, str] = {}

    def get(self, style: str, tokens: int) -> ScoredWindows:
        if (style, tokens) not in self.built:
            try:
                pieces = self.data.styles[style]["validation"]
                self.built[style, tokens] = ScoredWindows.from_pieces(pieces, tokens, self.per_piece)
                self.split_used[style] = "validation"
            except ValueError:
                logger.warning(
                    "%s: no validation window of %d tokens; scoring its test performances.", style, tokens
                )
                pieces = self.data.styles[style]["test"]
                self.built[style, tokens] = ScoredWindows.from_pieces(pieces, tokens, self.per_piece)
                self.split_used[style] = "test"
        return self.built[style, tokens]


def _entry(windows: ScoredWindows, nats: np.ndarray, tokens: np.ndarray) -> dict[str, Any]:
    return {"nats": nats.tolist(), "tokens": tokens.tolist(), "pieces": list(windows.pieces)}


def run_models(
    args: GigaPianoEvaluationArguments,
    folders: dict[str, Path],
    windows: _Windows,
    prompts: Sequence[EvaluationPrompt],
    model_timings: dict[str, dict[str, float]],
) -> tuple[dict, dict[str, list[Continuation]], dict[str, int]]:
    """Validation losses and continuations, one model at a time (seconds of each go into `model_timings`).

    Returns:
        `(losses, continuations, contexts)`: row -> style -> per-window entry; row -> continuations (with
        `prompt_index` into `prompts`); row -> context length.
    """
    setup = SamplingSetup.from_arguments(args)
    losses: dict[str, dict] = {}
    continuations: dict[str, list[Continuation]] = {}
    contexts: dict[str, int] = {}
    for name, folder in folders.items():
        started = time.time()
        timings = {}
        model = load_evaluation_model(folder, args.device)
        contexts[name] = context = int(model.config.max_position_embeddings)
        scored = list(args.styles) if name == BASE_NAME else [name]
        losses[name] = {}
        for style in scored:
            chosen = windows.get(style, context)
            nats, tokens = model_window_losses(
                model, chosen.windows, args.eval_batch_size, args.progress, f"{name} on {style} validation"
            )
            losses[name][style] = _entry(chosen, nats, tokens)
        timings["validation"] = time.time() - started
        indices = [i for i, p in enumerate(prompts) if name == BASE_NAME or p.style == name]
        generated = continue_prompts(
            model, [prompts[i].ids for i in indices], setup, args.progress, f"{name} continuations"
        )
        for item in generated:
            item.prompt_index = indices[item.prompt_index]
        continuations[name] = generated
        timings["generation"] = time.time() - started - timings["validation"]
        model_timings[name] = {phase: round(seconds, 1) for phase, seconds in timings.items()}
        logger.info(
            "%s: %d windows scored, %d continuations in %.0f s.",
            name,
            sum(len(e["pieces"]) for e in losses[name].values()),
            len(generated),
            time.time() - started,
        )
        del model
        gc.collect()
    return losses, continuations, contexts


def ngram_losses(
    args: GigaPianoEvaluationArguments, data: EvaluationData, windows: _Windows, contexts: dict[str, int]
) -> dict[str, dict]:
    """The n-gram baselines on the windows the models were scored on.

    `ngram-base` is trained on the base style's train performances (the base model's data); `ngram-<style>`
    on the style's train performances mixed with the base n-gram (the style model's data: base + style). Both
    fit their weights on held-out training compositions.
    """
    result: dict[str, dict] = {"ngram-base": {}}
    base_names = {name for name, _ in data.base_train}
    base_models: dict[int, NoteNgram] = {}
    for tokens in sorted({contexts[BASE_NAME], *(contexts[s] for s in args.styles)}):
        base_models[tokens] = NoteNgram.fit(
            [ids for _, ids in data.base_train],
            groups=[data.groups.get(name, name) for name, _ in data.base_train],
            window_tokens=tokens,
            k=args.ngram_k,
        )
    for style in args.styles:
        chosen = windows.get(style, contexts[BASE_NAME])
        nats, counts = base_models[contexts[BASE_NAME]].window_losses(chosen.windows)
        result["ngram-base"][style] = _entry(chosen, nats, counts)
        tokens = contexts[style]
        train = data.styles[style]["train"]
        holds = {name for name, _ in train} <= base_names
        if not holds:
            logger.warning(
                "%s's training performances are not all in the base data; no held-out subtraction.", style
            )
        model = NoteNgram.fit(
            [ids for _, ids in train],
            groups=[data.groups.get(name, name) for name, _ in train],
            window_tokens=tokens,
            background=base_models[tokens],
            background_holds_pieces=holds,
            k=args.ngram_k,
        )
        chosen = windows.get(style, tokens)
        nats, counts = model.window_losses(chosen.windows)
        result[f"ngram-{style}"] = {style: _entry(chosen, nats, counts)}
    return result


def measure(
    args: GigaPianoEvaluationArguments,
    data: EvaluationData,
    prompts: Sequence[EvaluationPrompt],
    continuations: dict[str, list[Continuation]],
    classifier: StyleClassifier,
    second: Any = None,
) -> tuple[dict, dict, dict, dict, dict]:
    """Labels, item descriptions, statistics and well-formedness of every row (real, base, styles), and the
    `second` classifier's labels (empty without one)."""
    sequences = {REAL_ROW: [p.real_continuation for p in prompts]}
    items = {REAL_ROW: [(p.style, p.piece, (i, -1)) for i, p in enumerate(prompts)]}
    bases = {REAL_ROW: [p.ids for p in prompts]}
    for row, generated in continuations.items():
        sequences[row] = [c.ids for c in generated]
        items[row] = [
            (prompts[c.prompt_index].style, prompts[c.prompt_index].piece, (c.prompt_index, c.seed))
            for c in generated
        ]
        bases[row] = [prompts[c.prompt_index].ids for c in generated]
    index = CopyIndex(
        [ids for _, ids in data.base_train], [name for name, _ in data.base_train], args.copy_key
    )
    labels, second_labels, stats = {}, {}, {}
    for row, seqs in sequences.items():
        labels[row] = classifier.predict(seqs)
        if second is not None:
            second_labels[row] = second.predict(seqs)
        stats[row] = []
        for prompt, ids in zip(bases[row], seqs, strict=True):
            values = continuation_stats(prompt, ids)
            values[COPY_STAT] = float(index.longest_copied_run(ids).length)
            stats[row].append(values)
    well_formed = {
        row: float(np.mean([c.well_formed for c in generated])) for row, generated in continuations.items()
    }
    return labels, items, stats, well_formed, second_labels


def draw_gallery(
    args: GigaPianoEvaluationArguments,
    prompts: Sequence[EvaluationPrompt],
    continuations: dict[str, list[Continuation]],
) -> list[str]:
    """Piano rolls of the first `gallery_prompts` prompts of each style (first seed): real, base, style."""
    output, paths = Path(args.output), []
    seed = args.seeds[0]
    for style in args.styles:
        chosen = [i for i, p in enumerate(prompts) if p.style == style][: args.gallery_prompts]
        for number, index in enumerate(chosen):
            found = {
                row: next(c.ids for c in continuations[row] if c.prompt_index == index and c.seed == seed)
                for row in (BASE_NAME, style)
            }
            suffix = f"_{number + 1}" if args.gallery_prompts > 1 else ""
            path = output.with_name(f"{output.stem}_gallery_{style}{suffix}.png")
            path.parent.mkdir(parents=True, exist_ok=True)
            save_gallery(
                path,
                prompts[index].ids,
                [
                    (f"real continuation: {prompts[index].name}", prompts[index].real_continuation, "real"),
                    (f"gigapiano-base (seed {seed})", found[BASE_NAME], "generated"),
                    (f"gigapiano-{style} (seed {seed})", found[style], "generated"),
                ],
            )
            paths.append(str(path))
    return paths


def describe_run(args: GigaPianoEvaluationArguments, command: str) -> dict[str, Any]:
    """What produced the numbers: command, arguments, versions, commit, device."""
    return {
        "command": command,
        "arguments": vars(args),
        "versions": library_versions(),
        "git_commit": git_commit(),
        "device": "cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu",
        "threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def _data_summary(data: EvaluationData) -> dict[str, Any]:
    summary = {style: {split: len(p) for split, p in splits.items()} for style, splits in data.styles.items()}
    summary[data.base_style] = {"train": len(data.base_train)}
    return summary


def run_classifier_only(args: GigaPianoEvaluationArguments, command: str) -> dict[str, Any]:
    """The classifier part alone (no models needed)."""
    data = load_evaluation_data(
        args.styles, args.base_style, args.maestro_dir, args.cache_dir, args.styles_dir
    )
    _, scores = fit_classifier(args, data)
    return {"run": describe_run(args, command), "styles": list(args.styles), "classifier": scores}


def run_evaluation(args: GigaPianoEvaluationArguments, command: str = "") -> dict[str, Any]:
    """Runs the whole evaluation (see the module docstring).

    Raises:
        FileNotFoundError: A model folder or the MAESTRO folder is missing.
        HeldOutLeakError: A held-out composition is in training data (unless `--on_overlap warn`).
        ValueError: Unusable settings or data (e.g. no test performance long enough for a prompt).
    """
    started, timings = time.time(), {}
    folders = check_model_folders(args.models_dir, [BASE_NAME, *args.styles])
    if args.num_threads is not None:
        torch.set_num_threads(args.num_threads)
    data = load_evaluation_data(
        args.styles, args.base_style, args.maestro_dir, args.cache_dir, args.styles_dir
    )
    held_out = check(data, folders, args.on_overlap)
    timings["data"] = time.time() - started
    classifier, classifier_scores = fit_classifier(args, data)
    second, second_scores = fit_second_opinion(args, data) if args.second_opinion else (None, None)
    timings["classifier"] = time.time() - started - sum(timings.values())
    prompts = prompts_from_test_pieces(
        data.split("test"), args.prompt_notes, args.new_notes, args.prompts_per_piece
    )
    missing = [s for s in args.styles if not any(p.style == s for p in prompts)]
    if missing:
        raise ValueError(
            f"No test performance of {missing} holds a prompt of {args.prompt_notes} + {args.new_notes} "
            "notes."
        )
    windows = _Windows(data, args.windows_per_piece)
    model_timings: dict[str, dict[str, float]] = {}
    losses, continuations, contexts = run_models(args, folders, windows, prompts, model_timings)
    timings["models"] = time.time() - started - sum(timings.values())
    losses.update(ngram_losses(args, data, windows, contexts))
    timings["ngram"] = time.time() - started - sum(timings.values())
    labels, items, stats, well_formed, second_labels = measure(
        args, data, prompts, continuations, classifier, second
    )
    timings["measure"] = time.time() - started - sum(timings.values())
    resamples, seed = args.bootstrap_resamples, args.bootstrap_seed
    validation = validation_table(losses, args.styles, resamples, seed)
    hits = hit_table(labels, items, args.styles, resamples, seed)
    statistics = stats_table(stats, items, args.styles, [*STAT_NAMES, COPY_STAT], resamples, seed)
    results: dict[str, Any] = {
        "run": describe_run(args, command),
        "styles": list(args.styles),
        "models": {name: str(folder) for name, folder in folders.items()},
        "contexts": contexts,
        "data": _data_summary(data),
        "held_out": held_out,
        "prompts": [{"name": p.name, "style": p.style, "piece": p.piece} for p in prompts],
        "classifier": classifier_scores,
        "validation": validation,
        "loss_split": windows.split_used,
        "hits": hits,
        "hits_by_seed": hits_by_seed(labels, items, args.styles),
        "statistics": statistics,
        "well_formed": well_formed,
        "checks": done_when(validation, hits, statistics),
        "raw": {"losses": losses, "labels": labels, "items": items},
    }
    if second is not None:
        results["second_opinion"] = {
            "classifier": second_scores,
            "hits": hit_table(second_labels, items, args.styles, resamples, seed),
            "hits_by_seed": hits_by_seed(second_labels, items, args.styles),
            "labels": second_labels,
        }
    results["gallery"] = draw_gallery(args, prompts, continuations) if args.gallery_prompts else []
    timings["rest"] = time.time() - started - sum(timings.values())
    results["run"]["timings_seconds"] = {name: round(value, 1) for name, value in timings.items()}
    results["run"]["timings_seconds"]["per_model"] = model_timings
    results["run"]["wall_seconds"] = round(time.time() - started, 1)
    return results


__all__ = ["run_classifier_only", "run_evaluation"]
