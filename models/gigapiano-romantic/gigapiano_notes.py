"""Note-level view of the GIGA-Piano token layout: ids <-> notes, and the quantisation step of encoding.

A GIGA-Piano sequence is a run of four-token groups ``[127, dt, dur, pitch]``, one group per note:

* ``127`` (:data:`SEP_ID`) separates notes;
* ``dt`` is the onset delta to the previous note in 16 ms steps (``0`` = same onset, a chord);
* ``dur`` is the duration in 32 ms steps;
* ``pitch`` is the MIDI pitch.

Every field is clamped (``dt`` to 0..126, ``dur`` and ``pitch`` to 1..126) so that ids 0..126 are field
values and 127 is only ever the separator. Chords are ordered from the highest to the lowest pitch.

This module only uses numpy, so it can ship with the tokenizer as Hub remote code.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np

#: The note separator id (also the tokenizer's ``bos_token``/``pad_token``, ``"<sep>"``).
SEP_ID = 127
#: Number of ids: 0..126 are field values, 127 is the separator.
VOCAB_SIZE = 128
#: Milliseconds per ``dt`` step.
TIME_STEP_MS = 16
#: Milliseconds per ``dur`` step.
DURATION_STEP_MS = 32
#: Largest value of any field.
MAX_FIELD = 126
#: Smallest ``dt`` value.
MIN_DT = 0
#: Smallest ``dur`` value (a zero-length note still lasts one step).
MIN_DURATION = 1
#: Smallest ``pitch`` value.
MIN_PITCH = 1
#: Velocity written for every decoded note unless told otherwise (upstream's constant).
DEFAULT_VELOCITY = 90

VelocityArg = int | Literal["simulated"]


class Note(NamedTuple):
    """One note in token units, as it appears after a separator.

    Attributes:
        dt: Onset delta to the previous note, in 16 ms steps.
        dur: Duration, in 32 ms steps.
        pitch: MIDI pitch.
    """

    dt: int
    dur: int
    pitch: int


class TimedNote(NamedTuple):
    """One decoded note with absolute times.

    Attributes:
        onset_ms: Onset from the start of the piece, in milliseconds.
        offset_ms: End of the note, in milliseconds.
        pitch: MIDI pitch.
        velocity: MIDI velocity (not encoded by the tokens; a constant or a simulated value).
    """

    onset_ms: int
    offset_ms: int
    pitch: int
    velocity: int = DEFAULT_VELOCITY

    @property
    def duration_ms(self) -> int:
        """Duration in milliseconds."""
        return self.offset_ms - self.onset_ms


# ----------------------------------------------------------------------------------------------------------
# ids -> notes
# ----------------------------------------------------------------------------------------------------------


def as_id_array(ids: Any) -> np.ndarray:
    """Converts a 1-D id sequence (list, tuple, numpy array, torch tensor) to an int64 array.

    Anything that is not an integer id in 0..127 becomes ``-1`` so that the group holding it is
    skipped later; this is what lets decoding accept any sequence without raising.

    Args:
        ids: The ids. A torch tensor (any device) is read through its ``tolist()``.

    Returns:
        A 1-D ``int64`` array where invalid entries are ``-1``.

    Raises:
        ValueError: If ``ids`` has more than one dimension (a batch: decode each row instead).
    """
    if hasattr(ids, "detach") and hasattr(ids, "tolist"):  # a torch tensor, without importing torch
        ids = ids.detach().cpu().tolist()
    if isinstance(ids, (int, np.integer)):
        ids = [ids]
    array = np.asarray(ids) if not isinstance(ids, np.ndarray) else ids
    if array.ndim > 1:
        raise ValueError(
            f"expected a 1-D sequence of ids, got shape {array.shape}; decode each row separately"
        )
    array = array.reshape(-1)
    if array.dtype.kind in "iub":
        values = array.astype(np.int64)
        values[(values < 0) | (values > SEP_ID)] = -1
        return values
    # Floats, objects (Python ints beyond int64, None, strings...): keep only exact integers in range.
    return np.fromiter((_clean_id(value) for value in array.tolist()), dtype=np.int64, count=array.size)


def _clean_id(value: Any) -> int:
    """Returns ``value`` as an id if it is an integer in 0..127, else ``-1``."""
    try:
        as_int = int(value)
    except (TypeError, ValueError, OverflowError):
        return -1
    if as_int != value or not 0 <= as_int <= SEP_ID:
        return -1
    return as_int


def note_groups(ids: Any) -> np.ndarray:
    """Finds the well-formed note groups of an id sequence.

    A group is the run of ids between two separators (the runs before the first and after the last
    separator count too, as upstream's decoder counts the leading run). A run is a note when it holds
    exactly three ids, each in 0..126; every other run is skipped.

    Args:
        ids: A 1-D id sequence (see :func:`as_id_array`).

    Returns:
        An ``(n_notes, 3)`` int64 array of ``(dt, dur, pitch)`` rows, in sequence order.
    """
    values = as_id_array(ids)
    if values.size == 0:
        return np.zeros((0, 3), dtype=np.int64)
    separators = np.flatnonzero(values == SEP_ID)
    run_starts = np.concatenate(([0], separators + 1))
    run_ends = np.concatenate((separators, [values.size]))
    candidates = run_starts[(run_ends - run_starts) == 3]
    if candidates.size == 0:
        return np.zeros((0, 3), dtype=np.int64)
    rows = values[candidates[:, None] + np.arange(3)]
    if np.any(values < 0):  # a -1 marks an id outside the vocabulary: skip the groups holding one
        _warn_out_of_vocab(int(np.count_nonzero(values < 0)))
        rows = rows[np.all(rows >= 0, axis=1)]
    return rows


def _warn_out_of_vocab(n_invalid: int) -> None:
    """Warns that ids outside the 128-id vocabulary were passed (wrong tokenizer, or padding with -100)."""
    warnings.warn(
        f"{n_invalid} id(s) are not GIGA-Piano ids (integers 0..127); the note groups holding them were "
        "skipped. Check that these ids come from a GIGA-Piano tokenizer.",
        stacklevel=4,
    )


def ids_to_notes(ids: Any) -> list[Note]:
    """Reads the notes of an id sequence, skipping malformed groups; never raises on 1-D input.

    Args:
        ids: A 1-D id sequence.

    Returns:
        The notes, in sequence order, with their raw (unclamped) field values.
    """
    return [Note(*row) for row in note_groups(ids).tolist()]


def notes_to_ids(notes: Iterable[Sequence[int]]) -> list[int]:
    """Writes ``[127, dt, dur, pitch]`` per note, clamping every field to its legal range.

    Args:
        notes: :class:`Note` objects or any ``(dt, dur, pitch)`` triples of integers.

    Returns:
        The ids (four per note).
    """
    rows = np.asarray([tuple(note)[:3] for note in notes], dtype=np.int64).reshape(-1, 3)
    return fields_to_ids(rows[:, 0], rows[:, 1], rows[:, 2])


def fields_to_ids(dt: np.ndarray, dur: np.ndarray, pitch: np.ndarray) -> list[int]:
    """Clamps field arrays and interleaves them after separators.

    Args:
        dt: Onset deltas in 16 ms steps.
        dur: Durations in 32 ms steps.
        pitch: MIDI pitches.

    Returns:
        ``[127, dt_0, dur_0, pitch_0, 127, dt_1, ...]`` as Python ints.
    """
    out = np.empty((len(dt), 4), dtype=np.int64)
    out[:, 0] = SEP_ID
    np.clip(dt, MIN_DT, MAX_FIELD, out=out[:, 1])
    np.clip(dur, MIN_DURATION, MAX_FIELD, out=out[:, 2])
    np.clip(pitch, MIN_PITCH, MAX_FIELD, out=out[:, 3])
    return out.ravel().tolist()


def ids_to_timed_notes(ids: Any, velocity: VelocityArg = DEFAULT_VELOCITY) -> list[TimedNote]:
    """Decodes ids to notes with absolute times: onsets accumulate ``dt * 16`` ms, durations ``dur * 32`` ms.

    Args:
        ids: A 1-D id sequence; malformed groups are skipped.
        velocity: A constant MIDI velocity (1..127), or ``"simulated"`` for upstream's heuristic: every
            note of a chord (a note with ``dt > 0`` and the ``dt == 0`` notes after it) gets the chord's
            first (highest) pitch plus 10 for a single note or plus 30 for a chord, capped at 127.

    Returns:
        The notes in sequence order, at upstream's decoded times.
    """
    fields = timed_note_arrays(ids, velocity)
    return [TimedNote(*note) for note in zip(*(array.tolist() for array in fields), strict=True)]


def timed_note_arrays(
    ids: Any, velocity: VelocityArg = DEFAULT_VELOCITY, for_midi: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Decoded notes as arrays ``(onset_ms, offset_ms, pitch, velocity)``, in sequence order.

    Args:
        ids: A 1-D id sequence; malformed groups are skipped.
        velocity: See :func:`ids_to_timed_notes`.
        for_midi: Adjust the times for a single-channel MIDI file that encodes back to the same ids:
            notes sharing a 16 ms step are delayed by a few ms where needed to keep their order
            (:func:`order_keeping_delays`), and a note that would hold on past a re-strike of its own
            pitch ends at the re-strike (:func:`end_at_restrikes`).

    Returns:
        Four int64 arrays.
    """
    rows = note_groups(ids)
    velocities = note_velocities(rows, velocity)
    onsets = np.cumsum(rows[:, 0]) * TIME_STEP_MS
    if for_midi:
        onsets += order_keeping_delays(rows)
    offsets = onsets + rows[:, 1] * DURATION_STEP_MS
    if for_midi:
        offsets = end_at_restrikes(onsets, offsets, rows[:, 2])
    return onsets, offsets, rows[:, 2].copy(), velocities


def order_keeping_delays(rows: np.ndarray) -> np.ndarray:
    """Millisecond delays (0..15) that make notes sharing a 16 ms step sort back into their token order.

    Upstream sorts notes by exact millisecond onset before quantising, so a lower note played a few ms
    before a higher one comes first even though both land on the same step. Decoded on the step, the
    encoder would put the higher note first. Delaying a note by one more millisecond than the previous
    note of its step, whenever the encoder's order (pitch descending, then shorter first) would swap
    them, keeps the order; the delay stays inside the step, so the ids are unchanged.

    Args:
        rows: ``(n, 3)`` array of ``(dt, dur, pitch)``.

    Returns:
        An int64 array of ``n`` delays in milliseconds.
    """
    n = rows.shape[0]
    if n < 2:
        return np.zeros(n, dtype=np.int64)
    dt, dur, pitch = rows[1:, 0], rows[1:, 1], rows[1:, 2]
    swapped = (pitch > rows[:-1, 2]) | ((pitch == rows[:-1, 2]) & (dur < rows[:-1, 1]))
    bumps = np.concatenate(([0], (swapped & (dt == 0)).astype(np.int64)))
    running = np.cumsum(bumps)
    step_start = np.maximum.accumulate(np.where(np.concatenate(([True], dt != 0)), np.arange(n), 0))
    return np.minimum(running - running[step_start], TIME_STEP_MS - 1)


def end_at_restrikes(onsets: np.ndarray, offsets: np.ndarray, pitches: np.ndarray) -> np.ndarray:
    """Ends a note where a later note of the same pitch starts, if that note would end first.

    On one MIDI channel, note-offs close the oldest sounding note of their pitch, so a short note struck
    inside a longer one of the same pitch would be read back with the two durations swapped (and a
    piano or synthesizer cuts the first note at the re-strike anyway). Such nested pairs only come from
    the clamps of the encoding (126-step gaps and durations); ending the outer note at the re-strike
    keeps what is heard and what is read back the same.

    Args:
        onsets: Onsets in ms, non-decreasing.
        offsets: Offsets in ms.
        pitches: Pitches.

    Returns:
        The new offsets (a copy).
    """
    offsets = offsets.copy()
    sounding: dict[int, list[int]] = {}
    for index, (onset, offset, pitch) in enumerate(
        zip(onsets.tolist(), offsets.tolist(), pitches.tolist(), strict=True)
    ):
        notes = [i for i in sounding.get(pitch, ()) if offsets[i] > onset]
        for earlier in notes:
            if offsets[earlier] > offset and onsets[earlier] < onset:
                offsets[earlier] = onset
        sounding[pitch] = [i for i in notes if offsets[i] > onset] + [index]
    return offsets


def note_velocities(rows: np.ndarray, velocity: VelocityArg) -> np.ndarray:
    """Velocities of decoded ``(dt, dur, pitch)`` rows: a constant, or simulated (see ``ids_to_timed_notes``).

    Args:
        rows: ``(n, 3)`` array of ``(dt, dur, pitch)``.
        velocity: An int in 1..127 or ``"simulated"``.

    Returns:
        An int64 array of ``n`` velocities.

    Raises:
        ValueError: If ``velocity`` is neither an int in 1..127 nor ``"simulated"``.
    """
    if isinstance(velocity, str):
        if velocity != "simulated":
            raise ValueError(f"velocity must be an int in 1..127 or 'simulated', got {velocity!r}")
        return _simulated_velocities(rows)
    if isinstance(velocity, bool) or not isinstance(velocity, (int, np.integer)) or not 1 <= velocity <= 127:
        raise ValueError(f"velocity must be an int in 1..127 or 'simulated', got {velocity!r}")
    return np.full(rows.shape[0], int(velocity), dtype=np.int64)


def _simulated_velocities(rows: np.ndarray) -> np.ndarray:
    """Upstream's velocity heuristic: louder chords, brighter registers (see :func:`ids_to_timed_notes`)."""
    n = rows.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    chord_starts = np.flatnonzero(rows[:, 0] != 0)
    chord_starts = np.union1d([0], chord_starts)
    chord_sizes = np.diff(np.append(chord_starts, n))
    chord_velocity = rows[chord_starts, 2] + np.where(chord_sizes == 1, 10, 30)
    return np.clip(np.repeat(chord_velocity, chord_sizes), 1, 127)


# ----------------------------------------------------------------------------------------------------------
# note arrays -> ids (the last step of encoding)
# ----------------------------------------------------------------------------------------------------------


def order_notes(onset: np.ndarray, pitch: np.ndarray, track: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Upstream's note order: onset ascending, then pitch descending, then file order.

    Upstream sorts by pitch (descending) and then stably by onset; notes equal in both keep the order
    in which its reader produced them: by track, and within a track by note-off (ascending offset).

    Args:
        onset: Onset sort keys (integers, monotone in time).
        pitch: Raw MIDI pitches (0..255: a malformed file may hold any byte).
        track: Index of the file track each note came from.
        offset: Offset sort keys (integers, monotone in time).

    Returns:
        The permutation that puts the notes in token order.
    """
    if onset.size == 0:
        return np.zeros(0, dtype=np.int64)
    lo, hi = int(onset.min()), int(onset.max())
    if -(2**54) < lo and hi < 2**54:
        # One int64 key (8 bits for the pitch) and a stable sort beat a three-key lexsort by far; the
        # remaining ties (same onset and pitch) are rare, so only then are the tie-breakers sorted in.
        key = onset * 256 + (255 - pitch)
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        if not np.any(sorted_key[1:] == sorted_key[:-1]):
            return order
        return np.lexsort((offset, track, key))
    return np.lexsort((offset, track, -pitch, onset))


def steps_to_ids(onset_steps: np.ndarray, duration_steps: np.ndarray, pitch: np.ndarray) -> list[int]:
    """Turns ordered, quantised notes into ids: ``dt`` is the delta of consecutive quantised onsets.

    Args:
        onset_steps: Quantised absolute onsets (16 ms steps), in token order.
        duration_steps: Quantised durations (32 ms steps), in token order.
        pitch: MIDI pitches, in token order.

    Returns:
        The ids, four per note, with every field clamped.
    """
    dt = np.diff(onset_steps, prepend=onset_steps[:1])  # 0 for the first note
    return fields_to_ids(dt, duration_steps, pitch)


def truncating_divide(values: np.ndarray, step: int) -> np.ndarray:
    """``int(value / step)`` elementwise for integer arrays: rounds toward zero like upstream's ``int()``."""
    if values.size == 0 or values.min() >= 0:
        return values // step
    return np.where(values >= 0, values // step, -((-values) // step))
