"""Read a MIDI prompt into ids, turning every way a prompt can be unusable into a clear `ValueError`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def load_prompt(source: str | Path | bytes | None, tokenizer: Any, timing: str = "upstream") -> list[int]:
    """Encode a MIDI prompt (path, bytes or `symusic.Score`) with the model's tokenizer.

    Args:
        source: the prompt; None means no prompt (improvise from a separator) and returns `[]`.
        tokenizer: a `GigaPianoTokenizer`.
        timing: the tokenizer's timing mode (`upstream`, what the pretrained weights saw, by default).

    Returns:
        The prompt ids, `[127, dt, dur, pitch]` per note.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a readable MIDI file, or no piano notes in it (empty, or drums only).
    """
    if source is None:
        return []
    label = "prompt"
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"Prompt file {path} does not exist.")
        label = f"prompt {path}"
    try:
        ids = list(
            tokenizer.encode_midi(source if not isinstance(source, (str, Path)) else path, timing=timing)
        )
    except ValueError as error:  # MidiTokenizationError is a ValueError
        raise ValueError(f"{label} is not a usable MIDI file: {' '.join(str(error).split())}") from error
    if not ids:
        raise ValueError(f"{label} has no piano notes (it is empty or holds drum notes only).")
    logger.info("%s: %d notes", label, len(ids) // 4)
    return ids


__all__ = ["load_prompt"]
