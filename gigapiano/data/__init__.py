"""MAESTRO composer styles as ``datasets`` splits, downloaded or local, leak-free, ready for training.

Typical use::

    from gigapiano.data import build_style_dataset, window_dataset, add_transposition, save_pieces_json

    pieces = build_style_dataset("baroque", maestro_dir="../shared/maestro-subset/maestro-v3.0.0")
    windows = window_dataset(pieces, window_length=1024)
    windows = add_transposition(windows, max_semitones=6)   # training split only
    save_pieces_json(pieces, "runs/baroque")

or, from parsed arguments, :func:`prepare_training_data`. Command line: ``python -m gigapiano.data --help``.
"""

from .arguments import GigaPianoDataArguments
from .augment import RandomTranspose, add_transposition, allowed_shifts, transpose_ids
from .build import PIECE_FEATURES, build_style_dataset, resolve_style, tokenize_pieces
from .chunk_filter import chunk_rejection_reason, keeps_window, upstream_chunk_verdicts
from .download import (
    MAESTRO_MIDI_SHA256,
    MAESTRO_MIDI_SIZE,
    MAESTRO_MIDI_URL,
    DownloadVerificationError,
    default_cache_dir,
    download_file,
    download_maestro,
    resolve_maestro_root,
)
from .maestro import (
    MaestroPiece,
    MissingMidiFilesError,
    NoPiecesError,
    check_midi_files,
    find_maestro_root,
    read_maestro_csv,
    select_pieces,
)
from .pipeline import GigaPianoTrainingData, prepare_training_data
from .provenance import load_pieces_json, save_pieces_json
from .splits import resolve_split_by, split_pieces
from .styles import GigaPianoStyle, UnknownStyleError, available_styles, load_style
from .windows import WINDOW_FEATURES, make_windows, window_dataset

__all__ = [
    "MAESTRO_MIDI_SHA256",
    "MAESTRO_MIDI_SIZE",
    "MAESTRO_MIDI_URL",
    "PIECE_FEATURES",
    "WINDOW_FEATURES",
    "DownloadVerificationError",
    "GigaPianoDataArguments",
    "GigaPianoStyle",
    "GigaPianoTrainingData",
    "MaestroPiece",
    "MissingMidiFilesError",
    "NoPiecesError",
    "RandomTranspose",
    "UnknownStyleError",
    "add_transposition",
    "allowed_shifts",
    "available_styles",
    "build_style_dataset",
    "check_midi_files",
    "chunk_rejection_reason",
    "default_cache_dir",
    "download_file",
    "download_maestro",
    "find_maestro_root",
    "keeps_window",
    "load_pieces_json",
    "load_style",
    "make_windows",
    "prepare_training_data",
    "read_maestro_csv",
    "resolve_maestro_root",
    "resolve_split_by",
    "resolve_style",
    "save_pieces_json",
    "select_pieces",
    "split_pieces",
    "tokenize_pieces",
    "transpose_ids",
    "upstream_chunk_verdicts",
    "window_dataset",
]
