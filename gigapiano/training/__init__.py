"""Fine-tuning GIGA-Piano with `transformers.Trainer`: arguments, model setup, LR range test, the run."""

from .arguments import GigaPianoModelArguments, GigaPianoTrainingArguments, parse_training_args
from .trainer import GigaPianoTrainer, TrainingOutcome, run_training

__all__ = [
    "GigaPianoModelArguments",
    "GigaPianoTrainer",
    "GigaPianoTrainingArguments",
    "TrainingOutcome",
    "parse_training_args",
    "run_training",
]
