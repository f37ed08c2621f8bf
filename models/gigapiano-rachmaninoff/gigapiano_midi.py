"""MIDI in and out for the GIGA-Piano tokenizer: parsing with symusic, upstream-exact timing, decoding.

How upstream gets note times (and why this module looks the way it does)
-----------------------------------------------------------------------
Upstream reads a file with TMIDIX (Peter Billam's ``MIDI.py`` 6.7): ``midi2ms_score`` walks each file
track's events in file order (notes, controllers, meta events: everything), converts every event's
delta ticks to milliseconds with the current tempo and rounds that delta to a whole millisecond. The
rounded value is ``round(exact_ms - exact_ms_at_previous_non_tempo_event)`` and absolute times are the
sums of these rounded deltas, so they drift by the accumulated rounding: every event tick of a track
matters, not just the note ticks. Tempo events come from one table over all tracks and are applied
lazily: before the first one the rate is ``400 / ticks_per_quarter`` ms per tick, and a tempo is applied
at the first event of the track whose tick lies after it, at most one tempo per event. Applying it
counts the ticks from the previous event to the tempo at the old rate *and then the whole event delta
at the new rate* (a double count that upstream's own Lua port marks "NO!"). Note-offs (and velocity-0
note-ons) close the oldest open note of their channel and pitch; notes never closed end at the track's
last event.

What this module does
---------------------
MIDI is parsed by symusic (no MIDI event parser here). symusic merges and splits tracks by channel and
program and does not say which file track an event came from, so the file is cut into its track
chunks (only the chunk framing is read here) and symusic parses each chunk on its own. For every file
track the set of event ticks that symusic exposes (note starts and ends, controllers, pitch bends,
lyrics, markers, time and key signatures; tempo events separately) is then walked with numpy,
reproducing the float arithmetic and the rounding exactly (``np.cumsum`` adds in order, ``np.rint``
rounds half to even like Python's ``round``). This matches upstream on all 150 MAESTRO files of the
reference. Known limits, all from events symusic does not expose: a program change, aftertouch,
sysex or other text event at a tick where the track has no other event can shift later times of that
track by a millisecond; when two or more tempo changes fall between two consecutive events of a track
(upstream then applies them one per event), times depend on the order of same-tick events, which is
not known here (note-offs, then other events, then note-ons is assumed). Unlike upstream, a header
longer than 6 bytes is read (upstream reads no notes then) and chunks other than ``MTrk`` are skipped
(upstream decodes them as tracks), as the MIDI standard asks.

``timing="tempo_map"`` instead converts ticks exactly through the tempo map (integer arithmetic, no
intermediate rounding, MIDI's default 120 bpm before the first tempo): drift-free, but not what the
pretrained weights saw.

This module depends only on numpy, symusic and its sibling module, so it can ship as Hub remote code.
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import symusic
import symusic.core

from .gigapiano_notes import (
    DURATION_STEP_MS,
    TIME_STEP_MS,
    order_notes,
    steps_to_ids,
    truncating_divide,
)

logger = logging.getLogger(__name__)

#: Timing modes of :func:`encode_midi`.
TIMING_MODES = ("upstream", "tempo_map")
#: Ticks per quarter and tempo of decoded scores: one tick is exactly one millisecond.
DECODE_TICKS_PER_QUARTER = 500
DECODE_TEMPO_MSPQ = 500_000

#: MIDI's default tempo (120 bpm), used by ``timing="tempo_map"`` before the first tempo event.
_DEFAULT_MSPQ = 500_000
_SCORE_TYPES = (symusic.core.ScoreTick, symusic.core.ScoreQuarter, symusic.core.ScoreSecond)
_NOTE_ON_STATUS = tuple(bytes([0x90 | channel]) for channel in range(16))
_CONTROL_STATUS = tuple((bytes([0xB0 | channel]), bytes([0xE0 | channel])) for channel in range(16))
_END_OF_TRACK = b"\xff\x2f\x00"
#: Marker meta event put at a track's end-of-track tick so that symusic reports that tick.
_END_MARKER_TEXT = "gigapiano:end-of-track"
_END_MARKER = b"\xff\x06" + bytes([len(_END_MARKER_TEXT)]) + _END_MARKER_TEXT.encode("ascii")
_ALL_PITCHES = tuple(range(128))


class MidiTokenizationError(ValueError):
    """The input cannot be tokenised: not MIDI, truncated, unreadable, missing, or without non-drum notes."""


# ----------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------


def read_midi_bytes(source: Any) -> tuple[bytes, str]:
    """Gets the raw bytes of a MIDI source.

    Args:
        source: A path (``str`` or ``os.PathLike``), the file's bytes, or a ``symusic.Score`` (written to
            MIDI bytes with symusic, so it is tokenised like the file symusic would save).

    Returns:
        ``(data, name)`` where ``name`` describes the source in error messages.

    Raises:
        MidiTokenizationError: If the path does not exist or cannot be read.
        TypeError: If ``source`` is none of the accepted types.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "<MIDI bytes>"
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:
            with open(path, "rb") as handle:
                return handle.read(), str(path)
        except FileNotFoundError as error:
            raise MidiTokenizationError(f"MIDI file not found: {path!s}") from error
        except OSError as error:
            raise MidiTokenizationError(f"cannot read MIDI file {path!s}: {error}") from error
    if isinstance(source, _SCORE_TYPES):
        return _score_to_bytes(source), "<symusic.Score>"
    raise TypeError(
        f"expected a path, bytes or a symusic.Score, got {type(source).__name__}; "
        "to tokenise several files use encode_midi_batch"
    )


