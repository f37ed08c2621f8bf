"""What every command-line script of the project shares: argument errors and failures as one line.

A musician running `generate.py` should read `error: <what is wrong and how to fix it>`, not a usage dump
or a traceback; `--log_level debug` (where a script has it) logs the traceback for developers.

Two parsers turn dataclasses into flags: `OneLineErrorParser` is `transformers.HfArgumentParser` (needed
where a dataclass extends `TrainingArguments`; transformers is imported only when it is first used), and
`DataclassArgumentParser` is plain `argparse` with the same conventions, so `generate.py --help` and flag
errors answer before torch or transformers are imported.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import sys
import types
import typing
from typing import Any, Literal

EXPECTED_ERRORS = (ValueError, OSError, RuntimeError, ImportError)


def _one_line_error(message: str) -> typing.NoReturn:
    print(f"error: {message} (see --help)", file=sys.stderr)
    raise SystemExit(2)


def _string_to_bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    if value.lower() in ("yes", "true", "t", "y", "1"):
        return True
    if value.lower() in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false, yes/no, 1/0), got {value!r}")


class DataclassArgumentParser(argparse.ArgumentParser):
    """Flags from dataclass fields, with only the standard library: `--name` (and `--name-with-dashes`),
    type and default from the annotation, help and choices from the field's metadata.

    Booleans follow `HfArgumentParser`: `--flag` or `--flag true/false`, and a field that defaults to True
    also gets `--no_flag`, whose help is the metadata's `no_help` (or "Turn --flag off."). Errors are one
    `error: ...` line on stderr and exit status 2.
    """

    def __init__(self, dataclass_types: typing.Sequence[type], **kwargs: Any):
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(**kwargs)
        self.dataclass_types = list(dataclass_types)
        for cls in self.dataclass_types:
            hints = typing.get_type_hints(cls)
            for field in dataclasses.fields(cls):
                if field.init:
                    self._add_field(field, hints[field.name])

    def _add_field(self, field: dataclasses.Field, annotation: Any) -> None:
        names = [f"--{field.name}"] + ([f"--{field.name.replace('_', '-')}"] if "_" in field.name else [])
        metadata = dict(field.metadata)
        no_help = metadata.pop("no_help", None)
        kwargs: dict[str, Any] = {"dest": field.name, **metadata}
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):  # X | None
            annotation = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
            origin = typing.get_origin(annotation)
        if field.default is not dataclasses.MISSING:
            kwargs["default"] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            kwargs["default"] = field.default_factory()
        else:
            kwargs["required"] = True
        if origin is Literal:
            kwargs.setdefault("choices", list(typing.get_args(annotation)))
        elif annotation is bool:
            kwargs.update(type=_string_to_bool, nargs="?", const=True)
        elif origin is list:
            kwargs.update(type=typing.get_args(annotation)[0], nargs="+")
        else:
            kwargs["type"] = annotation
        self.add_argument(*names, **kwargs)
        if annotation is bool and field.default is True:
            self.add_argument(
                f"--no_{field.name}",
                dest=field.name,
                action="store_false",
                default=argparse.SUPPRESS,  # the value's default is the field's; no "(default: True)"
                help=no_help or f"Turn --{field.name} off.",
            )

    def error(self, message: str) -> typing.NoReturn:
        _one_line_error(message)

    def parse_args_into_dataclasses(self, args: typing.Sequence[str] | None = None) -> tuple[Any, ...]:
        """One instance per dataclass (their `__post_init__` checks run here); unknown flags are errors."""
        namespace = self.parse_args(args)
        return tuple(
            cls(**{f.name: getattr(namespace, f.name) for f in dataclasses.fields(cls) if f.init})
            for cls in self.dataclass_types
        )


@functools.cache
def _one_line_error_parser() -> type:
    from transformers import HfArgumentParser

    class OneLineErrorParser(HfArgumentParser):
        """argparse prints the usage plus the error; the project's CLIs print one `error:` line instead."""

        def error(self, message: str) -> typing.NoReturn:
            _one_line_error(message)

    OneLineErrorParser.__module__ = __name__
    return OneLineErrorParser


def __getattr__(name: str) -> Any:
    """`OneLineErrorParser` (an `HfArgumentParser`) is built on first use: importing this module is cheap."""
    if name == "OneLineErrorParser":
        return _one_line_error_parser()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
