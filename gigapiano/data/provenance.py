"""``pieces.json``: the MAESTRO files behind each split, saved next to every trained model.

The file maps each split name to the sorted list of MAESTRO ``midi_filename``s it used, so the data of a
model is always known (and a later run can check it did not train on a test piece).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from datasets import Dataset, DatasetDict

PIECES_FILENAME = "pieces.json"


def pieces_by_split(data: DatasetDict | Mapping[str, Dataset | Sequence[str]]) -> dict[str, list[str]]:
    """Returns ``split -> sorted unique midi_filenames`` of a pieces or windows dataset.

    Args:
        data: A ``DatasetDict`` (or mapping of splits) whose datasets have a ``midi_filename`` column, or a
            mapping of split name to file names.

    Returns:
        The mapping, with each list sorted and free of duplicates (windows repeat their piece).
    """
    result = {}
    for split, content in data.items():
        if isinstance(content, Dataset):
            if "midi_filename" not in content.column_names:
                raise ValueError(
                    f"Split {split!r} has no `midi_filename` column (columns: {content.column_names}); pass "
                    "the pieces dataset from build_style_dataset."
                )
            names = content.with_format(None)["midi_filename"]
        else:
            names = list(content)
        result[str(split)] = sorted(set(names))
    return result


def save_pieces_json(
    data: DatasetDict | Mapping[str, Dataset | Sequence[str]],
    output_dir: str | os.PathLike,
    filename: str = PIECES_FILENAME,
) -> Path:
    """Writes ``pieces.json`` (split -> list of MAESTRO ``midi_filename``s) into ``output_dir``.

    Args:
        data: The pieces (or windows) ``DatasetDict``, or a mapping of split -> file names.
        output_dir: Folder to write into (created if needed), normally the training output folder.
        filename: File name.

    Returns:
        The path written.
    """
    splits = pieces_by_split(data)
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    path.write_text(json.dumps(splits, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def load_pieces_json(path: str | os.PathLike) -> dict[str, list[str]]:
    """Reads a ``pieces.json`` file or the one inside a folder.

    Args:
        path: The file, or a folder containing ``pieces.json``.

    Returns:
        ``split -> midi_filenames``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / PIECES_FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; it is written by save_pieces_json at training time.")
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ValueError(f"{path} is not a mapping of split -> list of midi_filenames.")
    return data