def _score_to_bytes(score: Any) -> bytes:
    """Writes a symusic score (any time unit) to MIDI bytes."""
    try:
        if not isinstance(score, symusic.core.ScoreTick):
            score = score.to("tick")
        return score.dumps_midi()
    except Exception as error:  # symusic raises RuntimeError or ValueError on scores it cannot write
        raise MidiTokenizationError(f"symusic could not write this score to MIDI: {error}") from error


def split_track_chunks(data: bytes, name: str = "<MIDI bytes>") -> tuple[int, list[bytes]]:
    """Reads the MIDI header and cuts the file into its track chunks (no event is parsed here).

    Args:
        data: The file's bytes.
        name: The source's name for error messages.

    Returns:
        ``(division, chunks)``: the header's time division and the body of every ``MTrk`` chunk in file
        order (other chunk types are skipped, as the MIDI standard asks).

    Raises:
        MidiTokenizationError: If the header is missing or invalid, or a chunk runs past the end of the file.
    """
    if len(data) < 14 or data[:4] != b"MThd":
        raise MidiTokenizationError(f"{name} is not a MIDI file (it does not start with an 'MThd' header)")
    header_length = struct.unpack_from(">I", data, 4)[0]
    division = struct.unpack_from(">H", data, 12)[0]
    if header_length < 6:
        raise MidiTokenizationError(f"{name} has an invalid MIDI header (length {header_length}, expected 6)")
    if division == 0:
        raise MidiTokenizationError(f"{name} has a time division of 0 ticks per quarter note")
    chunks = []
    position = 8 + header_length
    while position + 8 <= len(data):
        chunk_type = data[position : position + 4]
        length = struct.unpack_from(">I", data, position + 4)[0]
        body_start = position + 8
        if body_start + length > len(data):
            raise MidiTokenizationError(
                f"{name} is truncated: track chunk {len(chunks)} declares {length} bytes but only "
                f"{len(data) - body_start} remain"
            )
        if chunk_type == b"MTrk":
            chunks.append(data[body_start : body_start + length])
        position = body_start + length
    return division, chunks


# ----------------------------------------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrackEvents:
    """What the timing needs from one file track (one ``MTrk`` chunk); ticks are int64 arrays.

    Attributes:
        starts: Note-on tick of every note (drum notes included: their events count for timing).
        ends: Note-off tick of every note.
        pitches: Raw MIDI pitch of every note.
        is_drum: Whether each note is on the drum channel (channel 10, index 9).
        other_ticks: Ticks of the other non-tempo events symusic reports.
        tempo_ticks: Ticks of this track's tempo events.
        tempo_mspq: Their tempos, in microseconds per quarter note.
    """

    starts: np.ndarray
    ends: np.ndarray
    pitches: np.ndarray
    is_drum: np.ndarray
    other_ticks: np.ndarray
    tempo_ticks: np.ndarray
    tempo_mspq: np.ndarray


