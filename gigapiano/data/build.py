"""Build a style's pieces as a ``datasets.DatasetDict``: select, tokenise (cached), split by piece.

Each row is one MAESTRO performance: ``composer, title, year, maestro_split, midi_filename, duration,
input_ids``. Tokenisation runs through ``Dataset.map`` into an Arrow cache file whose name is a
``datasets`` fingerprint of the selected files (name, size, modification time), the timing mode and the
tokenizer (class, settings and source files), so a second run with the same inputs loads it instantly and
any change re-tokenises. Splitting happens after tokenisation, so changing the split seed or fractions
never re-tokenises.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict, Features, List, Value
from datasets.fingerprint import Hasher

from .compositions import composition_groups
from .download import default_cache_dir, resolve_maestro_root
from .maestro import (
    MAESTRO_SPLITS,
    MaestroPiece,
    NoPiecesError,
    OnMissing,
    check_midi_files,
    read_maestro_csv,
    select_pieces,
)
from .splits import SplitBy, resolve_split_by, split_pieces
from .styles import GigaPianoStyle, PieceSelection, load_style

logger = logging.getLogger(__name__)

#: Bump when the layout of the cached tokenised table changes.
_CACHE_FORMAT = 1

METADATA_FEATURES = Features(
    {
        "composer": Value("string"),
        "title": Value("string"),
        "year": Value("int32"),
        "maestro_split": Value("string"),
        "midi_filename": Value("string"),
        "duration": Value("float64"),
    }
)
#: Columns of the pieces dataset. Token ids fit in int16 (vocabulary 0..127), which keeps the cache small;
#: the windows made for training are int64.
PIECE_FEATURES = Features({**METADATA_FEATURES, "input_ids": List(Value("int16"))})
_ERROR_COLUMN = "tokenization_error"


def default_tokenizer() -> Any:
    """Returns the project's ``GigaPianoTokenizer`` (imported lazily: the data package works without it)."""
    try:
        from tokenization import GigaPianoTokenizer
    except ImportError as error:
        raise ImportError(
            "gigapiano.data needs the project's `tokenization` package to tokenise MIDI; run from the "
            "repository root or install the project (pip install -e .), or pass tokenizer=..."
        ) from error
    return GigaPianoTokenizer()


