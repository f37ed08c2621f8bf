"""Leak-free train/validation/test splits made by piece.

Upstream split the concatenated token stream of all pieces 90/10 with overlapping windows, so the
validation set shared pieces (and even windows) with training. Here every performance goes to exactly one
split, and by default all performances of the same composition go to the same split, so a model is never
validated on a piece it was trained on. Compositions are the groups of
:func:`~gigapiano.data.compositions.composition_groups` (catalogue numbers, enharmonic titles, shared
pitch runs) when given, else the folded composer and title. MAESTRO's own split is available too, made
composition-safe where MAESTRO itself spread a composition over two splits.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Mapping, Sequence
from typing import Literal

from .compositions import composition_safe_maestro_split
from .maestro import MAESTRO_SPLITS, MaestroPiece
from .styles import normalize_name

logger = logging.getLogger(__name__)

SplitBy = Literal["auto", "piece", "maestro"]
SPLIT_BY_CHOICES: tuple[str, ...] = ("auto", "piece", "maestro")


def resolve_split_by(split_by: str, selection: str | None) -> Literal["piece", "maestro"]:
    """The split mode that ``split_by`` means for a selection (``"thesis"`` or ``"all"``).

    ``"auto"`` is MAESTRO's own split (made composition-safe) for an ``"all"`` selection and the seeded
    split by piece for the thesis selection, whose 50 pieces per style MAESTRO's split would spread
    unevenly; ``"piece"`` and ``"maestro"`` stay as they are.
    """
    if split_by == "auto":
        return "maestro" if selection == "all" else "piece"
    if split_by == "maestro":
        return "maestro"
    if split_by == "piece":
        return "piece"
    raise ValueError(f"split_by={split_by!r} is invalid; use one of {list(SPLIT_BY_CHOICES)}.")


def composition_key(piece: MaestroPiece) -> str:
    """Returns the key grouping performances of one composition: folded composer and title.

    Titles are folded (case, accents, punctuation) so that spellings such as ``"Op. 22"`` and
    ``"op.22"`` agree; differently worded titles of the same work may still form separate groups.
    """
    title = re.sub(r"[^0-9a-z]+", " ", normalize_name(piece.title)).strip()
    return f"{normalize_name(piece.composer)}|{title}"


def _check_fractions(validation_fraction: float, test_fraction: float) -> None:
    for name, value in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name}={value} is out of range; use a fraction in [0, 1), e.g. 0.1.")
    if validation_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"validation_fraction + test_fraction = {validation_fraction + test_fraction} leaves no "
            "training pieces; make their sum smaller than 1."
        )


def _target(fraction: float, total: int) -> int:
    # At least one piece in a requested split whenever there are enough pieces to go round.
    count = round(fraction * total)
    return max(count, 1) if fraction > 0 and total >= 3 else count


def _check_grouped(pieces: Sequence[MaestroPiece], groups: Mapping[str, int]) -> None:
    missing = [p.midi_filename for p in pieces if p.midi_filename not in groups]
    if missing:
        raise ValueError(
            f"{len(missing)} performance(s) have no composition group, e.g. {missing[:3]}; compute `groups` "
            "over a catalogue that contains every piece (see gigapiano.data.compositions.composition_groups)."
        )


def split_pieces(
    pieces: Sequence[MaestroPiece],
    *,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 42,
    split_by: SplitBy = "piece",
    group_by_composition: bool = True,
    groups: Mapping[str, int] | None = None,
    catalogue: Sequence[MaestroPiece] | None = None,
) -> dict[str, list[MaestroPiece]]:
    """Assigns every performance to exactly one of ``train``, ``validation`` and ``test``.

    With ``split_by="piece"`` the groups (compositions, or single performances when
    ``group_by_composition=False``) are sorted by key, shuffled with ``random.Random(seed)`` and dealt
    to test, then validation, while that brings each closer to its share of performances; the rest is
    training. The
    result depends only on the pieces and the seed (not on their order), so it is stable across runs and
    machines. With ``split_by="maestro"`` MAESTRO's own ``split`` column is used (each group moved whole
    to one split when ``groups`` are given) and the fractions and seed are ignored. ``"auto"`` must be
    resolved first (:func:`resolve_split_by`).

    Args:
        pieces: The selected performances.
        validation_fraction: Share of performances for validation, in [0, 1).
        test_fraction: Share of performances for test, in [0, 1).
        seed: Split seed (keep it separate from the training seed).
        split_by: ``"piece"`` (seeded random split by piece) or ``"maestro"`` (MAESTRO's split column).
        group_by_composition: Keep all performances of one composition in the same split.
        groups: ``midi_filename -> composition group`` from
            :func:`~gigapiano.data.compositions.composition_groups` (catalogue numbers, enharmonic titles,
            shared pitch runs); without it the folded composer and title are the composition. With
            ``split_by="maestro"`` a group that MAESTRO spread over several splits moves whole (see
            :func:`~gigapiano.data.compositions.composition_safe_maestro_split`).
        catalogue: With ``split_by="maestro"`` and ``groups``, the performances whose MAESTRO splits decide
            where each group goes (default: ``pieces``). Pass the whole catalogue so that every selection
            (a style, the all-composer base) sends each composition to the same split; ``pieces`` must be
            part of it and ``groups`` must cover it.

    Returns:
        A mapping ``split -> pieces`` with all three keys, each list sorted by ``midi_filename``.
    """
    if split_by not in SPLIT_BY_CHOICES:
        raise ValueError(f"split_by={split_by!r} is invalid; use one of {list(SPLIT_BY_CHOICES)}.")
    _check_fractions(validation_fraction, test_fraction)
    names = [p.midi_filename for p in pieces]
    if len(set(names)) != len(names):
        duplicated = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"Pieces listed twice: {duplicated[:5]}; each midi_filename may appear once.")
    splits: dict[str, list[MaestroPiece]] = {name: [] for name in MAESTRO_SPLITS}
    if split_by == "auto":
        raise ValueError("split_by='auto' must be resolved to 'piece' or 'maestro' before splitting.")
    if split_by == "maestro":
        grouped = groups is not None and group_by_composition
        voters = list(catalogue) if grouped and catalogue is not None else list(pieces)
        for piece in voters:
            if piece.maestro_split not in splits:
                raise ValueError(
                    f"{piece.midi_filename} has MAESTRO split {piece.maestro_split!r}; expected one of "
                    f"{list(MAESTRO_SPLITS)}. Use split_by='piece' for this catalogue."
                )
        if groups is not None and group_by_composition:
            outside = sorted(set(names) - {p.midi_filename for p in voters})
            if outside:
                raise ValueError(f"Pieces missing from `catalogue`: {outside[:3]}; pass the whole catalogue.")
            _check_grouped(voters, groups)
            safe = composition_safe_maestro_split(voters, groups)
        else:
            safe = {p.midi_filename: p.maestro_split for p in pieces}
        for piece in pieces:
            splits[safe[piece.midi_filename]].append(piece)
    else:
        if groups is not None and group_by_composition:
            _check_grouped(pieces, groups)
        buckets: dict[str, list[MaestroPiece]] = {}
        for piece in pieces:
            if not group_by_composition:
                key = piece.midi_filename
            elif groups is not None:
                key = f"group{groups[piece.midi_filename]:06d}"
            else:
                key = composition_key(piece)
            buckets.setdefault(key, []).append(piece)
        order = sorted(buckets)
        random.Random(seed).shuffle(order)
        total = len(pieces)
        targets = {"test": _target(test_fraction, total), "validation": _target(validation_fraction, total)}
        for key in order:
            size, destination = len(buckets[key]), "train"
            for split in ("test", "validation"):
                gap = targets[split] - len(splits[split])
                # Take the group if that brings the split closer to its target (a big group may not fit).
                if gap > 0 and size < 2 * gap:
                    destination = split
                    break
            splits[destination].extend(buckets[key])
    for split, members in splits.items():
        members.sort(key=lambda p: p.midi_filename)
        if not members:
            logger.warning("Split %r is empty (%d pieces, split_by=%r).", split, len(pieces), split_by)
    return splits
