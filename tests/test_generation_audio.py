"""WAV output with Python packages only: the built-in SoundFont player, pretty_midi's SoundFont and the choice
of synthesizer. FluidSynth, tinysoundfont and the system SoundFonts are hidden where it matters."""

from __future__ import annotations

import struct
import wave
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from gigapiano.generation import audio
from gigapiano.generation.soundfont import SoundFont, SoundFontError


class Note(NamedTuple):
    onset_ms: int
    offset_ms: int
    pitch: int
    velocity: int


def _chunk(name: bytes, payload: bytes) -> bytes:
    return name + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) % 2 else b"")


def _list(kind: bytes, *chunks: bytes) -> bytes:
    return _chunk(b"LIST", kind + b"".join(chunks))


def write_sine_soundfont(path: Path, rate: int = 22_050, root: int = 69) -> Path:
    """A one-preset SoundFont whose only sample is a looped sine at `root`'s frequency (written here, so the
    player is checked against a sound whose pitch and loudness are known)."""
    period = rate / (440.0 * 2 ** ((root - 69) / 12))
    cycles = 50
    length = round(period * cycles)
    wave_data = (np.sin(2 * np.pi * np.arange(length) / period) * 16_000).astype("<i2")
    smpl = wave_data.tobytes() + b"\0" * 92  # 46 zero samples after the sample, as the spec asks
    gen = lambda op, amount: struct.pack("<Hh", op, amount)  # noqa: E731
    key_range = struct.pack("<HBB", 43, 0, 127)
    pgen = key_range + gen(41, 0) + gen(0, 0)  # preset zone: all keys -> instrument 0; terminal
    igen = key_range + gen(54, 1) + gen(38, -3986) + gen(53, 0) + gen(0, 0)  # loop, 0.1 s release, sample 0
    phdr = struct.pack("<20sHHHIII", b"Sine", 0, 0, 0, 0, 0, 0) + struct.pack(
        "<20sHHHIII", b"EOP", 0, 0, 1, 0, 0, 0
    )
    inst = struct.pack("<20sH", b"Sine", 0) + struct.pack("<20sH", b"EOI", 1)
    shdr = struct.pack("<20sIIIIIBbHH", b"sine", 0, length, 0, length, rate, root, 0, 0, 1)
    shdr += struct.pack("<20sIIIIIBbHH", b"EOS", 0, 0, 0, 0, 0, 0, 0, 0, 0)
    pdta = _list(
        b"pdta",
        _chunk(b"phdr", phdr),
        _chunk(b"pbag", struct.pack("<HHHH", 0, 0, 2, 0)),
        _chunk(b"pmod", b"\0" * 10),
        _chunk(b"pgen", pgen),
        _chunk(b"inst", inst),
        _chunk(b"ibag", struct.pack("<HHHH", 0, 0, 4, 0)),
        _chunk(b"imod", b"\0" * 10),
        _chunk(b"igen", igen),
        _chunk(b"shdr", shdr),
    )
    body = b"sfbk" + _list(b"INFO", _chunk(b"ifil", struct.pack("<HH", 2, 1))) + _list(
        b"sdta", _chunk(b"smpl", smpl)
    ) + pdta  # fmt: skip
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    mono = samples.astype(np.float64).mean(axis=1)
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(len(mono))))
    return float(np.fft.rfftfreq(len(mono), 1 / rate)[spectrum.argmax()])


@pytest.fixture
def hide_fluidsynth(monkeypatch):
    """No pyfluidsynth library, no fluidsynth program, no tinysoundfont, no system SoundFont."""
    monkeypatch.setattr(audio, "_pyfluidsynth_usable", lambda: "hidden by the test")
    monkeypatch.setattr(audio, "_tinysoundfont_usable", lambda: "hidden by the test")
    real_which = audio.shutil.which
    monkeypatch.setattr(
        audio.shutil, "which", lambda name, *a, **k: None if name == "fluidsynth" else real_which(name)
    )
    monkeypatch.setattr(audio, "DEBIAN_SOUNDFONTS", ())


