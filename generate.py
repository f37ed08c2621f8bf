"""Generate piano music with GIGA-Piano: continue, inpaint, harmonize or build a progression from MIDI.

    python generate.py --model <folder or Hub id> --prompt examples/fur_elise.mid --output out.mid \
        --wav --pianoroll
    python generate.py --style baroque --prompt my.mid --max_new_notes 512 --num_variations 3 --seed 7
    python generate.py --model <folder> --prompt melody.mid --mode harmonize --chord_notes 2

Writes the MIDI (plus a .json with the model, mode, seed and sampling settings; optional .wav and .png) and
prints the written paths. Bad input gives one `error: ...` line on stderr and a non-zero exit status (1, or 2
for a bad flag). Seeds are applied inside the library (`GenerationSettings.seed`, recorded in the JSON). Run
with `--help` for every flag; the library behind it is `gigapiano.generation`.
"""

from __future__ import annotations

import logging
import sys

from transformers import HfArgumentParser
from transformers.utils import logging as hf_logging


class OneLineErrorParser(HfArgumentParser):
    """argparse prints usage plus the error; the project's CLIs print one `error:` line instead."""

    def error(self, message: str) -> None:
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def setup_logging(level: str) -> None:
    numeric = getattr(logging, level.upper(), None)
    if not isinstance(numeric, int):
        raise ValueError(f"--log_level must be debug, info, warning or error, got {level!r}.")
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S", level=numeric
    )
    hf_logging.set_verbosity_error()  # transformers' notices and load bars are noise for a musician
    hf_logging.disable_progress_bar()
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)  # offline retries: the final error says it


def main(argv: list[str] | None = None) -> int:
    from gigapiano.generation.arguments import GenerateArguments

    parser = OneLineErrorParser([GenerateArguments], description=__doc__.split("\n\n")[0])
    try:
        try:
            (args,) = parser.parse_args_into_dataclasses(args=argv)
        except SystemExit as stop:  # --help, or a flag error already printed as one line
            return stop.code if isinstance(stop.code, int) else 0
        setup_logging(args.log_level)
        from gigapiano.generation.runner import run_generation

        paths = run_generation(args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - every failure becomes one line; --log_level debug shows why
        logging.getLogger("generate").debug("failure", exc_info=True)
        message = " ".join(str(error).split()) or type(error).__name__
        known = isinstance(error, (ValueError, OSError, RuntimeError, ImportError))
        print(f"error: {message}" if known else f"error: {type(error).__name__}: {message}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
