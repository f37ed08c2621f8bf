"""Fine-tuning GIGA-Piano with `transformers.Trainer`: arguments, model setup, LR range test, the run.

Names are imported on first use, so `gigapiano.training.arguments` (what `train.py --help` needs) loads
without the trainer, datasets or peft.
"""

from __future__ import annotations

from .. import lazy_exports

_EXPORTS = {
    "GigaPianoModelArguments": "arguments",
    "GigaPianoTrainingArguments": "arguments",
    "parse_training_args": "arguments",
    "GigaPianoTrainer": "trainer",
    "TrainingOutcome": "trainer",
    "run_training": "trainer",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)


__all__ = [
    "GigaPianoModelArguments",
    "GigaPianoTrainer",
    "GigaPianoTrainingArguments",
    "TrainingOutcome",
    "parse_training_args",
    "run_training",
]
