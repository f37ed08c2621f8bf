"""What every command-line script of the project shares: argument errors and failures as one line.

A musician running `generate.py` should read `error: <what is wrong and how to fix it>`, not a usage dump
or a traceback; `--log_level debug` (where a script has it) logs the traceback for developers.
"""

from __future__ import annotations

import logging
import sys

from transformers import HfArgumentParser

EXPECTED_ERRORS = (ValueError, OSError, RuntimeError, ImportError)


class OneLineErrorParser(HfArgumentParser):
    """argparse prints the usage plus the error; the project's CLIs print one `error:` line instead."""

    def error(self, message: str) -> None:
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def report_failure(error: BaseException, logger_name: str) -> int:
    """Print `error` as one `error: ...` line on stderr and return the exit status for it.

    Args:
        error: the exception that ended the command.
        logger_name: logger that records the traceback at DEBUG level.

    Returns:
        130 for an interrupt, 1 otherwise.
    """
    if isinstance(error, KeyboardInterrupt):
        print("error: interrupted", file=sys.stderr)
        return 130
    logging.getLogger(logger_name).debug("failure", exc_info=error)
    message = " ".join(str(error).split()) or type(error).__name__
    expected = isinstance(error, EXPECTED_ERRORS)
    print(f"error: {message}" if expected else f"error: {type(error).__name__}: {message}", file=sys.stderr)
    return 1
