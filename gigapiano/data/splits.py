"""Leak-free train/validation/test splits made by piece.

Upstream split the concatenated token stream of all pieces 90/10 with overlapping windows, so the
validation set shared pieces (and even windows) with training. Here every performance goes to exactly one
split, and by default all performances of the same composition (same composer and title) go to the same
split, as MAESTRO's own split does, so a model is never validated on a piece it was trained on.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Sequence
from typing import Literal

from .maestro import MAESTRO_SPLITS, MaestroPiece
from .styles import normalize_name

logger = logging.getLogger(__name__)

SplitBy = Literal["piece", "maestro"]
SPLIT_BY_CHOICES: tuple[str, ...] = ("piece", "maestro")


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


def split_pieces(
    pieces: Sequence[MaestroPiece],
    *,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 42,
    split_by: SplitBy = "piece",
    group_by_composition: bool = True,
) -> dict[str, list[MaestroPiece]]:
    """Assigns every performance to exactly one of ``train``, ``validation`` and ``test``.

    With ``split_by="piece"`` the groups (compositions, or single performances when
    ``group_by_composition=False``) are sorted by key, shuffled with ``random.Random(seed)`` and dealt
    to test, then validation, while that brings each closer to its share of performances; the rest is
    training. The
    result depends only on the pieces and the seed (not on their order), so it is stable across runs and
    machines. With ``split_by="maestro"`` MAESTRO's own ``split`` column is used and the fractions and seed
    are ignored.

    Args:
        pieces: The selected performances.
        validation_fraction: Share of performances for validation, in [0, 1).
        test_fraction: Share of performances for test, in [0, 1).
        seed: Split seed (keep it separate from the training seed).
        split_by: ``"piece"`` (seeded random split by piece) or ``"maestro"`` (MAESTRO's split column).
        group_by_composition: Keep all performances of one composition in the same split.

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
    if split_by == "maestro":
        for piece in pieces:
            if piece.maestro_split not in splits:
                raise ValueError(
                    f"{piece.midi_filename} has MAESTRO split {piece.maestro_split!r}; expected one of "
                    f"{list(MAESTRO_SPLITS)}. Use split_by='piece' for this catalogue."
                )
            splits[piece.maestro_split].append(piece)
    else:
        groups: dict[str, list[MaestroPiece]] = {}
        for piece in pieces:
            key = composition_key(piece) if group_by_composition else piece.midi_filename
            groups.setdefault(key, []).append(piece)
        order = sorted(groups)
        random.Random(seed).shuffle(order)
        total = len(pieces)
        targets = {"test": _target(test_fraction, total), "validation": _target(validation_fraction, total)}
        for key in order:
            size, destination = len(groups[key]), "train"
            for split in ("test", "validation"):
                gap = targets[split] - len(splits[split])
                # Take the group if that brings the split closer to its target (a big group may not fit).
                if gap > 0 and size < 2 * gap:
                    destination = split
                    break
            splits[destination].extend(groups[key])
    for split, members in splits.items():
        members.sort(key=lambda p: p.midi_filename)
        if not members:
            logger.warning("Split %r is empty (%d pieces, split_by=%r).", split, len(pieces), split_by)
    return splits