@dataclass(frozen=True)
class ParsedMidi:
    """A MIDI file as the timing sees it.

    Attributes:
        division: The header's time division (ticks per quarter note, or an SMPTE code if bit 15 is set).
        tracks: One entry per ``MTrk`` chunk, in file order.
        name: The source's name for messages.
    """

    division: int
    tracks: list[TrackEvents]
    name: str


def parse_midi(source: Any) -> ParsedMidi:
    """Parses a MIDI source track by track with symusic.

    Args:
        source: A path, bytes or ``symusic.Score`` (see :func:`read_midi_bytes`).

    Returns:
        The parsed file.

    Raises:
        MidiTokenizationError: If the source cannot be read or is not valid MIDI.
    """
    data, name = read_midi_bytes(source)
    division, chunks = split_track_chunks(data, name)
    # symusic refuses SMPTE divisions; the ticks it reports do not depend on the division, so any will do.
    symusic_division = division if not division & 0x8000 else 480
    header = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01" + struct.pack(">H", symusic_division)
    tracks = [_parse_track(header, body, index, name) for index, body in enumerate(chunks)]
    return ParsedMidi(division=division, tracks=tracks, name=name)


def _parse_track(header: bytes, body: bytes, index: int, name: str) -> TrackEvents:
    """Parses one track chunk with symusic and collects its events' ticks, as upstream would see them.

    Two things symusic hides are brought back by adding events after the track's end:

    * symusic drops notes that are never switched off; upstream keeps them, ending at the track's last
      event. So the chunk gets a marker at its end-of-track tick (to learn that tick) and note-offs for
      every pitch one tick later; notes ending there are the unterminated ones. A note-off closes one
      note, so while a pitch may still hold open notes the chunk is parsed again with twice as many
      note-offs for that pitch only (the added bytes stay within twice the unterminated notes, and the
      passes within their base-2 logarithm).
    * symusic drops the controllers and pitch bends of a channel that has no note-on, but upstream
      counts them in the track's timing. A note-on at the very end (never closed, so never a note)
      makes symusic keep them.
    """
    channels = [channel for channel in range(16) if _NOTE_ON_STATUS[channel] in body]
    if not channels:  # no notes: only its tempos matter
        return _track_events(_parse_chunk(header, body, index, name))
    silent = [
        channel
        for channel in range(16)
        if channel not in channels and any(status in body for status in _CONTROL_STATUS[channel])
    ]
    counts: dict[int, int] | None = None  # note-offs added per pitch (None: one for every pitch)
    while True:
        extended = _with_end_events(body, channels, counts, silent)
        score = _parse_chunk(header, extended, index, name)
        events = _track_events(score)
        end_tick = _end_marker_tick(score)
        if end_tick is None:  # the marker was not reached (an earlier end-of-track): nothing to close
            return events
        closed = events.pitches[events.ends > end_tick]
        if closed.size == 0:
            return events
        found = np.bincount(closed, minlength=128)
        previous = counts if counts is not None else dict.fromkeys(_ALL_PITCHES, 1)
        # a pitch whose note-offs were all used up may hold more open notes: double them; keep the others
        saturated = {pitch for pitch, count in previous.items() if found[pitch] >= count}
        if not saturated:
            return _end_unterminated_notes(events, end_tick)
        counts = {p: c * (2 if p in saturated else 1) for p, c in previous.items() if found[p]}


def _with_end_events(
    body: bytes, channels: list[int], counts: dict[int, int] | None, silent: list[int]
) -> bytes:
    """The chunk body with an end marker at its end-of-track tick, then (one tick later) ``counts[pitch]``
    note-offs per pitch (one for every pitch when ``counts`` is None) on ``channels`` and a note-on on each
    ``silent`` channel, then a new end-of-track.

    The end-of-track event keeps its delta but becomes the marker; the added events have zero deltas.
    """
    if counts is None:
        offs = b"".join(_ALL_NOTE_OFFS[channel] for channel in channels)
    else:
        offs = b"".join(_note_offs(channel, counts) for channel in channels)
    ons = b"".join(bytes([0x90 | channel, 0, 1, 0]) for channel in silent)
    head = body[: -len(_END_OF_TRACK)] if body.endswith(_END_OF_TRACK) else body + b"\x00"
    return head + _END_MARKER + b"\x01" + offs + ons + _END_OF_TRACK


