"""Style evaluation of GIGA-Piano models that cannot flatter them.

Held-out data are the composition-safe MAESTRO validation and test performances of each style; losses sit
beside a music-aware n-gram trained on the same performances; the style of continuations is judged by a
key- and tempo-invariant classifier; every headline figure has a 95% bootstrap interval over performances,
and differences between a style model and the base are paired. Method: `docs/evaluation.md`.

Command line: `python -m gigapiano.evaluation --help`. Library::

    from gigapiano.evaluation import NoteNgram, piece_bootstrap, style_features, train_style_classifier
"""

from .arguments import GigaPianoEvaluationArguments
from .bootstrap import Estimate, paired_bootstrap, piece_bootstrap
from .classifier import (
    LabelledWindows,
    StyleClassifier,
    note_windows,
    score_classifier,
    train_style_classifier,
)
from .continuations import Continuation, SamplingSetup, continue_prompts
from .heldout import HeldOutLeakError, check_held_out
from .invariant_features import STYLE_FEATURE_NAMES, estimate_key, scale_tempo, style_features, transpose
from .memorization import CopiedRun, CopyIndex
from .models import check_model_folders, load_evaluation_model
from .musicstats import continuation_stats
from .ngram import NgramCounts, NoteNgram
from .prompts import EvaluationPrompt, prompts_from_test_pieces
from .runner import run_classifier_only, run_evaluation

__all__ = [
    "STYLE_FEATURE_NAMES",
    "Continuation",
    "CopiedRun",
    "CopyIndex",
    "Estimate",
    "EvaluationPrompt",
    "GigaPianoEvaluationArguments",
    "HeldOutLeakError",
    "LabelledWindows",
    "NgramCounts",
    "NoteNgram",
    "SamplingSetup",
    "StyleClassifier",
    "check_held_out",
    "check_model_folders",
    "continuation_stats",
    "continue_prompts",
    "estimate_key",
    "load_evaluation_model",
    "note_windows",
    "paired_bootstrap",
    "piece_bootstrap",
    "prompts_from_test_pieces",
    "run_classifier_only",
    "run_evaluation",
    "scale_tempo",
    "score_classifier",
    "style_features",
    "train_style_classifier",
    "transpose",
]
