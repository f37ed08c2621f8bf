"""Generate piano music with GIGA-Piano: continue, inpaint, harmonize or build a progression from MIDI.

    python generate.py --model <folder or Hub id> --prompt examples/fur_elise.mid --output out.mid \
        --wav --pianoroll
    python generate.py --style baroque --prompt my.mid --max_new_notes 512 --num_variations 3 --seed 7
    python generate.py --model <folder> --prompt melody.mid --mode harmonize --chord_notes 2

Writes the MIDI (plus a .json with the model, mode, seed and sampling settings; optional .wav and .png) and
prints the written paths. Bad input gives one `error: ...` line on stderr and a non-zero exit status (1, or 2
for a bad flag); `--help`, flag errors and a missing `--model` folder answer before torch and transformers
are imported. Seeds are applied inside the library (`GenerationSettings.seed`, recorded in the JSON). Run
with `--help` for every flag; the library behind it is `gigapiano.generation`.
"""

from __future__ import annotations

import logging
import sys

from gigapiano.cli import DataclassArgumentParser, report_failure


def setup_logging(level: str) -> None:
    numeric = getattr(logging, level.upper(), None)
    if not isinstance(numeric, int):
        raise ValueError(f"--log_level must be debug, info, warning or error, got {level!r}.")
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S", level=numeric
    )
    from transformers.utils import logging as hf_logging  # imported once the flags are known to be good

    hf_logging.set_verbosity_error()  # transformers' notices and load bars are noise for a musician
    hf_logging.disable_progress_bar()
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)  # offline retries: the final error says it


def main(argv: list[str] | None = None) -> int:
    from gigapiano.generation.arguments import GenerateArguments

    parser = DataclassArgumentParser([GenerateArguments], description=__doc__.split("\n\n")[0])
    try:
        try:
            (args,) = parser.parse_args_into_dataclasses(args=argv)
        except SystemExit as stop:  # --help, or a flag error already printed as one line
            return stop.code if isinstance(stop.code, int) else 0
        setup_logging(args.log_level)
        from gigapiano.generation.runner import run_generation

        paths = run_generation(args)
    except (Exception, KeyboardInterrupt) as error:  # noqa: BLE001 - every failure becomes one line
        return report_failure(error, "generate")
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
