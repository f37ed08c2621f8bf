"""Automatic style evaluation of GIGA-Piano models: music features, a style classifier, copying checks.

Command line: `python -m gigapiano.evaluation --help`. Library::

    from gigapiano.evaluation import CopyIndex, feature_table, set_distances, train_style_classifier

The music features themselves live in the `evaluate` module `metrics/music_features` (loadable offline with
`evaluate.load("metrics/music_features")`); `gigapiano.evaluation.features` imports that file by path.
"""

from .analysis import verdicts
from .arguments import GigaPianoEvaluationArguments
from .classifier import (
    ClassifierScores,
    StyleClassifier,
    load_or_train_classifier,
    note_windows,
    train_style_classifier,
)
from .continuations import Continuation, SamplingSetup, continue_prompts
from .features import feature_matrix, feature_names, feature_table, music_features, set_distances
from .memorization import CopiedRun, CopyIndex
from .models import check_model_folders, load_evaluation_model
from .prompts import EvaluationPrompt, prompts_from_test_pieces
from .runner import run_classifier_only, run_evaluation
from .validation import validation_metrics

__all__ = [
    "ClassifierScores",
    "Continuation",
    "CopiedRun",
    "CopyIndex",
    "EvaluationPrompt",
    "GigaPianoEvaluationArguments",
    "SamplingSetup",
    "StyleClassifier",
    "check_model_folders",
    "continue_prompts",
    "feature_matrix",
    "feature_names",
    "feature_table",
    "load_evaluation_model",
    "load_or_train_classifier",
    "music_features",
    "note_windows",
    "run_classifier_only",
    "run_evaluation",
    "set_distances",
    "prompts_from_test_pieces",
    "train_style_classifier",
    "validation_metrics",
    "verdicts",
]
