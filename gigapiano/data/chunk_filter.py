"""The upstream chunk filter, reproduced exactly (optional when making training windows).

Upstream cut every file with at least 256 notes into consecutive, non-overlapping 256-note chunks
(dropping the tail) and kept a chunk only when, in this order:

1. it has more than ``repmin`` (54) distinct notes, where a note is the whole ``(dt, dur, pitch)`` triple
   (so a chunk of 54 distinct triples is dropped as repetitive and one of 55 is kept, whatever the number
   of distinct pitches);
2. some note has ``dt == 0``, i.e. the chunk contains a chord (pure melodies are dropped);
3. the sum of its ``dt`` values lies strictly between ``clen`` and ``100 * clen`` (256 < sum < 25600, in
   16 ms steps: neither implausibly fast nor slow).

The functions here take token ids (``[127, dt, dur, pitch]`` per note) or note triples.
"""

from __future__ import annotations

from collections.abc import Sequence

SEP_ID = 127
TOKENS_PER_NOTE = 4
UPSTREAM_CHUNK_NOTES = 256
UPSTREAM_REPMIN = 54

#: Reasons in the order upstream tests them (the first failing one is reported).
FILTER_REASONS: tuple[str, ...] = ("repetitive", "no_zero_time", "too_fast_or_slow")


def ids_to_triples(ids: Sequence[int]) -> list[tuple[int, int, int]]:
    """Splits well-formed token ids into ``(dt, dur, pitch)`` triples.

    Args:
        ids: Token ids, a multiple of 4 long, with 127 at every 4th position starting at 0.

    Returns:
        One triple per note.

    Raises:
        ValueError: The ids are not whole ``[127, dt, dur, pitch]`` groups.
    """
    if len(ids) % TOKENS_PER_NOTE:
        raise ValueError(
            f"{len(ids)} token ids are not whole notes; expected a multiple of {TOKENS_PER_NOTE}."
        )
    separators = ids[0::TOKENS_PER_NOTE]
    if any(token != SEP_ID for token in separators):
        position = next(i for i, token in enumerate(separators) if token != SEP_ID) * TOKENS_PER_NOTE
        raise ValueError(
            f"Token {position} is {ids[position]}, expected the note separator {SEP_ID}; the ids must be "
            "[127, dt, dur, pitch] groups."
        )
    return list(zip(ids[1::4], ids[2::4], ids[3::4], strict=True))


def chunk_rejection_reason(notes: Sequence[Sequence[int]], repmin: int = UPSTREAM_REPMIN) -> str | None:
    """Returns why upstream would drop this chunk, or ``None`` when it is kept.

    Args:
        notes: The chunk as ``(dt, dur, pitch)`` triples; its length plays the role of upstream's ``clen``.
        repmin: A chunk needs more than this many distinct triples.

    Returns:
        ``None`` (kept) or the first failing reason of :data:`FILTER_REASONS`.
    """
    clen = len(notes)
    if len({tuple(note) for note in notes}) <= repmin:
        return "repetitive"
    if not any(note[0] == 0 for note in notes):
        return "no_zero_time"
    total_time = sum(note[0] for note in notes)
    if not clen < total_time < 100 * clen:
        return "too_fast_or_slow"
    return None


def keeps_window(ids: Sequence[int], repmin: int = UPSTREAM_REPMIN) -> bool:
    """Whether the upstream filter keeps a window of token ids (a chunk of ``len(ids) // 4`` notes)."""
    return chunk_rejection_reason(ids_to_triples(ids), repmin) is None


def upstream_chunk_verdicts(
    notes: Sequence[Sequence[int]], clen: int = UPSTREAM_CHUNK_NOTES, repmin: int = UPSTREAM_REPMIN
) -> tuple[int, list[int]]:
    """Cuts one file's notes into upstream's chunks and returns which are kept.

    Args:
        notes: The file's ``(dt, dur, pitch)`` triples.
        clen: Chunk length in notes.
        repmin: See :func:`chunk_rejection_reason`.

    Returns:
        ``(total_chunks, kept_chunk_indices)``. Files shorter than ``clen`` notes give ``(0, [])``; the
        tail after the last whole chunk is ignored, as upstream did.
    """
    if clen < 1:
        raise ValueError(f"clen={clen} must be a positive number of notes.")
    total = len(notes) // clen
    kept = [
        i for i in range(total) if chunk_rejection_reason(notes[i * clen : (i + 1) * clen], repmin) is None
    ]
    return total, kept
