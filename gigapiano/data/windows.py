"""Training windows: fixed-length slices of each piece that start on a note separator.

Windows are cut inside one piece (never across two pieces, so no window mixes the end of one
performance with the start of another) at offsets ``0, stride, 2 * stride, ...``; the tail shorter than a
window is dropped. ``labels`` equal ``input_ids``: Hugging Face causal-LM heads shift them internally.
With ``stride == window_length == 1024`` and ``chunk_filter=True`` the windows are exactly upstream's
filtered 256-note chunks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TypeVar

from datasets import Dataset, DatasetDict, Features, List, Value

from .chunk_filter import SEP_ID, TOKENS_PER_NOTE, UPSTREAM_REPMIN, keeps_window

logger = logging.getLogger(__name__)

DEFAULT_WINDOW_LENGTH = 1024

WINDOW_FEATURES = Features(
    {
        "input_ids": List(Value("int64")),
        "labels": List(Value("int64")),
        "midi_filename": Value("string"),
        "window_start": Value("int64"),
    }
)

DatasetOrDict = TypeVar("DatasetOrDict", Dataset, DatasetDict)


def check_window_args(window_length: int, stride: int | None) -> int:
    """Validates window length and stride and returns the effective stride.

    Args:
        window_length: Tokens per window; a positive multiple of 4 so windows hold whole notes.
        stride: Tokens between window starts (a positive multiple of 4); ``None`` means ``window_length``.

    Returns:
        The stride to use.
    """
    if window_length < TOKENS_PER_NOTE or window_length % TOKENS_PER_NOTE:
        raise ValueError(
            f"window_length={window_length} must be a positive multiple of {TOKENS_PER_NOTE} (whole notes), "
            "e.g. 1024."
        )
    stride = window_length if stride is None else stride
    if stride < TOKENS_PER_NOTE or stride % TOKENS_PER_NOTE:
        raise ValueError(
            f"window_stride={stride} must be a positive multiple of {TOKENS_PER_NOTE} so every window "
            f"starts on a note separator, e.g. {window_length // 2} for half-overlapping windows."
        )
    return stride


def check_note_structure(ids: Sequence[int], name: str = "sequence") -> None:
    """Raises ``ValueError`` unless ``ids`` are whole ``[127, dt, dur, pitch]`` groups."""
    if len(ids) % TOKENS_PER_NOTE or any(token != SEP_ID for token in ids[0::TOKENS_PER_NOTE]):
        raise ValueError(
            f"{name} is not a sequence of [127, dt, dur, pitch] notes ({len(ids)} ids); tokenise it with "
            "GigaPianoTokenizer.encode_midi."
        )


def make_windows(
    ids: Sequence[int],
    window_length: int = DEFAULT_WINDOW_LENGTH,
    stride: int | None = None,
    chunk_filter: bool = False,
    repmin: int = UPSTREAM_REPMIN,
) -> list[tuple[int, list[int]]]:
    """Cuts one piece's token ids into windows.

    Args:
        ids: The piece's token ids (``[127, dt, dur, pitch]`` per note).
        window_length: Tokens per window (multiple of 4).
        stride: Tokens between window starts (multiple of 4); defaults to ``window_length``.
        chunk_filter: Keep only windows the upstream chunk filter keeps (see ``chunk_filter.py``).
        repmin: The filter's distinct-note threshold.

    Returns:
        ``(start, window)`` pairs; every window starts with 127 and has exactly ``window_length`` ids.
    """
    stride = check_window_args(window_length, stride)
    check_note_structure(ids)
    windows = []
    for start in range(0, len(ids) - window_length + 1, stride):
        window = list(ids[start : start + window_length])
        if chunk_filter and not keeps_window(window, repmin):
            continue
        windows.append((start, window))
    return windows


def _window_batch(
    batch: dict[str, list], window_length: int, stride: int, chunk_filter: bool, repmin: int
) -> dict[str, list]:
    out: dict[str, list] = {name: [] for name in WINDOW_FEATURES}
    names = batch.get("midi_filename") or [""] * len(batch["input_ids"])
    for name, ids in zip(names, batch["input_ids"], strict=True):
        try:
            windows = make_windows(ids, window_length, stride, chunk_filter, repmin)
        except ValueError as error:
            raise ValueError(f"Piece {name or '<unnamed>'}: {error}") from error
        for start, window in windows:
            out["input_ids"].append(window)
            out["labels"].append(list(window))
            out["midi_filename"].append(name)
            out["window_start"].append(start)
    return out


def window_dataset(
    data: DatasetOrDict,
    window_length: int = DEFAULT_WINDOW_LENGTH,
    stride: int | None = None,
    chunk_filter: bool = False,
    repmin: int = UPSTREAM_REPMIN,
    num_proc: int | None = None,
) -> DatasetOrDict:
    """Turns a pieces dataset (one row per piece) into a windows dataset for causal-LM training.

    Args:
        data: A ``Dataset`` or ``DatasetDict`` with an ``input_ids`` column (and ideally ``midi_filename``).
        window_length: Tokens per window (multiple of 4); 1024 is the model context.
        stride: Tokens between window starts; ``None`` = ``window_length`` (no overlap).
        chunk_filter: Apply the upstream chunk filter to each window.
        repmin: The filter's distinct-note threshold.
        num_proc: Worker processes for ``Dataset.map``.

    Returns:
        The same container type with columns ``input_ids``, ``labels`` (int64), ``midi_filename`` and
        ``window_start`` (token offset in the piece). Results are cached by ``datasets`` fingerprinting
        when the input is backed by cache files.
    """
    stride = check_window_args(window_length, stride)
    if isinstance(data, DatasetDict):
        return DatasetDict(
            {
                split: window_dataset(ds, window_length, stride, chunk_filter, repmin, num_proc)
                for split, ds in data.items()
            }
        )
    if "input_ids" not in data.column_names:
        raise ValueError(
            f"The dataset has no `input_ids` column (columns: {data.column_names}); tokenise it first."
        )
    windows = data.map(
        _window_batch,
        batched=True,
        batch_size=16,
        remove_columns=data.column_names,
        features=WINDOW_FEATURES,
        fn_kwargs={
            "window_length": window_length,
            "stride": stride,
            "chunk_filter": chunk_filter,
            "repmin": repmin,
        },
        num_proc=num_proc if num_proc and num_proc > 1 and len(data) > 1 else None,
        desc=f"Windows of {window_length} tokens" + (" (chunk filter)" if chunk_filter else ""),
    )
    logger.info(
        "%d pieces -> %d windows of %d tokens (stride %d).", len(data), len(windows), window_length, stride
    )
    return windows
