"""Render notes to a WAV file through a SoundFont.

Backends, in order: `pyfluidsynth` (the project's `audio` extra, over the system `libfluidsynth`), then
the `fluidsynth` command-line program. symusic's own `Synthesizer` is not used: in symusic 0.6.0 its
`render` fails to convert the returned array under numpy 2 ("Unable to convert function return value to
a Python type"), so it cannot produce audio with the numpy this project pins.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import numpy as np

logger = logging.getLogger(__name__)

#: Where Debian / Ubuntu packages put General MIDI SoundFonts (`fluid-soundfont-gm`, `timgm6mb-soundfont`).
DEBIAN_SOUNDFONTS: tuple[str, ...] = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
)
DEFAULT_SAMPLE_RATE = 44_100
#: Seconds rendered after the last note-off so the piano's release is not cut.
RELEASE_TAIL_S = 1.5
#: FluidSynth's master gain (its default, 0.2, renders a solo piano very quietly).
GAIN = 0.6


class _TimedNote(Protocol):
    onset_ms: int
    offset_ms: int
    pitch: int
    velocity: int


class AudioUnavailableError(RuntimeError):
    """No synthesizer (pyfluidsynth or the fluidsynth program) or no SoundFont is installed."""


def find_soundfont(soundfont: str | Path | None = None) -> Path:
    """The SoundFont to use: `soundfont` if given, else the first Debian location that exists.

    Raises:
        FileNotFoundError: the given file is missing.
        AudioUnavailableError: none given and none installed.
    """
    if soundfont is not None:
        path = Path(soundfont).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"SoundFont {path} does not exist.")
        return path
    for candidate in DEBIAN_SOUNDFONTS:
        if Path(candidate).is_file():
            return Path(candidate)
    raise AudioUnavailableError(
        "No SoundFont found for --wav: pass --soundfont file.sf2, or install one "
        "(Debian/Ubuntu: apt-get install fluid-soundfont-gm)."
    )


def check_synthesizer() -> str:
    """Name the backend `render_wav` will use ("pyfluidsynth" or the `fluidsynth` program's path).

    Raises:
        AudioUnavailableError: neither is installed (the message names what to install).
    """
    try:
        import fluidsynth  # noqa: F401
    except (ImportError, OSError) as error:
        program = shutil.which("fluidsynth")
        if program is None:
            raise AudioUnavailableError(
                f"Cannot render --wav: pyfluidsynth is not usable ({error}) and the fluidsynth program is "
                "not installed. Install the project's audio extra (pip install pyfluidsynth) and the "
                "FluidSynth library (Debian/Ubuntu: apt-get install libfluidsynth3 fluid-soundfont-gm)."
            ) from error
        return program
    return "pyfluidsynth"


def synthesize(
    notes: Iterable[_TimedNote], soundfont: str | Path, sample_rate: int = DEFAULT_SAMPLE_RATE
) -> np.ndarray:
    """Render notes (millisecond times) to stereo int16 samples with pyfluidsynth, piano program 0.

    Returns:
        `(num_samples, 2)` int16 array.

    Raises:
        AudioUnavailableError: pyfluidsynth or the FluidSynth library is not installed.
    """
    try:
        import fluidsynth
    except (ImportError, OSError) as error:
        raise AudioUnavailableError(f"pyfluidsynth is not usable ({error})") from error
    events = []
    for note in notes:
        events.append((note.offset_ms, 0, note.pitch, 0))  # note-offs first at equal times: re-strikes sound
        events.append((note.onset_ms, 1, note.pitch, note.velocity))
    events.sort()
    synth = fluidsynth.Synth(gain=GAIN, samplerate=float(sample_rate))
    try:
        font = synth.sfload(str(soundfont))
        if font == -1:
            raise AudioUnavailableError(f"FluidSynth could not load the SoundFont {soundfont}.")
        synth.program_select(0, font, 0, 0)
        chunks, rendered = [], 0
        for time_ms, is_on, pitch, velocity in events:
            target = round(time_ms * sample_rate / 1000)
            if target > rendered:
                chunks.append(synth.get_samples(target - rendered))
                rendered = target
            if is_on:
                synth.noteon(0, pitch, max(1, min(127, velocity)))
            else:
                synth.noteoff(0, pitch)
        chunks.append(synth.get_samples(round(RELEASE_TAIL_S * sample_rate)))
    finally:
        synth.delete()
    return np.concatenate(chunks).astype(np.int16).reshape(-1, 2)


def write_wav(samples: np.ndarray, path: str | Path, sample_rate: int = DEFAULT_SAMPLE_RATE) -> Path:
    """Write `(num_samples, channels)` int16 samples as a PCM WAV file."""
    path = Path(path)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(samples.shape[1])
        handle.setsampwidth(2)
        handle.setframerate(sample_rate)
        handle.writeframes(np.ascontiguousarray(samples, dtype="<i2").tobytes())
    return path


def render_wav(
    notes: list[_TimedNote],
    path: str | Path,
    midi_path: str | Path | None = None,
    soundfont: str | Path | None = None,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
) -> Path:
    """Render notes to `path` (WAV): pyfluidsynth if usable, else the `fluidsynth` program on `midi_path`.

    Args:
        notes: timed notes (`onset_ms`, `offset_ms`, `pitch`, `velocity`), as from
            `tokenizer.ids_to_timed_notes`.
        path: WAV file to write (written to a temporary name first, then moved).
        midi_path: the same music as a MIDI file, for the command-line fallback.
        soundfont: SoundFont file; default: the Debian locations.

    Raises:
        AudioUnavailableError: no synthesizer or no SoundFont.
    """
    font = find_soundfont(soundfont)
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    try:
        try:
            write_wav(synthesize(notes, font, sample_rate), partial, sample_rate)
        except AudioUnavailableError as error:
            program = shutil.which("fluidsynth")
            if program is None or midi_path is None:
                raise AudioUnavailableError(
                    f"Cannot render --wav: {error}, and the fluidsynth program is not installed. Install the "
                    "project's audio extra (pip install pyfluidsynth) and the FluidSynth library "
                    "(Debian/Ubuntu: apt-get install libfluidsynth3 fluid-soundfont-gm)."
                ) from error
            logger.info("pyfluidsynth unavailable (%s); rendering with %s", error, program)
            _render_with_program(program, font, Path(midi_path), partial, sample_rate)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _render_with_program(
    program: str, soundfont: Path, midi_path: Path, wav_path: Path, sample_rate: int
) -> None:
    """`fluidsynth -ni -F out.wav` renders a MIDI file faster than real time, without an audio device."""
    with tempfile.TemporaryDirectory() as scratch:  # fluidsynth may try to write a config in $HOME
        command = [program, "-ni", "-q", "-g", str(GAIN), "-r", str(sample_rate), "-F", str(wav_path),
                   str(soundfont), str(midi_path)]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HOME": scratch})
    if result.returncode != 0 or not wav_path.is_file():
        raise AudioUnavailableError(f"fluidsynth failed: {' '.join(result.stderr.split())[:300]}")


__all__ = [
    "AudioUnavailableError",
    "check_synthesizer",
    "DEBIAN_SOUNDFONTS",
    "find_soundfont",
    "render_wav",
    "synthesize",
    "write_wav",
]
