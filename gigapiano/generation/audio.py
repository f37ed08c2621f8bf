"""Render notes to a WAV file through a SoundFont, with whatever synthesizer this machine has.

Synthesizers, in the order `auto` tries them: `pyfluidsynth` over the system FluidSynth library, the
`fluidsynth` command-line program (renders the MIDI file), `tinysoundfont` (a self-contained wheel; its
PyPI metadata pulls in PyAudio, which has no Linux wheel, so install it with `pip install --no-deps
tinysoundfont`) and the project's own numpy SoundFont player (`gigapiano.generation.soundfont`), which needs
nothing but numpy and so always works. SoundFonts, in order: `--soundfont`, the Debian General MIDI fonts,
then `TimGM6mb.sf2` from the `pretty_midi` wheel (the project's `audio` extra), so `pip install -e
".[audio]"` alone is enough for `--wav`. symusic's own `Synthesizer` is not used: in symusic 0.6.0 its
`render` fails under numpy 2 ("Unable to convert function return value to a Python type").
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # numpy is imported where samples are made: `generate.py --help` reads this module
    import numpy as np

logger = logging.getLogger(__name__)

#: Where Debian / Ubuntu packages put General MIDI SoundFonts (`fluid-soundfont-gm`, `timgm6mb-soundfont`).
DEBIAN_SOUNDFONTS: tuple[str, ...] = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
)
#: General MIDI SoundFonts that Python packages ship: (package, file inside it). `pretty_midi` is in the
#: project's `audio` extra.
PACKAGED_SOUNDFONTS: tuple[tuple[str, str], ...] = (("pretty_midi", "TimGM6mb.sf2"),)
DEFAULT_SAMPLE_RATE = 44_100
#: Seconds rendered after the last note-off so the piano's release is not cut.
RELEASE_TAIL_S = 1.5
#: FluidSynth's master gain (its default, 0.2, renders a solo piano very quietly).
GAIN = 0.6
#: The synthesizers `render_wav` knows, in the order `auto` tries them.
PYFLUIDSYNTH, FLUIDSYNTH_PROGRAM, TINYSOUNDFONT, SAMPLER = (
    "pyfluidsynth",
    "fluidsynth-program",
    "tinysoundfont",
    "gigapiano-sampler",
)
SYNTHESIZERS: tuple[str, ...] = (PYFLUIDSYNTH, FLUIDSYNTH_PROGRAM, TINYSOUNDFONT, SAMPLER)
#: What `--synthesizer` accepts: `auto`, `fluidsynth` (library, else program) or one of `SYNTHESIZERS`.
SYNTHESIZER_CHOICES: tuple[str, ...] = ("auto", "fluidsynth", TINYSOUNDFONT, SAMPLER)


class _TimedNote(Protocol):
    onset_ms: int
    offset_ms: int
    pitch: int
    velocity: int


class AudioUnavailableError(RuntimeError):
    """The requested synthesizer or a SoundFont is not installed (the message names what to install)."""


@dataclass(frozen=True)
class RenderedWav:
    """A written WAV and how it was made (recorded in the JSON sidecar)."""

    path: Path
    synthesizer: str
    soundfont: Path

    def record(self) -> dict[str, str]:
        return {"path": str(self.path), "synthesizer": self.synthesizer, "soundfont": str(self.soundfont)}


def packaged_soundfonts() -> list[Path]:
    """The SoundFonts of `PACKAGED_SOUNDFONTS` that are installed (found without importing the package)."""
    found = []
    for package, name in PACKAGED_SOUNDFONTS:
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        for folder in (spec.submodule_search_locations or []) if spec is not None else []:
            if (Path(folder) / name).is_file():
                found.append(Path(folder) / name)
    return found


def find_soundfont(soundfont: str | Path | None = None) -> Path:
    """The SoundFont to use: `soundfont` if given, else a Debian one, else one shipped by a Python package.

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
    packaged = packaged_soundfonts()
    if packaged:
        return packaged[0]
    raise AudioUnavailableError(
        'No SoundFont found for --wav: install the project\'s audio extra (pip install -e ".[audio]", which '
        "brings pretty_midi's TimGM6mb.sf2), pass --soundfont file.sf2, or install a system one "
        "(Debian/Ubuntu: apt-get install fluid-soundfont-gm)."
    )


def _pyfluidsynth_usable() -> str | None:
    """None when pyfluidsynth and its library load, else why not."""
    try:
        import fluidsynth  # noqa: F401
    except (ImportError, OSError) as error:
        return f"pyfluidsynth is not usable ({' '.join(str(error).split())})"
    return None


def _tinysoundfont_usable() -> str | None:
    try:
        import tinysoundfont  # noqa: F401
    except (ImportError, OSError) as error:
        return f"tinysoundfont is not usable ({' '.join(str(error).split())})"
    return None