def _note_offs(channel: int, counts: dict[int, int]) -> bytes:
    """``counts[pitch]`` note-offs per pitch on one channel: a status byte, then (pitch, velocity, next
    delta)s."""
    return bytes([0x80 | channel]) + b"".join(bytes([pitch, 0, 0]) * count for pitch, count in counts.items())


_ALL_NOTE_OFFS = tuple(_note_offs(channel, dict.fromkeys(_ALL_PITCHES, 1)) for channel in range(16))


def _parse_chunk(header: bytes, body: bytes, index: int, name: str) -> Any:
    """Parses one track chunk as a one-track MIDI file with symusic."""
    try:
        return symusic.core.ScoreTick.from_midi(header + b"MTrk" + struct.pack(">I", len(body)) + body)
    except MemoryError:  # out of memory is not a property of the file: never report it as invalid MIDI
        raise
    except Exception as error:  # symusic raises RuntimeError (and others) on malformed track data
        if "bad_alloc" in str(error):
            raise MemoryError(f"{name}: out of memory while parsing track {index}") from error
        raise MidiTokenizationError(f"{name}: track {index} is not valid MIDI ({error})") from error


def _end_marker_tick(score: Any) -> int | None:
    """Tick of the end marker added by :func:`_with_end_events`, if symusic reached it."""
    for marker in reversed(score.markers):
        if marker.text == _END_MARKER_TEXT:
            return int(marker.time)
    return None


def _track_events(score: Any) -> TrackEvents:
    """Collects the ticks of one parsed track chunk (the end marker is left out)."""
    starts, ends, pitches, drums, other = [], [], [], [], []
    for track in score.tracks:
        notes = track.notes.numpy()
        start = notes["time"].astype(np.int64)
        starts.append(start)
        ends.append(start + notes["duration"])
        pitches.append(notes["pitch"].view(np.uint8))
        drums.append(np.full(start.size, track.is_drum))
        # (Empty lists are skipped: each numpy() call costs a few microseconds, 150 files add up.)
        if len(track.controls):
            other.append(track.controls.numpy()["time"])
        if len(track.pitch_bends):
            other.append(track.pitch_bends.numpy()["time"])
        if len(track.lyrics):
            other.append(np.array([lyric.time for lyric in track.lyrics], dtype=np.int64))
    if len(score.time_signatures):
        other.append(score.time_signatures.numpy()["time"])
    if len(score.key_signatures):
        other.append(score.key_signatures.numpy()["time"])
    if len(score.markers):
        markers = [marker.time for marker in score.markers if marker.text != _END_MARKER_TEXT]
        other.append(np.array(markers, dtype=np.int64))
    tempos = score.tempos.numpy()
    return TrackEvents(
        starts=_concat(starts),
        ends=_concat(ends),
        pitches=_concat(pitches),
        is_drum=np.concatenate(drums) if drums else np.zeros(0, dtype=bool),
        other_ticks=_concat(other),
        tempo_ticks=tempos["time"].astype(np.int64),
        tempo_mspq=tempos["mspq"].astype(np.int64),
    )


def _end_unterminated_notes(events: TrackEvents, end_tick: int) -> TrackEvents:
    """Moves the ends of the notes closed after ``end_tick`` to upstream's last event of the track."""
    unterminated = events.ends > end_tick
    last = _last_event_tick(
        end_tick, events.starts, events.ends[~unterminated], events.other_ticks, events.tempo_ticks
    )
    ends = events.ends.copy()
    ends[unterminated] = last
    # Upstream's last event is a rounding point of the walk (the end-of-track, when it has a delay).
    return replace(events, ends=ends, other_ticks=np.append(events.other_ticks, last))


def _last_event_tick(
    end_tick: int, starts: np.ndarray, ends: np.ndarray, other_ticks: np.ndarray, tempo_ticks: np.ndarray
) -> int:
    """Tick of upstream's last event of a track, where its unterminated notes end.

    Upstream reads an end-of-track with a delay as an event at its tick, drops one without a delay, and
    does not count tempo events. So the end-of-track tick is the answer unless a tempo event sits there
    with no other event (the end-of-track then had no delay): the last non-tempo event comes earlier.
    """
    if not np.any(tempo_ticks == end_tick):
        return end_tick
    visible = np.concatenate((starts, ends, other_ticks))
    if np.any(visible == end_tick):
        return end_tick
    return int(visible.max())


