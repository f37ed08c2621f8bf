"""Data arguments shared by ``python -m gigapiano.data`` and ``train.py`` (``HfArgumentParser`` dataclass)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from .windows import DEFAULT_WINDOW_LENGTH, check_window_args


@dataclasses.dataclass
class GigaPianoDataArguments:
    """What data a style is built from, how it is split, windowed and augmented.

    Every field is a command-line flag of the same name (``--style``, ``--maestro_dir``, ...).
    """

    style: str | None = dataclasses.field(
        default="baroque",
        metadata={
            "help": "Style name (a YAML file in configs/styles: baroque, romantic, rachmaninoff, ...) or a "
            "path to a style YAML. Ignored when --composer is given. Default: baroque."
        },
    )
    composer: list[str] | None = dataclasses.field(
        default=None,
        metadata={
            "help": "Build an ad-hoc style from every MAESTRO piece of these composers instead of --style, "
            'e.g. --composer "Franz Liszt". Names as in MAESTRO\'s canonical_composer (case and accents '
            "ignored)."
        },
    )
    pieces: Literal["thesis", "all"] | None = dataclasses.field(
        default=None,
        metadata={
            "help": "Override the style's selection: 'thesis' = the exact 50 pieces upstream fine-tuned "
            "on, 'all' = every MAESTRO piece of the style's composers. Default: the style's own setting."
        },
    )
    maestro_dir: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "Extracted MAESTRO v3.0.0 folder (with maestro-v3.0.0.csv and the year folders). When "
            "omitted, maestro-v3.0.0-midi.zip (about 56 MB) is downloaded once into $HF_HOME/gigapiano and "
            "verified."
        },
    )
    cache_dir: str | None = dataclasses.field(
        default=None,
        metadata={
            "help": "Cache root for the MAESTRO download and tokenised datasets. Default: $GIGAPIANO_CACHE "
            "or $HF_HOME/gigapiano."
        },
    )
    download_timeout: float = dataclasses.field(
        default=60.0,
        metadata={
            "help": "Seconds the MAESTRO download may wait for data before it resumes the transfer (the "
            "bytes received so far are kept). Default: 60."
        },
    )
    download_deadline: float = dataclasses.field(
        default=3600.0,
        metadata={
            "help": "Seconds the whole MAESTRO download may take, resumes included; past it the command "
            "stops with the partial file kept for the next run. Default: 3600."
        },
    )
    split_by: Literal["auto", "piece", "maestro"] = dataclasses.field(
        default="auto",
        metadata={
            "help": "'piece': seeded split by composition (no composition in two splits); 'maestro': "
            "MAESTRO's own split column, with any composition MAESTRO spread over two splits moved whole "
            "(fractions and seed ignored); 'auto': 'maestro' for --pieces all, 'piece' for the thesis "
            "selection. Default: auto."
        },
    )
    validation_fraction: float = dataclasses.field(
        default=0.1,
        metadata={"help": "Share of pieces for validation with --split_by piece, in [0, 1). Default: 0.1."},
    )
    test_fraction: float = dataclasses.field(
        default=0.1,
        metadata={"help": "Share of pieces for test with --split_by piece, in [0, 1). Default: 0.1."},
    )
    split_seed: int = dataclasses.field(
        default=42,
        metadata={
            "help": "Seed of the train/validation/test split; separate from the training seed. Default: 42."
        },
    )
    group_by_composition: bool = dataclasses.field(
        default=True,
        metadata={
            "help": "Keep all performances of one composition in the same split; compositions are found over "
            "the whole catalogue by catalogue number (BWV, Op./No., K., D., S.), enharmonic title and shared "
            "runs of 16 identical pitches. Default: true."
        },
    )
    skip_missing: bool = dataclasses.field(
        default=False,
        metadata={
            "help": "Warn about and leave out MIDI files that are listed in the CSV but missing or "
            "unreadable, instead of stopping with an error naming them. Default: false."
        },
    )
    timing: str = dataclasses.field(
        default="upstream",
        metadata={
            "help": "Tokenizer timing mode: 'upstream' reproduces the token ids the pretrained weights saw "
            "(per-event millisecond rounding); other modes are those GigaPianoTokenizer accepts. Default: "
            "upstream."
        },
    )
    num_proc: int | None = dataclasses.field(
        default=None,
        metadata={
            "help": "Worker processes for tokenisation and windowing (useful with --pieces all). Reuse the "
            "same value to hit the cache. Default: none (single process)."
        },
    )
    window_length: int = dataclasses.field(
        default=DEFAULT_WINDOW_LENGTH,
        metadata={
            "help": "Tokens per training window, a multiple of 4 (whole notes); windows start on the note "
            "separator 127. Default: 1024 (the model context)."
        },
    )
    window_stride: int | None = dataclasses.field(
        default=None,
        metadata={
            "help": "Tokens between window starts, a multiple of 4; smaller than --window_length for "
            "overlap. Default: --window_length (no overlap)."
        },
    )
    chunk_filter: bool = dataclasses.field(
        default=False,
        metadata={
            "help": "Apply upstream's chunk filter to windows: keep windows with more than 54 distinct "
            "notes, a chord (some dt = 0) and n < sum(dt) < 100 n for n notes. Default: false."
        },
    )
    transpose: int = dataclasses.field(
        default=0,
        metadata={
            "help": "Augment training windows on the fly by a random transposition of up to this many "
            "semitones up or down (pitches kept in 1..126; validation and test untouched). 0 disables. "
            "Default: 0."
        },
    )

    def __post_init__(self) -> None:
        if not self.style and not self.composer:
            raise ValueError('Give --style (e.g. baroque) or at least one --composer "<MAESTRO composer>".')
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"--{name}={value} must be in [0, 1), e.g. 0.1.")
        if self.split_by != "maestro" and self.validation_fraction + self.test_fraction >= 1.0:
            raise ValueError(
                f"--validation_fraction {self.validation_fraction} + --test_fraction {self.test_fraction} "
                "leaves no training pieces; make their sum smaller than 1."
            )
        for name in ("download_timeout", "download_deadline"):
            if not getattr(self, name) > 0:
                raise ValueError(f"--{name}={getattr(self, name)} must be a positive number of seconds.")
        if self.num_proc is not None and self.num_proc < 1:
            raise ValueError(f"--num_proc={self.num_proc} must be at least 1.")
        if self.transpose < 0:
            raise ValueError(
                f"--transpose={self.transpose} must be >= 0 semitones (0 disables augmentation)."
            )
        try:
            check_window_args(self.window_length, self.window_stride)
        except ValueError as error:
            raise ValueError(f"--window_length/--window_stride: {error}") from error

    @property
    def download_options(self) -> dict[str, float]:
        """Keyword arguments of the MAESTRO download (``timeout``, ``deadline``)."""
        return {"timeout": self.download_timeout, "deadline": self.download_deadline}

    @property
    def on_missing(self) -> Literal["error", "skip"]:
        """``"skip"`` with ``--skip_missing``, else ``"error"``."""
        return "skip" if self.skip_missing else "error"