def _available(synthesizer: str, have_midi: bool = True) -> str | None:
    """None when `synthesizer` can run here, else the reason."""
    if synthesizer == PYFLUIDSYNTH:
        return _pyfluidsynth_usable()
    if synthesizer == FLUIDSYNTH_PROGRAM:
        if shutil.which("fluidsynth") is None:
            return "the fluidsynth program is not installed"
        return None if have_midi else "the fluidsynth program needs the MIDI file"
    if synthesizer == TINYSOUNDFONT:
        return _tinysoundfont_usable()
    if synthesizer == SAMPLER:
        return None
    raise ValueError(f"Unknown synthesizer {synthesizer!r}; choose one of {', '.join(SYNTHESIZER_CHOICES)}.")


def candidates(synthesizer: str = "auto") -> tuple[str, ...]:
    """The synthesizers a `--synthesizer` choice may use, in order."""
    if synthesizer == "auto":
        return SYNTHESIZERS
    if synthesizer == "fluidsynth":
        return (PYFLUIDSYNTH, FLUIDSYNTH_PROGRAM)
    if synthesizer in SYNTHESIZERS:
        return (synthesizer,)
    raise ValueError(f"Unknown synthesizer {synthesizer!r}; choose one of {', '.join(SYNTHESIZER_CHOICES)}.")


def check_synthesizer(synthesizer: str = "auto", have_midi: bool = True) -> str:
    """Name the synthesizer `render_wav` will use for this choice (one of `SYNTHESIZERS`).

    Raises:
        AudioUnavailableError: none of the choice's synthesizers is installed (the message names what to
            install); never for `auto`, whose last resort is the built-in sampler.
    """
    reasons = []
    for name in candidates(synthesizer):
        reason = _available(name, have_midi)
        if reason is None:
            return name
        reasons.append(reason)
    raise _unavailable(synthesizer, reasons)


def _unavailable(synthesizer: str, reasons: list[str]) -> AudioUnavailableError:
    return AudioUnavailableError(
        f"Cannot render --wav with {synthesizer}: {'; '.join(reasons)}. Install the FluidSynth library "
        "(Debian/Ubuntu: apt-get install libfluidsynth3) or use --synthesizer auto (the built-in sampler "
        "needs no system package)."
    )


def _note_events(notes: Iterable[_TimedNote]) -> list[tuple[int, int, int, int]]:
    """`(time_ms, is_on, pitch, velocity)`, note-offs first at equal times so re-strikes sound."""
    events = []
    for note in notes:
        events.append((note.offset_ms, 0, note.pitch, 0))
        events.append((note.onset_ms, 1, note.pitch, note.velocity))
    return sorted(events)


def _play(
    synth, events: list[tuple[int, int, int, int]], sample_rate: int, pull: Callable[[int], np.ndarray]
):
    """Drive a channel-0 synthesizer (`noteon`/`noteoff`) through the events, pulling samples between them."""
    import numpy as np

    chunks, rendered = [], 0
    for time_ms, is_on, pitch, velocity in events:
        target = round(time_ms * sample_rate / 1000)
        if target > rendered:
            chunks.append(pull(target - rendered))
            rendered = target
        if is_on:
            synth.noteon(0, pitch, max(1, min(127, velocity)))
        else:
            synth.noteoff(0, pitch)
    chunks.append(pull(round(RELEASE_TAIL_S * sample_rate)))
    return np.concatenate(chunks)


def synthesize(
    notes: Iterable[_TimedNote], soundfont: str | Path, sample_rate: int = DEFAULT_SAMPLE_RATE
) -> np.ndarray:
    """Render notes (millisecond times) to stereo int16 samples with pyfluidsynth, piano program 0.

    Returns:
        `(num_samples, 2)` int16 array.

    Raises:
        AudioUnavailableError: pyfluidsynth or the FluidSynth library is not installed.
    """
    import numpy as np

    try:
        import fluidsynth
    except (ImportError, OSError) as error:
        raise AudioUnavailableError(f"pyfluidsynth is not usable ({error})") from error
    synth = fluidsynth.Synth(gain=GAIN, samplerate=float(sample_rate))
    try:
        font = synth.sfload(str(soundfont))
        if font == -1:
            raise AudioUnavailableError(f"FluidSynth could not load the SoundFont {soundfont}.")
        synth.program_select(0, font, 0, 0)
        samples = _play(synth, _note_events(notes), sample_rate, synth.get_samples)
    finally:
        synth.delete()
    return samples.astype(np.int16).reshape(-1, 2)


