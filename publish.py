#!/usr/bin/env python
r"""Publish GIGA-Piano on the Hugging Face Hub: a trained model, the tokenised styles, or the demo Space.

    python publish.py --run_dir runs/gigapiano-baroque --repo_id NAMESPACE/gigapiano-baroque
    python publish.py --run_dir runs/baroque-lora --repo_id NAMESPACE/gigapiano-baroque-lora \
        --base_repo_id NAMESPACE/gigapiano-base
    python publish.py --run_dir RUN --repo_id NAMESPACE/NAME --dry_run --output_dir out/repo  # folder only
    python publish.py dataset --repo_id NAMESPACE/gigapiano-maestro-styles --maestro_dir DIR
    python publish.py space --repo_id NAMESPACE/gigapiano-demo

`model` (the default command) assembles the repo folder of a train.py run (config with auto_map and
safetensors weights, or a LoRA adapter pointing at its base repo; tokenizer and model code; a model card
filled from the run's numbers; handler.py for Inference Endpoints; an example prompt) and uploads it with
huggingface_hub. `dataset` writes the styles as Parquet, one config per style. `space` writes the Gradio
demo as a Space. `--dry_run --output_dir DIR` only writes the folder. `python publish.py COMMAND --help`
lists every flag. Prints the folder written and the repo and commit URLs; errors are one `error:` line.
"""

from __future__ import annotations

import argparse
import logging
import sys

from gigapiano.cli import OneLineErrorParser, report_failure


def main(argv: list[str] | None = None) -> int:
    from gigapiano.hub.cli import ARGUMENTS, run_command, split_command

    command, flags = split_command(list(sys.argv[1:] if argv is None else argv))
    parser = OneLineErrorParser(
        [ARGUMENTS[command]],
        prog=f"publish.py {command}",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    try:
        try:
            (args,) = parser.parse_args_into_dataclasses(args=flags)
        except SystemExit as stop:  # --help, or a flag error already printed as one line
            return stop.code if isinstance(stop.code, int) else 0
        logging.basicConfig(
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            datefmt="%H:%M:%S",
            level=getattr(logging, args.log_level.upper(), logging.INFO),
        )
        lines = run_command(command, args)
    except (Exception, KeyboardInterrupt) as error:  # noqa: BLE001 - every failure becomes one line
        return report_failure(error, "publish")
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
