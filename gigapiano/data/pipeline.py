"""One call from data arguments to training-ready windows (what ``train.py`` uses)."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from datasets import DatasetDict

from .arguments import GigaPianoDataArguments
from .augment import add_transposition
from .build import build_style_dataset, resolve_style
from .provenance import save_pieces_json
from .styles import GigaPianoStyle
from .windows import window_dataset

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class GigaPianoTrainingData:
    """The data of one training run.

    Args:
        style: The resolved style (for model cards and repo names).
        pieces: One row per piece, split by piece (token ids, MAESTRO metadata).
        windows: Fixed-length ``input_ids``/``labels`` windows per split; ``train`` carries the transposition
            transform when augmentation is on.
        pieces_json: Path of the ``pieces.json`` written, if an output folder was given.
    """

    style: GigaPianoStyle
    pieces: DatasetDict
    windows: DatasetDict
    pieces_json: Path | None = None


def prepare_training_data(
    args: GigaPianoDataArguments,
    output_dir: str | os.PathLike | None = None,
    *,
    tokenizer: Any | None = None,
    augment_seed: int | None = None,
) -> GigaPianoTrainingData:
    """Builds the style's pieces, cuts windows, adds augmentation and records ``pieces.json``.

    Args:
        args: Parsed data arguments.
        output_dir: Training output folder; ``pieces.json`` is written there when given.
        tokenizer: Tokenizer object (default ``GigaPianoTokenizer()``).
        augment_seed: Seed of the transposition stream (pass the training seed for reproducibility).

    Returns:
        The :class:`GigaPianoTrainingData`.
    """
    style = resolve_style(args.style, composers=args.composer, pieces=args.pieces)
    pieces = build_style_dataset(
        style,
        maestro_dir=args.maestro_dir,
        cache_dir=args.cache_dir,
        split_by=args.split_by,
        validation_fraction=args.validation_fraction,
        test_fraction=args.test_fraction,
        seed=args.split_seed,
        group_by_composition=args.group_by_composition,
        on_missing=args.on_missing,
        timing=args.timing,
        tokenizer=tokenizer,
        num_proc=args.num_proc,
        download_options=args.download_options,
    )
    windows = window_dataset(
        pieces,
        window_length=args.window_length,
        stride=args.window_stride,
        chunk_filter=args.chunk_filter,
        num_proc=args.num_proc,
    )
    if len(windows["train"]) == 0:
        raise ValueError(
            f"Style {style.name!r} gives no training windows of {args.window_length} tokens; use a shorter "
            "--window_length, more pieces (--pieces all) or drop --chunk_filter."
        )
    windows = add_transposition(windows, args.transpose, seed=augment_seed)
    pieces_json = save_pieces_json(pieces, output_dir) if output_dir is not None else None
    return GigaPianoTrainingData(style=style, pieces=pieces, windows=windows, pieces_json=pieces_json)
