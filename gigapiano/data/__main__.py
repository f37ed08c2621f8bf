"""Command line: build a style's MAESTRO dataset and report (or save) its splits and windows.

Run ``python -m gigapiano.data --help`` for the flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from .arguments import GigaPianoDataArguments

logger = logging.getLogger("gigapiano.data")

EPILOG = """examples:
  python -m gigapiano.data --style baroque --maestro_dir ../shared/maestro-subset/maestro-v3.0.0
  python -m gigapiano.data --style romantic --split_by piece --output_dir runs/data-romantic
  python -m gigapiano.data --style maestro --pieces all --num_proc 2      # every composer (the base model)
  python -m gigapiano.data --composer "Franz Liszt" --num_proc 4          # downloads MAESTRO once
  python -m gigapiano.data --list_styles
"""


@dataclasses.dataclass
class DataCliArguments:
    """Flags of the command line only (not used by train.py)."""

    output_dir: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "Folder to save the result in: pieces/ and windows/ (datasets save_to_disk) and "
            "pieces.json (split -> MAESTRO midi_filenames). Default: only print the summary."
        },
    )
    list_styles: bool = dataclasses.field(
        default=False, metadata={"help": "Print the available styles and their composers, then exit."}
    )
    download: bool = dataclasses.field(
        default=True,
        metadata={
            "help": "Allow downloading MAESTRO when --maestro_dir is not given and no copy is cached "
            "(--no_download forbids it). Default: true."
        },
    )
    log_level: str = dataclasses.field(
        default="info", metadata={"help": "Logging level: debug, info, warning or error. Default: info."}
    )


def _parse(argv: list[str] | None) -> tuple[GigaPianoDataArguments, DataCliArguments]:
    from transformers import HfArgumentParser

    parser = HfArgumentParser(
        (GigaPianoDataArguments, DataCliArguments),
        prog="python -m gigapiano.data",
        description="Build a GIGA-Piano style from MAESTRO v3.0.0 as a datasets.DatasetDict: select the "
        "style's pieces, tokenise them (cached), split them into train/validation/test with every "
        "composition (found over the whole catalogue by catalogue number, enharmonic title and shared pitch "
        "runs) in one split (by default MAESTRO's split for --pieces all, a seeded split for the thesis "
        "selection), and cut fixed-length training windows.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data_args, cli_args = parser.parse_args_into_dataclasses(args=argv)
    return data_args, cli_args


def _list_styles() -> None:
    from .styles import available_styles, default_styles_dir, load_style

    folder = default_styles_dir()
    for name in available_styles(folder):
        style = load_style(name, folder)
        count = f"{len(style.thesis_pieces)} thesis pieces" if style.thesis_pieces else "all pieces"
        print(
            f"{name}\t{style.display_name}\t{'; '.join(style.composers)}\t(default pieces: {style.pieces}, "
            f"{count})"
        )


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    try:
        data_args, cli_args = _parse(argv)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=cli_args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if cli_args.list_styles:
        _list_styles()
        return 0

    from .build import build_style_dataset, resolve_style
    from .provenance import save_pieces_json
    from .windows import window_dataset

    try:
        style = resolve_style(data_args.style, composers=data_args.composer, pieces=data_args.pieces)
        pieces = build_style_dataset(
            style,
            maestro_dir=data_args.maestro_dir,
            cache_dir=data_args.cache_dir,
            allow_download=cli_args.download,
            split_by=data_args.split_by,
            validation_fraction=data_args.validation_fraction,
            test_fraction=data_args.test_fraction,
            seed=data_args.split_seed,
            group_by_composition=data_args.group_by_composition,
            on_missing=data_args.on_missing,
            timing=data_args.timing,
            num_proc=data_args.num_proc,
            download_options=data_args.download_options,
        )
        windows = window_dataset(
            pieces,
            window_length=data_args.window_length,
            stride=data_args.window_stride,
            chunk_filter=data_args.chunk_filter,
            num_proc=data_args.num_proc,
        )
    except (ValueError, FileNotFoundError, ImportError, ConnectionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    logger.info("Style %r: %s (%s pieces)", style.name, style.display_name, style.pieces)
    for split in pieces:
        tokens = sum(len(ids) for ids in pieces[split]["input_ids"])
        logger.info(
            "%-10s %4d pieces  %9d tokens  %6d windows",
            split,
            len(pieces[split]),
            tokens,
            len(windows[split]),
        )
    if cli_args.output_dir:
        out = Path(cli_args.output_dir)
        pieces.save_to_disk(str(out / "pieces"))
        windows.save_to_disk(str(out / "windows"))
        print(out / "pieces")
        print(out / "windows")
        print(save_pieces_json(pieces, out))
        if data_args.transpose:
            # Augmentation is a transform applied while reading, so saved windows stay untransposed.
            logger.info("--transpose %d is applied on the fly at training time.", data_args.transpose)
    return 0


if __name__ == "__main__":
    sys.exit(main())
