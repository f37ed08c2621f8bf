"""The note grammar every generated sequence must follow: `<sep> dt dur pitch`, repeated.

Field ranges are the tokenizer's clamps (see DESIGN.md): dt 0..126 in 16 ms steps, dur 1..126 in 32 ms
steps, pitch 1..126, and 127 as the note separator. The separator never appears inside a note, so the
position of the next token inside its note (its *phase*) follows from the last separator alone.

Generated pitches are narrower by default: the 88 keys of a piano (`PIANO_PITCH_RANGE`, A0..C8), so a
sampled note can never leave the keyboard; `check_pitch_range` validates a wider or narrower choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

SEP_ID = 127
DT_MS = 16
DUR_MS = 32

#: Inclusive (low, high) id range of each phase: 0 = dt, 1 = dur, 2 = pitch, 3 = separator.
PHASE_RANGES: tuple[tuple[int, int], ...] = ((0, 126), (1, 126), (1, 126), (SEP_ID, SEP_ID))
DT_RANGE, DUR_RANGE, PITCH_RANGE = PHASE_RANGES[0], PHASE_RANGES[1], PHASE_RANGES[2]
PHASE_NAMES = ("dt", "dur", "pitch", "separator")
#: Default inclusive range of generated pitches: the piano keyboard, A0 (MIDI 21) .. C8 (MIDI 108).
PIANO_PITCH_RANGE: tuple[int, int] = (21, 108)


class NoteFields(NamedTuple):
    """One note as its three token values: delta onset (16 ms steps), duration (32 ms steps), pitch."""

    dt: int
    dur: int
    pitch: int


def check_pitch_range(low: object, high: object) -> tuple[int, int]:
    """Validate a generated-pitch range (inclusive MIDI note numbers) and return it as `(low, high)`.

    Raises:
        ValueError: a bound that is not a whole number or lies outside the tokenizer's 1..126, or
            `low > high`; the message names `min_pitch` / `max_pitch` and the allowed values.
    """
    full_low, full_high = PITCH_RANGE
    values = []
    for name, value in (("min_pitch", low), ("max_pitch", high)):
        whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not whole:
            raise ValueError(
                f"{name} must be a whole MIDI note number in {full_low}..{full_high}, got {value!r}."
            )
        if not full_low <= int(value) <= full_high:
            raise ValueError(
                f"{name} must be in {full_low}..{full_high} (MIDI note numbers; the piano is "
                f"{PIANO_PITCH_RANGE[0]}..{PIANO_PITCH_RANGE[1]}), got {int(value)}."
            )
        values.append(int(value))
    if values[0] > values[1]:
        raise ValueError(
            f"min_pitch {values[0]} is above max_pitch {values[1]}; the range must be low..high."
        )
    return values[0], values[1]


def next_phase(ids: Sequence[int]) -> int:
    """Phase of the token that follows `ids`: 0 dt, 1 dur, 2 pitch, 3 separator.

    A sequence without a separator, or one whose last note already has its three fields, needs a
    separator next.
    """
    for back, token in enumerate(reversed(ids)):
        if token == SEP_ID:
            return min(back, 3)
    return 3


def tokens_to_finish(phase: int, num_notes: int) -> int:
    """Tokens that complete `num_notes` notes when the next token has `phase`.

    A note already opened by the prompt (phase 0..2) counts as the first of the `num_notes`; the result
    always ends right after a pitch.
    """
    if num_notes <= 0:
        return 0
    return 4 * num_notes - (phase + 1) % 4


def split_notes(ids: Sequence[int]) -> list[NoteFields]:
    """Parse a well-formed id sequence into notes; raise `ValueError` naming the first violation.

    Well-formed means: starts with a separator, every separator is followed by exactly three fields in
    their legal ranges, and the sequence ends on a pitch (an empty sequence or a lone separator is
    allowed and has no notes).
    """
    ids = list(ids)
    if ids and ids[0] != SEP_ID:
        raise ValueError(f"Note sequence must start with the separator {SEP_ID}, got {ids[0]}.")
    if ids == [SEP_ID]:
        return []
    if len(ids) % 4 != 0:
        raise ValueError(f"Note sequence length {len(ids)} is not a multiple of 4 (<sep> dt dur pitch).")
    notes = []
    for start in range(0, len(ids), 4):
        group = ids[start : start + 4]
        if group[0] != SEP_ID:
            raise ValueError(f"Expected a separator at position {start}, got {group[0]}.")
        for phase, value in enumerate(group[1:]):
            low, high = PHASE_RANGES[phase]
            if not low <= value <= high:
                raise ValueError(
                    f"Note {start // 4}: {PHASE_NAMES[phase]} {value} at position {start + 1 + phase} is "
                    f"outside {low}..{high}."
                )
        notes.append(NoteFields(*group[1:]))
    return notes


def is_well_formed(ids: Sequence[int]) -> bool:
    """True when `split_notes(ids)` accepts the sequence."""
    try:
        split_notes(ids)
    except ValueError:
        return False
    return True


def join_notes(notes: Sequence[tuple[int, int, int]]) -> list[int]:
    """Inverse of `split_notes`: `[(dt, dur, pitch), ...] -> [127, dt, dur, pitch, ...]`."""
    ids: list[int] = []
    for dt, dur, pitch in notes:
        ids += [SEP_ID, int(dt), int(dur), int(pitch)]
    return ids


def normalize_prompt(ids: Sequence[int]) -> list[int]:
    """Check token values and drop a leading partial note so that the prompt starts on a separator.

    A trailing partial note is kept: generation completes it. An empty prompt becomes `[SEP_ID]`
    (improvise from a separator).

    Raises:
        ValueError: a token outside 0..127.
    """
    ids = [int(token) for token in ids]
    bad = [token for token in ids if not 0 <= token <= SEP_ID]
    if bad:
        raise ValueError(f"Prompt ids must lie in 0..{SEP_ID}; found {bad[:5]}.")
    if SEP_ID in ids:
        ids = ids[ids.index(SEP_ID) :]
    else:
        ids = []
    return ids or [SEP_ID]


def onset_steps(notes: Sequence[NoteFields]) -> list[int]:
    """Absolute onset of each note in 16 ms steps (running sum of dt)."""
    onsets, now = [], 0
    for note in notes:
        now += note.dt
        onsets.append(now)
    return onsets
