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

from gigapiano.training import parse_training_args, run_training

logger = logging.getLogger("gigapiano.train")


def main(argv: list[str] | None = None) -> int:
    try:
        model_args, data_args, training_args = parse_training_args(argv)
        outcome = run_training(model_args, data_args, training_args)
    except (ValueError, FileNotFoundError, FileExistsError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: re-run the same command to resume from the last checkpoint", file=sys.stderr)
        return 130
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