def _concat(arrays: list[np.ndarray]) -> np.ndarray:
    """Concatenates int arrays to one int64 array (empty when there is nothing)."""
    if not arrays:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate(arrays).astype(np.int64, copy=False)


def tempo_table(parsed: ParsedMidi) -> tuple[np.ndarray, np.ndarray]:
    """All tempo events by absolute tick; a later event at the same tick wins (as in upstream's dict).

    Returns:
        ``(ticks, mspq)``, sorted by tick, ticks unique.
    """
    by_tick: dict[int, int] = {}
    for track in parsed.tracks:
        by_tick.update(zip(track.tempo_ticks.tolist(), track.tempo_mspq.tolist(), strict=True))
    ticks = sorted(by_tick)
    return np.array(ticks, dtype=np.int64), np.array([by_tick[tick] for tick in ticks], dtype=np.int64)


# ----------------------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteTimes:
    """The non-drum notes of a file with their times, ready to order and quantise.

    Attributes:
        onset_key: Integer onset, monotone in time (milliseconds, or exact sub-microsecond units).
        offset_key: Integer offset in the same unit.
        onset_steps: Quantised absolute onset (16 ms steps).
        duration_steps: Quantised duration (32 ms steps).
        pitch: Raw MIDI pitch.
        track: Index of the file track.
    """

    onset_key: np.ndarray
    offset_key: np.ndarray
    onset_steps: np.ndarray
    duration_steps: np.ndarray
    pitch: np.ndarray
    track: np.ndarray


def upstream_note_times(parsed: ParsedMidi) -> NoteTimes:
    """Note times as upstream computes them: per-event rounded milliseconds (see the module docstring)."""
    tempo_ticks, tempo_mspq = tempo_table(parsed)
    # Rate after applying tempo j is rates[j + 1]; the same float expressions as upstream, in the same order.
    division = parsed.division
    rates = np.array([400 / division] + [mspq / (1000.0 * division) for mspq in tempo_mspq.tolist()])
    onsets, offsets, pitches, tracks = [], [], [], []
    for index, track in enumerate(parsed.tracks):
        keep = ~track.is_drum
        if not keep.any():
            continue
        start_ms, end_ms = upstream_track_ms(track, tempo_ticks, rates)
        onsets.append(start_ms[keep])
        offsets.append(end_ms[keep])
        pitches.append(track.pitches[keep])
        tracks.append(np.full(int(keep.sum()), index, dtype=np.int64))
    onset, offset = _concat(onsets), _concat(offsets)
    return NoteTimes(
        onset_key=onset,
        offset_key=offset,
        onset_steps=truncating_divide(onset, TIME_STEP_MS),
        duration_steps=truncating_divide(offset - onset, DURATION_STEP_MS),
        pitch=_concat(pitches),
        track=_concat(tracks),
    )


