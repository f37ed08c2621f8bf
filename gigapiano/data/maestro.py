"""MAESTRO catalogue: read the CSV, pick a style's performances, check their MIDI files exist.

MAESTRO v3.0.0 (CC BY-NC-SA 4.0, Hawthorne et al., ICLR 2019) ships a folder ``maestro-v3.0.0/`` with
``maestro-v3.0.0.csv`` and one sub-folder per year holding the ``.midi`` files. The CSV columns are
``canonical_composer, canonical_title, split, year, midi_filename, audio_filename, duration``; one row is
one performance (the same composition may be performed several times).
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from .styles import GigaPianoStyle, normalize_name

logger = logging.getLogger(__name__)

MAESTRO_VERSION = "v3.0.0"
MAESTRO_CSV_NAME = f"maestro-{MAESTRO_VERSION}.csv"
MAESTRO_SPLITS: tuple[str, ...] = ("train", "validation", "test")
REQUIRED_COLUMNS: tuple[str, ...] = (
    "canonical_composer",
    "canonical_title",
    "split",
    "year",
    "midi_filename",
    "duration",
)

OnMissing = Literal["error", "skip"]

#: A style's `composers` entry that selects every performance of the catalogue.
ALL_COMPOSERS = "*"


class NoPiecesError(ValueError):
    """Raised when a selection is empty: an unknown composer, or nothing left after filtering."""


class MissingMidiFilesError(FileNotFoundError):
    """Raised when MIDI files listed in the MAESTRO CSV are not on disk.

    Attributes:
        missing: The ``midi_filename``s that were not found.
    """

    def __init__(self, message: str, missing: Sequence[str]):
        super().__init__(message)
        self.missing = list(missing)


@dataclasses.dataclass(frozen=True)
class MaestroPiece:
    """One MAESTRO performance (one CSV row).

    Args:
        composer: ``canonical_composer``.
        title: ``canonical_title``.
        maestro_split: MAESTRO's own split (``train``/``validation``/``test``).
        year: Competition year.
        midi_filename: Path relative to the MAESTRO root, e.g. ``2004/MIDI-....midi``.
        duration: Length in seconds, from the CSV.
    """

    composer: str
    title: str
    maestro_split: str
    year: int
    midi_filename: str
    duration: float

    def to_row(self) -> dict[str, object]:
        """Returns the piece as a ``datasets`` row (column order of the pieces dataset)."""
        return {
            "composer": self.composer,
            "title": self.title,
            "year": self.year,
            "maestro_split": self.maestro_split,
            "midi_filename": self.midi_filename,
            "duration": self.duration,
        }


def find_maestro_root(path: str | os.PathLike) -> Path:
    """Finds the MAESTRO root (the folder holding the CSV and the year folders).

    Accepts the root itself or its parent (the folder a zip was extracted into).

    Args:
        path: ``.../maestro-v3.0.0`` or the folder containing it.

    Returns:
        The root folder.

    Raises:
        FileNotFoundError: Neither ``path`` nor ``path/maestro-v3.0.0`` holds ``maestro-v3.0.0.csv``.
    """
    path = Path(path).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"MAESTRO folder {path} does not exist; pass --maestro_dir pointing at an extracted "
            f"maestro-{MAESTRO_VERSION} folder, or omit it to download MAESTRO into the cache."
        )
    for candidate in (path, path / f"maestro-{MAESTRO_VERSION}"):
        if (candidate / MAESTRO_CSV_NAME).is_file():
            return candidate
    raise FileNotFoundError(
        f"No {MAESTRO_CSV_NAME} in {path} (nor in {path / f'maestro-{MAESTRO_VERSION}'}); --maestro_dir "
        f"must be the extracted MAESTRO {MAESTRO_VERSION} folder with the CSV and the year folders."
    )


def read_maestro_csv(path: str | os.PathLike) -> list[MaestroPiece]:
    """Reads the MAESTRO catalogue.

    Args:
        path: The CSV file, or a MAESTRO root (see :func:`find_maestro_root`).

    Returns:
        One :class:`MaestroPiece` per row, in file order.

    Raises:
        ValueError: A required column is missing or a row has an unparsable year/duration.
    """
    path = Path(path)
    csv_path = path if path.is_file() else find_maestro_root(path) / MAESTRO_CSV_NAME
    with csv_path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing_columns = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing_columns:
            raise ValueError(
                f"{csv_path} lacks the MAESTRO columns {missing_columns}; is it the MAESTRO "
                f"{MAESTRO_VERSION} CSV?"
            )
        pieces = []
        for line_number, row in enumerate(reader, start=2):
            try:
                pieces.append(
                    MaestroPiece(
                        composer=row["canonical_composer"].strip(),
                        title=row["canonical_title"].strip(),
                        maestro_split=row["split"].strip(),
                        year=int(row["year"]),
                        midi_filename=row["midi_filename"].strip(),
                        duration=float(row["duration"]),
                    )
                )
            except (TypeError, ValueError) as error:
                raise ValueError(
                    f"{csv_path}, line {line_number}: cannot parse row {row!r} ({error})."
                ) from error
    return pieces


def _credited_composers(composer: str) -> list[str]:
    # MAESTRO credits arrangements as "Composer / Arranger" (e.g. "Johann Sebastian Bach / Ferruccio Busoni").
    return [normalize_name(part) for part in composer.split("/")]


def select_pieces(catalogue: Iterable[MaestroPiece], style: GigaPianoStyle) -> list[MaestroPiece]:
    """Picks the style's performances from the catalogue.

    ``pieces="thesis"`` returns exactly ``style.thesis_pieces``; ``pieces="all"`` returns every row (for
    the composer ``"*"``) or every row whose
    composer equals one of ``style.composers`` (ignoring case and accents; with ``include_arrangements``
    also rows where it is one of the ``/``-separated credits).

    Args:
        catalogue: The rows of :func:`read_maestro_csv`.
        style: The style.

    Returns:
        The selected pieces, sorted by ``midi_filename`` (so results do not depend on CSV order).

    Raises:
        NoPiecesError: A composer matches no row (the message suggests close names), a thesis piece is not
            in the catalogue, or the selection is empty.
    """
    catalogue = list(catalogue)
    if style.pieces == "thesis":
        by_file = {p.midi_filename: p for p in catalogue}
        absent = [f for f in style.thesis_pieces if f not in by_file]
        if absent:
            raise NoPiecesError(
                f"{len(absent)} of the {len(style.thesis_pieces)} thesis pieces of style {style.name!r} are "
                f"not in the MAESTRO CSV, e.g. {absent[:3]}. Point --maestro_dir at MAESTRO "
                f"{MAESTRO_VERSION} (the full catalogue or the shared subset), or select pieces='all'."
            )
        selected = [by_file[f] for f in style.thesis_pieces]
        wanted = {normalize_name(c) for c in style.composers}
        foreign = [p.midi_filename for p in selected if not wanted & set(_credited_composers(p.composer))]
        if foreign:
            logger.warning(
                "Style %r lists %d thesis pieces by other composers than %s, e.g. %s.",
                style.name,
                len(foreign),
                list(style.composers),
                foreign[:3],
            )
    else:
        selected = []
        if ALL_COMPOSERS in style.composers:  # the all-composer style of the base model
            selected = list(catalogue)
        for composer in (c for c in style.composers if c != ALL_COMPOSERS):
            key = normalize_name(composer)
            if style.include_arrangements:
                matches = [p for p in catalogue if key in _credited_composers(p.composer)]
            else:
                matches = [p for p in catalogue if normalize_name(p.composer) == key]
            if not matches:
                known = sorted({p.composer for p in catalogue})
                close = difflib.get_close_matches(composer, known, n=3, cutoff=0.5)
                hint = f" Close MAESTRO names: {close}." if close else ""
                raise NoPiecesError(
                    f"Composer {composer!r} (style {style.name!r}) has no pieces in the MAESTRO CSV "
                    f"({len(catalogue)} rows).{hint} Use the exact `canonical_composer` spelling of the CSV."
                )
            selected.extend(matches)
    unique = {p.midi_filename: p for p in selected}
    if not unique:
        raise NoPiecesError(
            f"Style {style.name!r} selects no pieces; check its composers and pieces setting."
        )
    return sorted(unique.values(), key=lambda p: p.midi_filename)


def check_midi_files(
    root: str | os.PathLike, pieces: Sequence[MaestroPiece], on_missing: OnMissing = "error"
) -> list[MaestroPiece]:
    """Checks that every selected MIDI file exists under the MAESTRO root.

    Args:
        root: MAESTRO root folder.
        pieces: The selection.
        on_missing: ``"error"`` raises; ``"skip"`` logs a warning naming the files and drops them.

    Returns:
        The pieces whose file exists.

    Raises:
        MissingMidiFilesError: Files are missing and ``on_missing="error"``.
        NoPiecesError: Every file is missing.
    """
    if on_missing not in ("error", "skip"):
        raise ValueError(f"on_missing={on_missing!r} is invalid; use 'error' or 'skip'.")
    root = Path(root)
    present, missing = [], []
    for piece in pieces:
        (present if (root / piece.midi_filename).is_file() else missing).append(piece)
    if missing:
        names = [p.midi_filename for p in missing]
        listing = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        if on_missing == "error":
            raise MissingMidiFilesError(
                f"{len(names)} MIDI file(s) listed in the MAESTRO CSV are missing under {root}: {listing}. "
                "Re-extract or re-download MAESTRO, or pass --skip_missing to leave them out.",
                names,
            )
        logger.warning("Skipping %d MIDI file(s) missing under %s: %s", len(names), root, listing)
    if not present:
        raise NoPiecesError(
            f"None of the {len(pieces)} selected MIDI files exist under {root}; check --maestro_dir."
        )
    return present
