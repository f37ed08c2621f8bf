#!/usr/bin/env python
"""Fine-tune GIGA-Piano on a MAESTRO composer style (or train one from scratch).

    accelerate launch train.py --style rachmaninoff
    python train.py --style baroque --lora --output_dir runs/baroque-lora
    python train.py --config configs/train/base_compact.yaml        # the shipped base model's recipe

Arguments come from a YAML in configs/train/ (--config, default configs/train/finetune.yaml) and any flag
overrides it; `python train.py --help` lists them all. Re-running into the same --output_dir resumes.
"""

from __future__ import annotations

import logging
import sys

from gigapiano.cli import report_failure

logger = logging.getLogger("gigapiano.train")
#: Errors in what the user asked for (bad flag values, missing files): exit status 2, as for a bad flag.
USAGE_ERRORS = (ValueError, FileNotFoundError, FileExistsError, ImportError)


def main(argv: list[str] | None = None) -> int:
    try:
        # the parser first: --help and flag errors answer before the trainer, datasets and peft load
        from gigapiano.training.arguments import parse_training_args

        model_args, data_args, training_args = parse_training_args(argv)
        from gigapiano.training.trainer import run_training

        outcome = run_training(model_args, data_args, training_args)
    except KeyboardInterrupt:
        print("interrupted: re-run the same command to resume from the last checkpoint", file=sys.stderr)
        return 130
    except USAGE_ERRORS as error:
        report_failure(error, "gigapiano.train")
        return 2
    except Exception as error:  # noqa: BLE001 - every failure becomes one line (traceback: --log_level debug)
        return report_failure(error, "gigapiano.train")
    if training_args.process_index == 0:
        metrics = outcome.metrics
        logger.info(
            "Validation loss %.4f, accuracy %.4f, perplexity %.3f.",
            metrics.get("eval_loss", float("nan")),
            metrics.get("eval_accuracy", float("nan")),
            metrics.get("eval_perplexity", float("nan")),
        )
        print(outcome.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