def check_timing(tokenizer: Any, timing: str) -> None:
    """Rejects a timing mode the project's tokenizer does not know, before any file is read.

    Other tokenizer objects are trusted to validate ``timing`` themselves.
    """
    if not type(tokenizer).__module__.startswith("tokenization"):
        return
    from tokenization import TIMING_MODES

    if timing not in TIMING_MODES:
        raise ValueError(
            f"--timing {timing!r} is not a tokenizer timing mode; use one of {list(TIMING_MODES)}."
        )


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Fingerprints a tokenizer for the cache key: class, simple settings and its package's source files.

    Hashing the source means a fix in the tokenizer invalidates cached token ids automatically.
    """
    cls = type(tokenizer)
    parts: list[Any] = [cls.__module__, cls.__qualname__]
    settings = {
        key: value
        for key, value in sorted(getattr(tokenizer, "__dict__", {}).items())
        if isinstance(value, (bool, int, float, str, type(None)))
    }
    parts.append(settings)
    try:
        source = Path(inspect.getfile(cls))
        in_package = source.parent.joinpath("__init__.py").is_file()
        files = sorted(source.parent.glob("*.py")) if in_package else [source]
        digest = hashlib.sha256()
        for file in files:
            digest.update(file.name.encode())
            digest.update(file.read_bytes())
        parts.append(digest.hexdigest())
    except (TypeError, OSError):
        logger.warning("Cannot read the source of %s; its code changes will not invalidate the cache.", cls)
    return Hasher.hash(parts)


def _tokenize_batch(batch: dict[str, list], tokenizer: Any, root: str, timing: str) -> dict[str, list]:
    ids_column, errors = [], []
    for name in batch["midi_filename"]:
        try:
            ids = tokenizer.encode_midi(os.path.join(root, name), timing=timing)
            error = ""
        except Exception as exc:  # any failure is reported by file name after the map, never swallowed
            ids, error = [], f"{type(exc).__name__}: {exc}"
        ids_column.append(ids)
        errors.append(error)
    return {"input_ids": ids_column, _ERROR_COLUMN: errors}


def tokenize_pieces(
    pieces: Sequence[MaestroPiece],
    maestro_root: str | os.PathLike,
    *,
    tokenizer: Any | None = None,
    timing: str = "upstream",
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    num_proc: int | None = None,
    on_missing: OnMissing = "error",
) -> Dataset:
    """Tokenises the pieces' MIDI files into a dataset with one row per piece.

    Args:
        pieces: The selection (see :func:`~gigapiano.data.maestro.select_pieces`).
        maestro_root: MAESTRO root folder the ``midi_filename``s are relative to.
        tokenizer: An object with ``encode_midi(path, timing=...)``; defaults to ``GigaPianoTokenizer()``.
        timing: Timing mode passed to the tokenizer (``"upstream"`` = what the pretrained weights saw).
        cache_dir: Cache root; tokenised tables go to ``<cache_dir>/tokenized``. Defaults to
            ``$HF_HOME/gigapiano``.
        use_cache: Read and write the cache (``False`` tokenises in memory).
        num_proc: Worker processes (worth it for ``pieces: all``); reuse the same value to hit the cache.
        on_missing: For files that fail to tokenise: ``"error"`` raises naming them, ``"skip"`` warns and
            drops them.

    Returns:
        A ``Dataset`` with :data:`PIECE_FEATURES`, ordered like ``pieces``.
    """
    if not pieces:
        raise NoPiecesError("No pieces to tokenise; the selection is empty.")
    tokenizer = default_tokenizer() if tokenizer is None else tokenizer
    check_timing(tokenizer, timing)
    root = Path(maestro_root).resolve()
    rows = [piece.to_row() for piece in pieces]
    table = Dataset.from_list(rows, features=METADATA_FEATURES)
    file_stats = []
    for piece in pieces:
        stat = (root / piece.midi_filename).stat()
        file_stats.append((piece.midi_filename, stat.st_size, stat.st_mtime_ns))
    key = Hasher.hash([_CACHE_FORMAT, rows, file_stats, timing, tokenizer_fingerprint(tokenizer)])
    cache_file = None
    if use_cache:
        folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        (folder / "tokenized").mkdir(parents=True, exist_ok=True)
        cache_file = str(folder / "tokenized" / f"pieces-{key}.arrow")
    workers = num_proc if num_proc and num_proc > 1 and len(pieces) > 1 else None
    tokenized = table.map(
        _tokenize_batch,
        batched=True,
        batch_size=4,
        fn_kwargs={"tokenizer": tokenizer, "root": str(root), "timing": timing},
        features=Features({**PIECE_FEATURES, _ERROR_COLUMN: Value("string")}),
        cache_file_name=cache_file,
        load_from_cache_file=use_cache,
        keep_in_memory=not use_cache,
        new_fingerprint=key,
        num_proc=workers,
        desc=f"Tokenising {len(pieces)} MIDI files",
    )
    errors = [
        (name, error)
        for name, error in zip(tokenized["midi_filename"], tokenized[_ERROR_COLUMN], strict=True)
        if error
    ]
    if errors:
        listing = "; ".join(f"{name} ({error})" for name, error in errors[:5])
        more = f" and {len(errors) - 5} more" if len(errors) > 5 else ""
        if on_missing == "error":
            raise ValueError(
                f"{len(errors)} MIDI file(s) could not be tokenised: {listing}{more}. Replace the files, or "
                "pass --skip_missing to leave them out."
            )
        logger.warning(
            "Skipping %d MIDI file(s) that could not be tokenised: %s%s", len(errors), listing, more
        )
        bad = {name for name, _ in errors}
        keep = [i for i, name in enumerate(tokenized["midi_filename"]) if name not in bad]
        if not keep:
            raise NoPiecesError("None of the selected MIDI files could be tokenised; see the warnings above.")
        tokenized = tokenized.select(keep)
    return tokenized.remove_columns(_ERROR_COLUMN)


#: Composition groups already found in this process (building several styles finds them once).
_GROUPS_MEMO: dict[str, dict[str, int]] = {}


def catalogue_groups(
    catalogue: Sequence[MaestroPiece],
    maestro_root: str | os.PathLike,
    *,
    tokenizer: Any | None = None,
    timing: str = "upstream",
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    num_proc: int | None = None,
) -> dict[str, int]:
    """Composition groups over the whole catalogue (every performance on disk), titles and notes both.

    The groups depend only on the catalogue, never on the style being built, so every style's split and
    the all-composer base's split keep each composition on the same side. The catalogue's tokenisation is
    cached like a style's (pass the same ``num_proc`` to hit the cache), and the groups are kept in memory
    for further builds in the same process.
    """
    root = Path(maestro_root)
    present = [piece for piece in catalogue if (root / piece.midi_filename).is_file()]
    table = None
    if present:
        table = tokenize_pieces(
            present,
            root,
            tokenizer=tokenizer,
            timing=timing,
            cache_dir=cache_dir,
            use_cache=use_cache,
            num_proc=num_proc,
            on_missing="skip",
        )
    # The table's fingerprint covers the files, the tokenizer and the timing; the rows cover the titles.
    key = Hasher.hash([[piece.to_row() for piece in catalogue], table._fingerprint if table else None])
    if key not in _GROUPS_MEMO:
        token_ids: dict[str, Sequence[int]] = {}
        if table is not None:
            ids = table.with_format("numpy")["input_ids"]  # arrays: no conversion to Python ints
            token_ids = dict(zip(table["midi_filename"], ids, strict=True))
        if len(_GROUPS_MEMO) >= 4:
            _GROUPS_MEMO.pop(next(iter(_GROUPS_MEMO)))
        _GROUPS_MEMO[key] = composition_groups(catalogue, token_ids)
    return dict(_GROUPS_MEMO[key])


def resolve_style(
    style: str | os.PathLike | GigaPianoStyle | None = "baroque",
    *,
    composers: Sequence[str] | None = None,
    pieces: PieceSelection | None = None,
    styles_dir: str | os.PathLike | None = None,
) -> GigaPianoStyle:
    """Returns the style to build: ad-hoc from ``composers`` if given, else ``style`` by name/path.

    Args:
        style: Style name, YAML path or object (ignored when ``composers`` is given).
        composers: Composer names for an ad-hoc style (every piece of theirs).
        pieces: Override the style's default selection (``"thesis"`` or ``"all"``).
        styles_dir: Where named styles are looked up.

    Returns:
        The style.
    """
    if composers:
        if isinstance(style, GigaPianoStyle):
            name = style.name
        elif style is not None and not Path(os.fspath(style)).suffix:
            name = os.fspath(style)
        else:
            name = None
        resolved = GigaPianoStyle.from_composers(composers, name=name)
    elif style is None:
        raise ValueError("Give a style (e.g. --style baroque) or at least one --composer.")
    else:
        resolved = load_style(style, styles_dir)
    return resolved.with_pieces(pieces)


def build_style_dataset(
    style: str | os.PathLike | GigaPianoStyle | None = "baroque",
    *,
    composers: Sequence[str] | None = None,
    pieces: PieceSelection | None = None,
    maestro_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    allow_download: bool = True,
    split_by: SplitBy = "auto",
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 42,
    group_by_composition: bool = True,
    on_missing: OnMissing = "error",
    timing: str = "upstream",
    tokenizer: Any | None = None,
    num_proc: int | None = None,
    use_cache: bool = True,
    styles_dir: str | os.PathLike | None = None,
    download_options: dict[str, Any] | None = None,
) -> DatasetDict:
    """Returns a style's MAESTRO pieces, tokenised and split by piece into train/validation/test.

    Args:
        style: Style name (``configs/styles/<name>.yaml``), YAML path, or :class:`GigaPianoStyle`.
        composers: Build an ad-hoc style of all pieces by these composers instead (e.g. ``["Franz Liszt"]``).
        pieces: Override the style's selection: ``"thesis"`` (upstream's 50) or ``"all"``.
        maestro_dir: Extracted MAESTRO folder; when ``None`` MAESTRO is downloaded into the cache once.
        cache_dir: Cache root for the download and the tokenised tables (default ``$HF_HOME/gigapiano``).
        allow_download: Permit downloading MAESTRO when ``maestro_dir`` is ``None`` and nothing is cached.
        split_by: ``"piece"`` (seeded split by composition), ``"maestro"`` (MAESTRO's split column, made
            composition-safe) or ``"auto"``: MAESTRO's split for ``pieces: all`` selections, the seeded
            split for the thesis selection (whose 50 pieces MAESTRO's split would spread unevenly).
        validation_fraction: Share of performances for validation (``split_by="piece"``).
        test_fraction: Share of performances for test (``split_by="piece"``).
        seed: Split seed.
        group_by_composition: Keep all performances of a composition in one split; compositions are found
            over the whole catalogue (see :mod:`gigapiano.data.compositions`), so splits of different
            styles and of an all-composer base agree.
        on_missing: Missing or unreadable MIDI files: ``"error"`` (default) or ``"skip"`` with a warning.
        timing: Tokenizer timing mode.
        tokenizer: Tokenizer object; defaults to ``GigaPianoTokenizer()``.
        num_proc: Worker processes for tokenisation.
        use_cache: Cache tokenisation on disk.
        styles_dir: Where named styles are looked up.
        download_options: Passed to the MAESTRO download (``timeout``, ``deadline``, ``max_retries``).

    Returns:
        ``DatasetDict`` with ``train``, ``validation`` and ``test`` (columns of :data:`PIECE_FEATURES`);
        no performance (and, by default, no composition) appears in two splits.
    """
    resolved = resolve_style(style, composers=composers, pieces=pieces, styles_dir=styles_dir)
    root = resolve_maestro_root(
        maestro_dir, cache_dir=cache_dir, allow_download=allow_download, **(download_options or {})
    )
    catalogue = read_maestro_csv(root)
    selected = select_pieces(catalogue, resolved)
    selected = check_midi_files(root, selected, on_missing)
    logger.info(
        "Style %r (%s): %d pieces selected from %s.", resolved.name, resolved.pieces, len(selected), root
    )
    tokenized = tokenize_pieces(
        selected,
        root,
        tokenizer=tokenizer,
        timing=timing,
        cache_dir=cache_dir,
        use_cache=use_cache,
        num_proc=num_proc,
        on_missing=on_missing,
    )
    index = {name: i for i, name in enumerate(tokenized["midi_filename"])}
    kept = [piece for piece in selected if piece.midi_filename in index]
    split_by = resolve_split_by(split_by, resolved.pieces)
    groups = None
    if group_by_composition:
        groups = catalogue_groups(
            catalogue,
            root,
            tokenizer=tokenizer,
            timing=timing,
            cache_dir=cache_dir,
            use_cache=use_cache,
            num_proc=num_proc,
        )
    assignment = split_pieces(
        kept,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        seed=seed,
        split_by=split_by,
        group_by_composition=group_by_composition,
        groups=groups,
        catalogue=catalogue,
    )
    result = DatasetDict(
        {
            split: tokenized.select([index[p.midi_filename] for p in assignment[split]])
            for split in MAESTRO_SPLITS
        }
    )
    logger.info(
        "Style %r split by %s: %s pieces.",
        resolved.name,
        split_by,
        ", ".join(f"{split} {len(ds)}" for split, ds in result.items()),
    )
    return result