def synthesize_tinysoundfont(
    notes: Iterable[_TimedNote], soundfont: str | Path, sample_rate: int = DEFAULT_SAMPLE_RATE
) -> np.ndarray:
    """Render notes to `(num_samples, 2)` int16 samples with tinysoundfont, piano program 0."""
    import numpy as np

    try:
        import tinysoundfont
    except (ImportError, OSError) as error:
        raise AudioUnavailableError(f"tinysoundfont is not usable ({error})") from error
    synth = tinysoundfont.Synth(gain=0, samplerate=sample_rate)
    try:
        font = synth.sfload(str(soundfont))
    except Exception as error:  # noqa: BLE001 - its loader raises a bare Exception on a bad file
        raise AudioUnavailableError(
            f"tinysoundfont could not load the SoundFont {soundfont}: {error}"
        ) from error
    synth.program_select(0, font, 0, 0)

    def pull(count: int) -> np.ndarray:
        return np.frombuffer(synth.generate(count), dtype=np.float32).reshape(-1, 2)

    samples = _play(synth, _note_events(notes), sample_rate, pull)
    return np.round(np.clip(samples * GAIN * 1.5, -1.0, 1.0) * 32767).astype(np.int16)


def synthesize_sampler(
    notes: Iterable[_TimedNote], soundfont: str | Path, sample_rate: int = DEFAULT_SAMPLE_RATE
) -> np.ndarray:
    """Render notes to `(num_samples, 2)` int16 samples with the built-in numpy SoundFont player."""
    from .soundfont import SoundFontError, render_notes

    try:
        return render_notes(notes, soundfont, sample_rate, tail_s=RELEASE_TAIL_S)
    except SoundFontError as error:
        raise AudioUnavailableError(str(error)) from error


def write_wav(samples: np.ndarray, path: str | Path, sample_rate: int = DEFAULT_SAMPLE_RATE) -> Path:
    """Write `(num_samples, channels)` int16 samples as a PCM WAV file."""
    import numpy as np

    path = Path(path)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(samples.shape[1])
        handle.setsampwidth(2)
        handle.setframerate(sample_rate)
        handle.writeframes(np.ascontiguousarray(samples, dtype="<i2").tobytes())
    return path


_IN_PROCESS = {
    PYFLUIDSYNTH: "synthesize",
    TINYSOUNDFONT: "synthesize_tinysoundfont",
    SAMPLER: "synthesize_sampler",
}


def render_audio(
    notes: list[_TimedNote],
    path: str | Path,
    midi_path: str | Path | None = None,
    soundfont: str | Path | None = None,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    synthesizer: str = "auto",
) -> RenderedWav:
    """Render notes to `path` (WAV) with the first synthesizer of the choice that works here.

    Args:
        notes: timed notes (`onset_ms`, `offset_ms`, `pitch`, `velocity`), as from
            `tokenizer.ids_to_timed_notes`.
        path: WAV file to write (written to a temporary name first, then moved).
        midi_path: the same music as a MIDI file, for the `fluidsynth` program.
        soundfont: SoundFont file; default: `find_soundfont()`.
        synthesizer: `auto`, `fluidsynth`, `tinysoundfont` or `gigapiano-sampler` (see `candidates`).

    Returns:
        The file, the synthesizer that rendered it and the SoundFont.

    Raises:
        AudioUnavailableError: no SoundFont, or none of the chosen synthesizers works.
    """
    font = find_soundfont(soundfont)
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    reasons = []
    try:
        for name in candidates(synthesizer):
            reason = _available(name, have_midi=midi_path is not None)
            if reason is None:
                try:
                    if name == FLUIDSYNTH_PROGRAM:
                        _render_with_program(
                            shutil.which("fluidsynth"), font, Path(midi_path), partial, sample_rate
                        )
                    else:
                        write_wav(
                            globals()[_IN_PROCESS[name]](notes, font, sample_rate), partial, sample_rate
                        )
                except AudioUnavailableError as error:
                    reason = str(error)
            if reason is None:
                os.replace(partial, path)
                return RenderedWav(path, name, font)
            logger.info("No WAV through %s: %s", name, reason)
            reasons.append(reason)
    finally:
        partial.unlink(missing_ok=True)
    raise _unavailable(synthesizer, reasons)


def render_wav(*args: Any, **kwargs: Any) -> Path:
    """`render_audio` with the same arguments, returning only the WAV path."""
    return render_audio(*args, **kwargs).path


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
    "DEBIAN_SOUNDFONTS",
    "PACKAGED_SOUNDFONTS",
    "RenderedWav",
    "SYNTHESIZERS",
    "SYNTHESIZER_CHOICES",
    "check_synthesizer",
    "find_soundfont",
    "packaged_soundfonts",
    "render_audio",
    "render_wav",
    "synthesize",
    "synthesize_sampler",
    "synthesize_tinysoundfont",
    "write_wav",
]
