"""The tokenizer under hostile MIDI: memory proportional to the input, out-of-memory never called invalid
MIDI, SMPTE time honoured (or refused when invalid) instead of squashed."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

import tokenization.gigapiano_midi as gigapiano_midi
from tokenization import GigaPianoTokenizer, MidiTokenizationError

REPO = Path(__file__).resolve().parents[1]
KEYS = range(21, 109)
CHANNELS = [channel for channel in range(16) if channel != 9]  # channel 10 (index 9) holds drums


def midi_file(track: bytes, division: int = 480) -> bytes:
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, division)
    return header + b"MTrk" + struct.pack(">I", len(track)) + track


def unterminated_flood(extra: int) -> bytes:
    """Every piano key held on 15 channels plus `extra` more notes on one key, none ever switched off."""
    events = bytearray()
    for channel in CHANNELS:
        events += bytes([0, 0x90 | channel, KEYS[0], 64])
        for key in KEYS[1:]:
            events += bytes([1, key, 64])  # running status
    events += bytes([1, 0x90, 60, 64]) + bytes([1, 60, 64]) * (extra - 1)
    return midi_file(bytes(events) + b"\x00\xff\x2f\x00")


def test_unterminated_notes_take_memory_proportional_to_the_file(tmp_path):
    """Scaled down from 2M never-ended notes (6 MB, over 4 GiB): 1,320 held keys on 15 channels plus 20,000
    notes on one key. The file is 70 KB; the parse must fit in 1.5 GiB of address space and 30 s."""
    extra = 20_000
    path = tmp_path / "flood.mid"
    path.write_bytes(unterminated_flood(extra))
    script = textwrap.dedent(
        f"""
        import json, resource, time
        from tokenization import GigaPianoTokenizer
        tokenizer = GigaPianoTokenizer()
        tokenizer.encode_midi({str(REPO / "examples" / "fur_elise.mid")!r})  # warm up every import
        size = int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmSize"))) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size + 3 * 2**29, size + 3 * 2**29))
        started = time.monotonic()
        ids = tokenizer.encode_midi({str(path)!r})
        print(json.dumps({{"tokens": len(ids), "seconds": time.monotonic() - started}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["tokens"] == 4 * (len(CHANNELS) * len(KEYS) + extra)
    assert report["seconds"] < 30


def test_out_of_memory_is_not_reported_as_invalid_midi(monkeypatch):
    def exhausted(data):
        raise MemoryError

    fake = types.SimpleNamespace(
        core=types.SimpleNamespace(ScoreTick=types.SimpleNamespace(from_midi=exhausted))
    )
    monkeypatch.setattr(gigapiano_midi, "symusic", fake)
    with pytest.raises(MemoryError):
        gigapiano_midi.parse_midi(unterminated_flood(2))


def smpte_piece(division: int, seconds: int) -> bytes:
    """One note per second for `seconds` seconds at 25 frames x 40 ticks = 1000 ticks per second."""
    events = bytearray()
    for index in range(seconds):
        delta = b"\x00" if index == 0 else b"\x83\x74"  # 500 ticks after the previous note's end
        events += delta + bytes([0x90, 60, 64]) + b"\x83\x74" + bytes([0x80, 60, 0])  # held 500 ticks
    return midi_file(bytes(events) + b"\x00\xff\x2f\x00", division)


@pytest.mark.parametrize("timing", ["upstream", "tempo_map"])
def test_smpte_time_is_honoured_in_every_timing(timing):
    division = (256 - 25) << 8 | 40  # -25 frames per second, 40 ticks per frame
    ids = GigaPianoTokenizer().encode_midi(smpte_piece(division, 257), timing=timing)
    notes = GigaPianoTokenizer().ids_to_timed_notes(ids)
    assert len(notes) == 257
    assert notes[-1].onset_ms == pytest.approx(256_000, rel=0.01)  # not squashed to about 2 s


@pytest.mark.parametrize("timing", ["upstream", "tempo_map"])
def test_an_invalid_smpte_division_is_refused(timing):
    division = (256 - 28) << 8 | 40  # 28 frames per second does not exist
    with pytest.raises(MidiTokenizationError, match="invalid SMPTE time division"):
        GigaPianoTokenizer().encode_midi(smpte_piece(division, 3), timing=timing)
