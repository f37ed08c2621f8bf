"""Language-model metrics for GIGA-Piano token sequences, as an `evaluate` module.

Load it offline by path: `evaluate.load("metrics/gigapiano_lm")`. It reports what upstream reported
(loss, token accuracy and perplexity over every predicted token, separators included, so the numbers
are comparable with upstream's fastai metrics) and, because separators are trivially predictable, the
accuracy of each note field on its own (dt, duration, pitch).
"""

from __future__ import annotations

import math

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Token-level metrics of a causal language model over GIGA-Piano note tokens (`127, dt, dur, pitch` per
note): mean cross-entropy `loss`, `perplexity` = exp(loss), `accuracy` of the argmax prediction over all
tokens, and `dt_accuracy`, `dur_accuracy`, `pitch_accuracy`, `sep_accuracy` restricted to the targets
that are that field of a note.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[int]`): argmax predicted id per target token.
    references (`list[int]`): the target ids (already shifted: the token that follows each input).
    losses (`list[float]`): cross-entropy (natural log) of each target token under the model.
    fields (`list[int]`): which part of a note each target is: 0 separator, 1 dt, 2 duration, 3 pitch.
Returns:
    dict with `loss`, `perplexity`, `accuracy`, `sep_accuracy`, `dt_accuracy`, `dur_accuracy`,
    `pitch_accuracy`, `num_tokens`.
Example:
    >>> metric = evaluate.load("metrics/gigapiano_lm")
    >>> scores = metric.compute(predictions=[127, 5], references=[127, 6], losses=[0.01, 1.2], fields=[0, 1])
    >>> scores["accuracy"]
    0.5
"""

FIELD_NAMES = ("sep", "dt", "dur", "pitch")


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class GigaPianoLM(evaluate.Metric):
    """Loss, accuracy, perplexity and per-field accuracy of next-token predictions."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("int32"),
                    "references": datasets.Value("int32"),
                    "losses": datasets.Value("float32"),
                    "fields": datasets.Value("int8"),
                }
            ),
        )

    def _compute(self, predictions, references, losses, fields) -> dict[str, float]:
        predictions = np.asarray(predictions)
        references = np.asarray(references)
        losses = np.asarray(losses, dtype=np.float64)
        fields = np.asarray(fields)
        if not len(references):
            raise ValueError("gigapiano_lm got no tokens to score.")
        correct = predictions == references
        loss = float(losses.mean())
        result = {
            "loss": loss,
            "perplexity": math.exp(loss) if loss < 700 else float("inf"),
            "accuracy": float(correct.mean()),
            "num_tokens": int(len(references)),
        }
        for index, name in enumerate(FIELD_NAMES):
            selected = fields == index
            result[f"{name}_accuracy"] = float(correct[selected].mean()) if selected.any() else float("nan")
        return result