@pytest.mark.parametrize("pitch", [57, 69, 81])
def test_sampler_plays_the_note_at_its_pitch(tmp_path, pitch):
    font = SoundFont(write_sine_soundfont(tmp_path / "sine.sf2"))
    samples = font.render([Note(0, 1000, pitch, 100)], 22_050, tail_s=0.5)
    assert samples.dtype == np.int16 and samples.shape == (round(1.5 * 22_050) + 1, 2)
    expected = 440.0 * 2 ** ((pitch - 69) / 12)
    assert abs(dominant_frequency(samples[:22_050], 22_050) - expected) < expected * 0.01
    assert np.abs(samples).max() > 20_000  # normalised to about -2 dBFS, not silent
    assert np.abs(samples[-2000:]).max() < 50  # released: the tail dies away


def test_sampler_velocity_sets_loudness_and_notes_mix(tmp_path):
    font = SoundFont(write_sine_soundfont(tmp_path / "sine.sf2"))
    loud_soft = font.render([Note(0, 400, 69, 120), Note(600, 1000, 69, 30)], 22_050, tail_s=0.3)
    first = np.abs(loud_soft[2000:8000]).max()
    second = np.abs(loud_soft[15_000:20_000]).max()
    assert second < first / 5  # velocity 30 vs 120: (30 / 120) ** 2 = 1/16 of the amplitude


def test_bad_soundfonts_are_clear_errors(tmp_path):
    not_sf2 = tmp_path / "x.sf2"
    not_sf2.write_bytes(b"RIFF\x04\x00\x00\x00WAVE")
    with pytest.raises(SoundFontError, match="not a SoundFont"):
        SoundFont(not_sf2)
    with pytest.raises(SoundFontError, match="no preset 5"):
        SoundFont(write_sine_soundfont(tmp_path / "sine.sf2"), program=5)


def test_auto_without_fluidsynth_uses_the_builtin_sampler(tmp_path, hide_fluidsynth):
    font = write_sine_soundfont(tmp_path / "sine.sf2")
    assert audio.check_synthesizer() == audio.SAMPLER
    rendered = audio.render_audio(
        [Note(0, 500, 60, 90)], tmp_path / "x.wav", soundfont=font, sample_rate=22_050
    )
    assert rendered.synthesizer == audio.SAMPLER and rendered.soundfont == font
    with wave.open(str(rendered.path), "rb") as handle:
        assert handle.getframerate() == 22_050 and handle.getnchannels() == 2
    with pytest.raises(audio.AudioUnavailableError, match="libfluidsynth3"):
        audio.check_synthesizer("fluidsynth")


def test_soundfont_comes_from_pretty_midi_when_the_system_has_none(hide_fluidsynth):
    pytest.importorskip("pretty_midi", reason="the audio extra (pretty_midi) is not installed")
    font = audio.find_soundfont()
    assert font.name == "TimGM6mb.sf2" and font.parent.name == "pretty_midi"  # inside the installed package
    assert len(SoundFont(font).zones_for(60, 90)) >= 1  # General MIDI program 0 has a piano zone at C4


@pytest.mark.slow
def test_pretty_midi_soundfont_renders_an_audible_piano(tmp_path, hide_fluidsynth):
    pytest.importorskip("pretty_midi", reason="the audio extra (pretty_midi) is not installed")
    notes = [Note(i * 200, i * 200 + 300, 60 + i % 12, 80) for i in range(10)]
    rendered = audio.render_audio(notes, tmp_path / "p.wav", sample_rate=22_050)
    assert rendered.soundfont.name == "TimGM6mb.sf2" and rendered.synthesizer == audio.SAMPLER
    with wave.open(str(rendered.path), "rb") as handle:
        samples = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2")
    assert samples.size > 22_050 and np.abs(samples).max() > 10_000


def test_unknown_synthesizer_is_a_clear_error():
    with pytest.raises(ValueError, match="gigapiano-sampler"):
        audio.check_synthesizer("timidity")
