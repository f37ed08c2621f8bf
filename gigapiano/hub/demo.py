"""What the web demo (`app.py`) does, without the UI: find the style models, check an upload, generate.

Kept free of Gradio so it can be tested directly and reused; it imports only the generation package
and the tokenizer, which is also what the Space folder ships (see `gigapiano.hub.space`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gigapiano.generation import GenerationSettings, generate_continuation, load_prompt
from gigapiano.generation.audio import AudioUnavailableError, check_synthesizer, find_soundfont, render_wav
from gigapiano.generation.grammar import PIANO_PITCH_RANGE, check_pitch_range
from gigapiano.generation.outputs import marker_text, provenance, roll_panel, write_midi
from gigapiano.generation.pianoroll import save_pianoroll
from gigapiano.generation.resolve import load_model, load_tokenizer
from gigapiano.generation.settings import DEFAULT_TEMPERATURE, DEFAULT_TOP_P

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODELS_DIR = PROJECT_ROOT / "models"
DEFAULT_EXAMPLES_DIR = PROJECT_ROOT / "examples"
#: Largest prompt file the demo accepts (bytes).
MAX_UPLOAD_BYTES = 1_000_000
MIDI_SUFFIXES = (".mid", ".midi")
DEMO_MODES = ("continue", "inpaint", "harmonize", "progression")
#: Longest generation one request may ask for (notes), and the prompt notes kept for continuations.
MAX_NEW_NOTES = 512
MAX_PROMPT_NOTES = 256
#: Loaded models kept in memory (the least recently used one is dropped first).
MAX_LOADED_MODELS = 2
#: Generated files older than this are deleted at the next request (seconds).
OUTPUT_MAX_AGE_S = 3600
EXAMPLE_TITLES = {"fur_elise": "Für Elise (Beethoven), opening"}


class DemoInputError(ValueError):
    """An input the demo refuses, with a message meant for the person using it."""


@dataclass
class ModelCatalog:
    """The style models the demo offers: style name -> local folder or Hub id, loaded lazily.

    Args:
        sources: style -> model folder or Hub repo id.
        trust_remote_code: run the model code a folder or Hub repo carries (`app.py --trust_remote_code`)
            instead of the installed project's classes.
    """

    sources: dict[str, str]
    trust_remote_code: bool = False
    _loaded: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_models_dir(cls, models_dir: str | Path) -> ModelCatalog:
        """Every `gigapiano-<style>/` model folder under `models_dir` (the project's `models/` layout)."""
        root = Path(models_dir)
        sources = {
            folder.name.removeprefix("gigapiano-"): str(folder)
            for folder in sorted(root.glob("gigapiano-*"))
            if folder.is_dir()
            and ((folder / "config.json").is_file() or (folder / "adapter_config.json").is_file())
        }
        return cls(sources)

    @classmethod
    def from_spec(cls, spec: str | dict[str, str]) -> ModelCatalog:
        """`"baroque=ns/gigapiano-baroque,romantic=models/gigapiano-romantic"` (or the same as a dict).

        Raises:
            ValueError: an entry without `style=source`.
        """
        if isinstance(spec, dict):
            return cls({str(k): str(v) for k, v in spec.items()})
        sources = {}
        for entry in filter(None, (part.strip() for part in spec.split(","))):
            style, sep, source = entry.partition("=")
            if not sep or not style.strip() or not source.strip():
                raise ValueError(f"Model entry {entry!r} must be STYLE=FOLDER_OR_HUB_ID.")
            sources[style.strip()] = source.strip()
        return cls(sources)

    @property
    def styles(self) -> list[str]:
        return list(self.sources)

    def load(self, style: str) -> tuple[Any, Any]:
        """`(model, tokenizer)` of a style, loaded on first use and kept (up to `MAX_LOADED_MODELS`).

        Raises:
            DemoInputError: an unknown style.
        """
        if style not in self.sources:
            raise DemoInputError(f"Unknown style {style!r}; choose one of {', '.join(self.sources)}.")
        with self._lock:
            if style in self._loaded:
                self._loaded.move_to_end(style)
                return self._loaded[style]
            source = self.sources[style]
            logger.info("Loading the %s model from %s.", style, source)
            trust = self.trust_remote_code
            pair = (load_model(source, device="auto", trust_remote_code=trust), load_tokenizer(source, trust))
            self._loaded[style] = pair
            while len(self._loaded) > MAX_LOADED_MODELS:
                self._loaded.popitem(last=False)
            return pair


def example_prompts(examples_dir: str | Path = DEFAULT_EXAMPLES_DIR) -> dict[str, Path]:
    """Title -> MIDI file of the example prompts shipped with the project (`examples/*.mid`)."""
    folder = Path(examples_dir)
    return {
        EXAMPLE_TITLES.get(path.stem, path.stem.replace("_", " ")): path
        for path in sorted(folder.glob("*.mid"))
        if path.is_file()
    }


def read_upload(path: str | os.PathLike | None) -> bytes | None:
    """The bytes of an uploaded prompt after checking its type and size; None when nothing was uploaded.

    Raises:
        DemoInputError: not a `.mid`/`.midi` file, larger than `MAX_UPLOAD_BYTES`, or not MIDI inside.
    """
    if path is None or str(path) == "":
        return None
    path = Path(path)
    if path.suffix.lower() not in MIDI_SUFFIXES:
        raise DemoInputError(f"{path.name} is not a MIDI file: upload a .mid or .midi file.")
    if not path.is_file():
        raise DemoInputError(f"The upload {path.name} is missing; upload it again.")
    size = path.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        raise DemoInputError(
            f"{path.name} is {size / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES / 1e6:g} MB."
        )
    data = path.read_bytes()
    if not data.startswith(b"MThd"):
        raise DemoInputError(f"{path.name} is not a MIDI file (it does not start with a MIDI header).")
    return data


@dataclass
class DemoResult:
    """Files and words for one generation: MIDI, piano roll, WAV (None without a synthesizer), summary."""

    midi: Path
    pianoroll: Path
    wav: Path | None
    summary: str
    settings: dict[str, Any]


def check_settings(
    mode: str, temperature: float, max_new_notes: float, seed: float | None
) -> tuple[int, int | None]:
    """Validate the UI values; returns `(max_new_notes, seed)` as integers (seed None: random).

    Raises:
        DemoInputError: naming the value and its range.
    """
    if mode not in DEMO_MODES:
        raise DemoInputError(f"Unknown mode {mode!r}; choose one of {', '.join(DEMO_MODES)}.")
    if temperature is None or not 0 <= float(temperature) <= 2:
        raise DemoInputError(f"Temperature must be between 0 and 2, got {temperature}.")
    if max_new_notes is None or not 1 <= int(max_new_notes) <= MAX_NEW_NOTES:
        raise DemoInputError(f"Length must be 1..{MAX_NEW_NOTES} notes, got {max_new_notes}.")
    if seed is not None and (int(seed) != seed or not 0 <= int(seed) < 2**31):
        raise DemoInputError(f"Seed must be a whole number from 0 to {2**31 - 1}, got {seed}.")
    return int(max_new_notes), None if seed is None else int(seed)


def check_pitch_range_input(min_pitch: float | None, max_pitch: float | None) -> tuple[int, int]:
    """Validate the UI's pitch range; returns `(min_pitch, max_pitch)` as integers.

    Raises:
        DemoInputError: a bound that is not a whole number in 1..126, or lowest above highest.
    """
    try:
        return check_pitch_range(min_pitch, max_pitch)
    except ValueError as error:
        message = str(error).replace("min_pitch", "Lowest pitch").replace("max_pitch", "highest pitch")
        raise DemoInputError(message[:1].upper() + message[1:]) from None


def _sweep_old_outputs(root: Path) -> None:
    """Delete request folders older than `OUTPUT_MAX_AGE_S` (a long-running Space must not fill its disk)."""
    now = time.time()
    for folder in root.glob("request-*"):
        try:
            if now - folder.stat().st_mtime > OUTPUT_MAX_AGE_S:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            continue


def _audio(tokenizer: Any, piece: list[int], midi: Path, soundfont: str | None) -> tuple[Path | None, str]:
    try:
        font = find_soundfont(soundfont)
        check_synthesizer()
        path = render_wav(tokenizer.ids_to_timed_notes(piece), midi.with_suffix(".wav"), midi, font)
        return path, ""
    except (AudioUnavailableError, FileNotFoundError) as error:
        logger.info("No audio: %s", error)
        return None, " No audio: this server has no synthesizer or SoundFont; download the MIDI."


def run_demo_generation(
    catalog: ModelCatalog,
    style: str,
    mode: str,
    prompt: bytes | None,
    *,
    temperature: float = DEFAULT_TEMPERATURE,
    max_new_notes: int = 128,
    seed: int | None = None,
    min_pitch: int = PIANO_PITCH_RANGE[0],
    max_pitch: int = PIANO_PITCH_RANGE[1],
    output_root: str | Path | None = None,
    soundfont: str | None = None,
    show_progress: bool = False,
) -> DemoResult:
    """One demo request: encode the prompt, generate, write MIDI + piano roll (+ WAV).

    Args:
        catalog: the style models.
        style / mode: what to generate (`DEMO_MODES`).
        prompt: MIDI bytes (see `read_upload`), or None to improvise (`continue` / `progression` only).
        temperature / max_new_notes / seed: sampling settings (seed None: random, reported back).
        min_pitch / max_pitch: inclusive range of generated pitches (MIDI numbers; default the piano).
        output_root: where request folders go (default: `<tmp>/gigapiano-demo`).
        soundfont: SoundFont for the WAV (default: the Debian General MIDI one when installed).
        show_progress: let a tqdm bar count notes (the UI turns it into a progress bar).

    Raises:
        DemoInputError: bad settings, a prompt that is not usable MIDI, or a mode that needs a prompt.
    """
    max_new_notes, seed = check_settings(mode, temperature, max_new_notes, seed)
    min_pitch, max_pitch = check_pitch_range_input(min_pitch, max_pitch)
    if prompt is None and mode in ("inpaint", "harmonize"):
        raise DemoInputError(f"The {mode} mode works on a prompt: upload a MIDI file or pick an example.")
    model, tokenizer = catalog.load(style)
    try:
        prompt_ids = load_prompt(prompt, tokenizer)
    except ValueError as error:
        message = str(error)
        raise DemoInputError(message[:1].upper() + message[1:]) from None
    if mode in ("continue", "progression"):
        prompt_ids = prompt_ids[-4 * MAX_PROMPT_NOTES :]
    try:
        settings = GenerationSettings(
            mode=mode,
            max_new_notes=max_new_notes,
            temperature=float(temperature),
            top_p=DEFAULT_TOP_P,
            seed=seed,
            min_pitch=min_pitch,
            max_pitch=max_pitch,
        )
        result = generate_continuation(model, prompt_ids, settings, show_progress=show_progress)
    except ValueError as error:  # a pitch range too narrow for the mode's chords
        raise DemoInputError(str(error)) from None

    root = Path(output_root or Path(tempfile.gettempdir()) / "gigapiano-demo")
    root.mkdir(parents=True, exist_ok=True)
    _sweep_old_outputs(root)
    folder = Path(tempfile.mkdtemp(prefix="request-", dir=root))
    seed = result.settings.seed
    stem = f"gigapiano-{style}-{mode}-seed{seed}"
    record = provenance(result, 0, model=catalog.sources[style], style=style)
    piece = result.pieces[0]
    midi = write_midi(tokenizer, piece, folder / f"{stem}.mid", 90, marker_text(record))
    (folder / f"{stem}.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    title = f"{style}: {mode}, seed {seed}"
    png = save_pianoroll([roll_panel(tokenizer, result, 0, title)], folder / f"{stem}.png", dpi=80)
    wav, audio_note = _audio(tokenizer, piece, midi, soundfont)
    new_notes = record["generated_notes"]
    prompt_notes = len(prompt_ids) // 4
    summary = (
        f"**{style}**, {mode}, seed {seed}: {new_notes} new note(s)"
        + (f" on a {prompt_notes}-note prompt." if prompt_notes else ", improvised without a prompt.")
        + audio_note
    )
    return DemoResult(midi, png, wav, summary, result.settings.to_dict())


__all__ = [
    "DEMO_MODES",
    "DemoInputError",
    "DemoResult",
    "MAX_NEW_NOTES",
    "MAX_UPLOAD_BYTES",
    "ModelCatalog",
    "PIANO_PITCH_RANGE",
    "example_prompts",
    "read_upload",
    "run_demo_generation",
]
