"""Which MAESTRO performances are the same composition, so no split ever shares one.

MAESTRO's titles are typed by hand: one work appears as "Prelude and Fugue in C-sharp Major, WTC I",
"... in D-flat Major, WTC I, BWV 848" and "Prelude and Fugue in C-sharp Major, BWV 848"; complete sets
("Moments Musicaux, Op. 16") contain single numbers performed elsewhere; and a few catalogue numbers are
simply wrong. Three kinds of evidence link two performances of the same credited composer:

1. the folded title with enharmonic key names made equal (C-sharp major = D-flat major);
2. a shared catalogue number: BWV / K. / D. / S. / Hob. numbers, and "Op. N" with its "No. M" items
   (an opus without item numbers stands for the whole set and links to all its items);
3. the notes themselves: performances sharing at least :data:`MIN_SHARED_RUNS` distinct runs of
   :data:`RUN_LENGTH` identical consecutive pitches (runs with fewer than 5 different pitches or 4
   different intervals, such as trills, scales and arpeggios, and runs common to many pieces, such as
   scales, do not count).

Linked performances form one group (union-find); :func:`composition_groups` returns a group id per file.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from .maestro import MaestroPiece
from .styles import normalize_name

logger = logging.getLogger(__name__)

#: Length of the identical pitch runs compared between performances.
RUN_LENGTH = 16
#: Distinct shared runs that make two performances one composition.
MIN_SHARED_RUNS = 4
#: A run found in more performances than this is a commonplace (a scale), not evidence.
MAX_RUN_SPREAD = 12

_PITCH_CLASS = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_KEY_NAME = re.compile(
    r"\b([a-g])(?:[\s-]*(sharp|flat|dur|moll|is|es|#|b(?=\s)))?\s*[- ]?\s*(major|minor|dur|moll)\b"
)


def _key_token(match: re.Match) -> str:
    letter, accidental, mode = match.group(1), match.group(2) or "", match.group(3)
    pitch = _PITCH_CLASS[letter] + {"sharp": 1, "#": 1, "is": 1, "flat": -1, "b": -1, "es": -1}.get(
        accidental, 0
    )
    minor = mode in ("minor", "moll")
    return f" key{pitch % 12}{'m' if minor else 'M'} "


def folded_title(title: str) -> str:
    """The title folded for comparison: accents, case and punctuation gone, key names as pitch classes.

    ``"Prelude and Fugue in C-sharp Major"`` and ``"Prelude and Fugue in D-flat major"`` fold alike.
    """
    text = normalize_name(title)
    text = _KEY_NAME.sub(_key_token, text)
    return re.sub(r"[^0-9a-z]+", " ", text).strip()


def _credits(composer: str) -> list[str]:
    # "Johann Sebastian Bach / Ferruccio Busoni": an arrangement shares the original's compositions.
    return [normalize_name(part) for part in composer.split("/") if part.strip()]


_CATALOGUE = re.compile(r"\b(bwv|k|kv|d|s|hob|l|woo)\.?\s*([0-9]+[a-z]?)\b")
_OPUS = re.compile(r"\bop(?:us)?\.?\s*([0-9]+)")
_NUMBERS = re.compile(r"\bnos?\.?\s*([0-9]+(?:\s*(?:,|and|&)\s*[0-9]+)*)")


def catalogue_numbers(title: str) -> tuple[list[str], list[str]]:
    """Catalogue references of a title.

    Returns:
        ``(items, sets)``: exact references (``"bwv848"``, ``"op23.4"``) and whole-opus references
        (``"op16"`` for "Moments Musicaux, Op. 16") that stand for every item of the opus.
    """
    text = normalize_name(title).replace("opus", "op.")
    items = [f"{kind.replace('kv', 'k')}{number}" for kind, number in _CATALOGUE.findall(text)]
    sets: list[str] = []
    for opus_match in _OPUS.finditer(text):
        opus = opus_match.group(1)
        rest = text[opus_match.end() :]
        slash = re.match(r"\s*/\s*([0-9]+)", rest)
        numbers = _NUMBERS.match(rest.lstrip(" ,"))
        if slash:
            items.append(f"op{opus}.{slash.group(1)}")
        elif numbers:
            items.extend(f"op{opus}.{n}" for n in re.findall(r"[0-9]+", numbers.group(1)))
        else:
            sets.append(f"op{opus}")
    return items, sets


class _UnionFind:
    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def pitch_runs(ids: Sequence[int], length: int = RUN_LENGTH) -> np.ndarray:
    """Hashes of every run of ``length`` consecutive pitches with at least 4 different pitches."""
    pitches = np.asarray(ids, dtype=np.int64)[3::4]
    if len(pitches) < length:
        return np.empty(0, dtype=np.int64)
    windows = np.lib.stride_tricks.sliding_window_view(pitches, length)
    distinct_pitches = (np.diff(np.sort(windows, axis=1), axis=1) != 0).sum(axis=1) + 1
    steps = np.sort(np.diff(windows, axis=1), axis=1)
    distinct_steps = (np.diff(steps, axis=1) != 0).sum(axis=1) + 1
    # scales, arpeggios and trills recur across works: only varied melodic runs are evidence
    varied = (distinct_pitches >= 5) & (distinct_steps >= 4)
    powers = np.int64(1000003) ** np.arange(length, dtype=np.int64)  # wraps: a hash, not a number
    return np.unique((windows[varied] * powers).sum(axis=1))


def composition_groups(
    pieces: Sequence[MaestroPiece], token_ids: Mapping[str, Sequence[int]] | None = None
) -> dict[str, int]:
    """Groups performances of one composition (see the module docstring for the evidence used).

    Args:
        pieces: Performances, typically the whole MAESTRO catalogue (groups must not depend on a style).
        token_ids: ``midi_filename -> token ids``; enables the shared-pitch-run evidence.

    Returns:
        ``midi_filename -> group id``; ids are the index (in ``pieces`` sorted by file name) of the
        group's first member, so they are stable for a given catalogue.
    """
    pieces = sorted(pieces, key=lambda p: p.midi_filename)
    union = _UnionFind(len(pieces))
    by_key: dict[str, int] = {}
    opus_sets: dict[str, list[int]] = defaultdict(list)
    opus_items: dict[str, list[int]] = defaultdict(list)
    for index, piece in enumerate(pieces):
        for composer in _credits(piece.composer):
            keys = [f"{composer}|title|{folded_title(piece.title)}"]
            items, sets = catalogue_numbers(piece.title)
            keys += [f"{composer}|{item}" for item in items]
            for key in keys:
                if key in by_key:
                    union.union(by_key[key], index)
                else:
                    by_key[key] = index
            for item in items:
                if item.startswith("op"):
                    opus_items[f"{composer}|{item.split('.')[0]}"].append(index)
            for opus in sets:
                opus_sets[f"{composer}|{opus}"].append(index)
    for key, members in opus_sets.items():
        for index in members[1:] + opus_items.get(key, []):
            union.union(members[0], index)

    if token_ids:
        _link_by_pitch_runs(pieces, token_ids, union)
    return {piece.midi_filename: union.find(i) for i, piece in enumerate(pieces)}


def _link_by_pitch_runs(
    pieces: Sequence[MaestroPiece], token_ids: Mapping[str, Sequence[int]], union: _UnionFind
) -> None:
    by_composer: dict[str, list[int]] = defaultdict(list)
    for index, piece in enumerate(pieces):
        if piece.midi_filename in token_ids:
            for composer in _credits(piece.composer):
                by_composer[composer].append(index)
    credited = {i for members in by_composer.values() for i in members}  # arrangements: once, not twice
    runs = {i: pitch_runs(token_ids[pieces[i].midi_filename]) for i in credited}
    linked = 0
    for members in by_composer.values():
        if len(members) < 2:
            continue
        hashes = np.concatenate([runs[i] for i in members])
        owners = np.concatenate([np.full(len(runs[i]), i) for i in members])
        order = np.argsort(hashes, kind="stable")
        hashes, owners = hashes[order], owners[order]
        starts = np.flatnonzero(np.r_[True, hashes[1:] != hashes[:-1]])
        counts = np.diff(np.r_[starts, len(hashes)])
        shared: dict[tuple[int, int], int] = defaultdict(int)
        for start, count in zip(starts[counts > 1], counts[counts > 1], strict=True):
            if count > MAX_RUN_SPREAD:
                continue
            holders = sorted(set(owners[start : start + count].tolist()))
            for a_pos, a in enumerate(holders):
                for b in holders[a_pos + 1 :]:
                    shared[(a, b)] += 1
        for (a, b), count in shared.items():
            if count >= MIN_SHARED_RUNS and union.find(a) != union.find(b):
                union.union(a, b)
                linked += 1
    logger.info("Shared pitch runs linked %d pairs of performances into one composition.", linked)


def composition_safe_maestro_split(
    pieces: Sequence[MaestroPiece], groups: Mapping[str, int]
) -> dict[str, str]:
    """MAESTRO's own split, corrected so that every composition group lies in one split.

    A group whose performances MAESTRO put in several splits moves whole to the split holding most of
    them (ties go to the more held-out split: test, then validation).

    Returns:
        ``midi_filename -> split``.
    """
    members: dict[int, list[MaestroPiece]] = defaultdict(list)
    for piece in pieces:
        members[groups[piece.midi_filename]].append(piece)
    preference = {"test": 2, "validation": 1, "train": 0}
    assignment: dict[str, str] = {}
    moved = 0
    for group in members.values():
        votes: dict[str, int] = defaultdict(int)
        for piece in group:
            votes[piece.maestro_split] += 1
        chosen = max(votes, key=lambda split: (votes[split], preference.get(split, -1)))
        for piece in group:
            assignment[piece.midi_filename] = chosen
            moved += piece.maestro_split != chosen
    if moved:
        logger.info("Moved %d performances so that no composition spans two MAESTRO splits.", moved)
    return assignment