def upstream_track_ms(
    track: TrackEvents, tempo_ticks: np.ndarray, rates: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Upstream's millisecond times of one track's note starts and ends.

    Args:
        track: The track's events.
        tempo_ticks: Ticks of the file's tempo table (sorted, unique).
        rates: ``400 / division`` followed by the rate (ms per tick) of each tempo of the table.

    Returns:
        ``(start_ms, end_ms)`` int64 arrays aligned with ``track.starts`` / ``track.ends``.
    """
    events = np.concatenate((track.starts, track.ends, track.other_ticks))
    lowest = min(events.min(), tempo_ticks.min() if tempo_ticks.size else 0)
    if lowest >= 0:
        event_ms = _walk_sorted_ticks(events, track.tempo_ticks, tempo_ticks, rates)
        if event_ms is not None:
            n_starts, n_ends = track.starts.size, track.ends.size
            return event_ms[:n_starts], event_ms[n_starts : n_starts + n_ends]
    logger.debug("several tempo changes between two events of a track: walking events one by one")
    return _walk_events(track, tempo_ticks, rates)


def _walk_sorted_ticks(
    events: np.ndarray, own_tempo_ticks: np.ndarray, tempo_ticks: np.ndarray, rates: np.ndarray
) -> np.ndarray | None:
    """Vectorised upstream walk over a track's event ticks in time order.

    An event at the same tick as the previous one adds ``rate * 0`` and rounds a zero delta, so the
    order of same-tick events does not matter, as long as no event has to apply a second pending tempo.
    Returns ``None`` in that case (the caller then walks the events one by one).

    Args:
        events: Ticks of the track's non-tempo events (any order, repeats allowed), all >= 0.
        own_tempo_ticks: Ticks of the track's own tempo events (walked, but not rounding points).
        tempo_ticks: The file's tempo table ticks (sorted, unique).
        rates: See :func:`upstream_track_ms`.

    Returns:
        Upstream's millisecond time of each of ``events``, or ``None``.
    """
    # The walk starts at tick 0 (element 0); a stable sort keeps that element first among the zeros.
    ticks = np.concatenate(([0], events, own_tempo_ticks))
    order = np.argsort(ticks, kind="stable")
    walk = ticks[order]
    gaps = np.diff(walk)  # gap k-1 leads to walk point k
    n_gaps = gaps.size
    # Tempo j is applied at the first walk point after it: in the gap starting at its tick or before.
    applied_gap = np.searchsorted(walk, tempo_ticks, side="right") - 1
    n_applied = int(np.count_nonzero(applied_gap < n_gaps))
    applied_gap = applied_gap[:n_applied]
    if n_applied > 1 and np.any(applied_gap[1:] == applied_gap[:-1]):
        return None  # two tempos before one event: upstream applies them one per event
    increments = _gap_increments(walk, gaps, applied_gap, tempo_ticks[:n_applied], rates)
    exact_ms = np.empty(n_gaps + 1)
    exact_ms[0] = 0.0
    if increments.ndim == 1:
        np.cumsum(increments, out=exact_ms[1:])
    else:  # (n_gaps, 2): sum both terms in order, keep the running value after each gap
        exact_ms[1:] = np.cumsum(increments.ravel())[1::2]
    if own_tempo_ticks.size == 0:
        rounded = np.rint(np.diff(exact_ms)).astype(np.int64)
        walk_ms = np.empty(n_gaps + 1, dtype=np.int64)
        walk_ms[0] = 0
        np.cumsum(rounded, out=walk_ms[1:])
    else:  # the track's own tempo events are walked but are not rounding points
        points = np.flatnonzero(order <= events.size)
        rounded = np.zeros(walk.size, dtype=np.int64)
        rounded[points[1:]] = np.rint(np.diff(exact_ms[points])).astype(np.int64)
        walk_ms = np.cumsum(rounded)
    event_ms = np.empty(walk.size, dtype=np.int64)
    event_ms[order] = walk_ms
    return event_ms[1 : events.size + 1]


def _gap_increments(
    walk: np.ndarray, gaps: np.ndarray, applied_gap: np.ndarray, applied_ticks: np.ndarray, rates: np.ndarray
) -> np.ndarray:
    """Float increments of upstream's running milliseconds, one gap at a time.

    Every gap adds ``rate * gap`` with the rate in force after the gap's tempo (if any) was applied.
    A gap where a tempo is applied first adds ``old_rate * (tempo_tick - previous_tick)``: then the
    result is ``(n_gaps, 2)`` (that addition, then the regular one) so the float sums keep upstream's order.
    """
    n_applied = applied_gap.size
    if n_applied == 0:
        gap_rates: np.ndarray | float = float(rates[0])
    else:
        lengths = np.diff(np.concatenate(([0], applied_gap, [gaps.size])))
        nonempty = np.flatnonzero(lengths)
        if nonempty.size == 1:
            gap_rates = float(rates[nonempty[0]])
        else:
            gap_rates = np.repeat(rates[: n_applied + 1], lengths)
    regular = gap_rates * gaps
    if n_applied == 0:
        return regular
    catch_up = rates[:n_applied] * (applied_ticks - walk[applied_gap])
    if not np.any(catch_up):
        return regular  # adding 0.0 changes no float: skip the interleaving
    pairs = np.zeros((gaps.size, 2))
    pairs[applied_gap, 0] = catch_up
    pairs[:, 1] = regular
    return pairs


def _walk_events(
    track: TrackEvents, tempo_ticks: np.ndarray, rates: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Upstream's walk event by event, for tracks where several tempos wait for the same event.

    Same-tick events are taken as: tempo events, note-offs, other events, note-ons (the order symusic
    does not report; this is the usual order in files).
    """
    kinds = np.concatenate(
        (
            np.zeros(track.tempo_ticks.size, dtype=np.int8),
            np.ones(track.ends.size, dtype=np.int8),
            np.full(track.other_ticks.size, 2, dtype=np.int8),
            np.full(track.starts.size, 3, dtype=np.int8),
        )
    )
    ticks = np.concatenate((track.tempo_ticks, track.ends, track.other_ticks, track.starts))
    order = np.lexsort((kinds, ticks))
    pending = tempo_ticks.tolist()
    rate_list = rates.tolist()
    i_tempo, ticks_so_far, ms_so_far, previous_ms, absolute = 0, 0, 0.0, 0.0, 0
    event_ms = np.zeros(order.size, dtype=np.int64)
    for position, (tick, kind) in enumerate(zip(ticks[order].tolist(), kinds[order].tolist(), strict=True)):
        delta = tick - ticks_so_far
        remaining = delta
        if i_tempo < len(pending) and pending[i_tempo] < ticks_so_far + delta:
            to_tempo = pending[i_tempo] - ticks_so_far
            ms_so_far += rate_list[i_tempo] * to_tempo
            ticks_so_far = pending[i_tempo]
            i_tempo += 1
            remaining -= to_tempo
        ms_so_far += rate_list[i_tempo] * delta
        if kind != 0:
            absolute += round(ms_so_far - previous_ms)
            previous_ms = ms_so_far
        event_ms[position] = absolute
        ticks_so_far += remaining
    sorted_kinds = kinds[order]
    start_ms = np.empty(track.starts.size, dtype=np.int64)
    start_ms[np.argsort(track.starts, kind="stable")] = event_ms[sorted_kinds == 3]
    end_ms = np.empty(track.ends.size, dtype=np.int64)
    end_ms[np.argsort(track.ends, kind="stable")] = event_ms[sorted_kinds == 1]
    return start_ms, end_ms


def tempo_map_note_times(parsed: ParsedMidi) -> NoteTimes:
    """Drift-free note times: exact tempo-map conversion in integer arithmetic, then truncating quantisation.

    Times are kept as integers ``u`` with ``microseconds = u / denominator``: ``denominator`` is the ticks
    per quarter note (``u = sum(ticks * microseconds_per_quarter)``) or, for SMPTE time, ticks per second
    (times the frame-rate denominator).
    """
    starts, ends, pitches, tracks = [], [], [], []
    for index, track in enumerate(parsed.tracks):
        keep = ~track.is_drum
        starts.append(track.starts[keep])
        ends.append(track.ends[keep])
        pitches.append(track.pitches[keep])
        tracks.append(np.full(int(keep.sum()), index, dtype=np.int64))
    start, end = _concat(starts), _concat(ends)
    to_units, denominator = _tick_to_units(parsed)
    onset, offset = to_units(start), to_units(end)
    return NoteTimes(
        onset_key=onset,
        offset_key=offset,
        onset_steps=onset // (TIME_STEP_MS * 1000 * denominator),
        duration_steps=(offset - onset) // (DURATION_STEP_MS * 1000 * denominator),
        pitch=_concat(pitches),
        track=_concat(tracks),
    )


def _tick_to_units(parsed: ParsedMidi) -> tuple[Any, int]:
    """Returns ``(convert, denominator)``: ``convert(ticks)`` gives exact times in ``1 / denominator`` µs."""
    division = parsed.division
    if division & 0x8000:  # SMPTE: -frames per second in the high byte, ticks per frame in the low byte
        frames = 256 - (division >> 8)
        ticks_per_frame = division & 0xFF
        if ticks_per_frame == 0 or frames not in (24, 25, 29, 30):
            raise MidiTokenizationError(f"{parsed.name} has an invalid SMPTE time division {division:#06x}")
        if frames == 29:  # 29 means 29.97 frames per second, i.e. 30000 / 1001
            numerator, denominator = 1_000_000 * 1001, 30000 * ticks_per_frame
        else:
            numerator, denominator = 1_000_000, frames * ticks_per_frame
        return (lambda ticks: ticks * numerator), denominator
    ticks, mspq = tempo_table(parsed)
    if ticks.size == 0 or ticks[0] > 0:
        ticks = np.concatenate(([0], ticks))
        mspq = np.concatenate(([_DEFAULT_MSPQ], mspq))
    # Units elapsed at each tempo change: sum of (segment length in ticks) * (µs per quarter).
    at_change = np.concatenate(([0], np.cumsum(np.diff(ticks) * mspq[:-1])))

    def convert(values: np.ndarray) -> np.ndarray:
        segment = np.maximum(np.searchsorted(ticks, values, side="right") - 1, 0)
        return at_change[segment] + (values - ticks[segment]) * mspq[segment]

    return convert, division


# ----------------------------------------------------------------------------------------------------------
# Encoding and decoding
# ----------------------------------------------------------------------------------------------------------


def check_timing(timing: str) -> str:
    """Validates a timing mode name.

    Raises:
        ValueError: If ``timing`` is not one of :data:`TIMING_MODES`.
    """
    if timing not in TIMING_MODES:
        raise ValueError(f"timing must be one of {TIMING_MODES}, got {timing!r}")
    return timing


def encode_midi(source: Any, timing: str = "upstream") -> list[int]:
    """Tokenises one MIDI source (see :meth:`GigaPianoTokenizer.encode_midi`)."""
    check_timing(timing)
    parsed = parse_midi(source)
    if timing == "upstream" and parsed.division & 0x8000:
        # Upstream read SMPTE divisions as ticks per quarter note (a 257 s piece came out as 1.8 s); SMPTE
        # time does not depend on tempo, so the exact conversion is used instead (it checks the division).
        logger.warning(
            "%s uses SMPTE time; its notes are timed exactly, not with upstream's timing", parsed.name
        )
        timing = "tempo_map"
    times = upstream_note_times(parsed) if timing == "upstream" else tempo_map_note_times(parsed)
    if times.pitch.size == 0:
        raise MidiTokenizationError(_no_notes_message(parsed))
    order = order_notes(times.onset_key, times.pitch, times.track, times.offset_key)
    return steps_to_ids(times.onset_steps[order], times.duration_steps[order], times.pitch[order])


def _no_notes_message(parsed: ParsedMidi) -> str:
    """Explains why a file gave no notes: no notes at all, or drums only."""
    n_drum_notes = sum(int(track.is_drum.sum()) for track in parsed.tracks)
    if n_drum_notes:
        return (
            f"{parsed.name} has only drum notes (MIDI channel 10, {n_drum_notes} notes); GIGA-Piano "
            "ignores drums, so there is nothing to tokenise"
        )
    return f"{parsed.name} has no notes ({len(parsed.tracks)} track(s)); there is nothing to tokenise"


def notes_to_score(
    onsets: np.ndarray,
    offsets: np.ndarray,
    pitches: np.ndarray,
    velocities: np.ndarray,
    track_name: str = "Piano",
) -> Any:
    """Builds a one-track piano score where one tick is one millisecond.

    Args:
        onsets: Note onsets in ms.
        offsets: Note offsets in ms.
        pitches: MIDI pitches.
        velocities: MIDI velocities.
        track_name: Name of the piano track.

    Returns:
        A ``symusic.Score`` (tick time, 500 ticks per quarter at 120 bpm, one track with program 0).
    """
    score = symusic.Score(DECODE_TICKS_PER_QUARTER)
    score.tempos.append(symusic.Tempo(0, mspq=DECODE_TEMPO_MSPQ))
    score.time_signatures.append(symusic.TimeSignature(0, 4, 4))
    track = symusic.Track(name=track_name, program=0, is_drum=False)
    if onsets.size:
        track.notes = symusic.Note.from_numpy(
            onsets.astype(np.int32),
            (offsets - onsets).astype(np.int32),
            np.clip(pitches, 0, 127).astype(np.int8),
            np.clip(velocities, 1, 127).astype(np.int8),
        )
    score.tracks.append(track)
    return score
