"""What the web demo (`app.py`) does, without the UI: find the style models, check an upload, generate.

Kept free of Gradio so it can be tested directly and reused; it imports only the generation package
and the tokenizer, which is also what the Space folder ships (see `gigapiano.hub.space`).
"""

from __future__ import annotations

import json
import logging
import math
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
from gigapiano.generation.settings import DEFAULT_MOTIF_MEMORY, DEFAULT_TEMPERATURE, DEFAULT_TOP_P
from gigapiano.generation.style_mix import BASE_STYLE, StyleMixture
from gigapiano.generation.style_spec import MAX_STYLE_STRENGTH, StyleBlend

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODELS_DIR = PROJECT_ROOT / "models"
DEFAULT_EXAMPLES_DIR = PROJECT_ROOT / "examples"
#: Largest prompt file the demo accepts (bytes).
MAX_UPLOAD_BYTES = 1_000_000
MIDI_SUFFIXES = (".mid", ".midi")
DEMO_MODES = ("continue", "knn", "inpaint", "harmonize", "progression")
#: The modes that continue the prompt (its last `MAX_PROMPT_NOTES` notes are kept).
CONTINUING_MODES = ("continue", "knn", "progression")
#: Longest generation one request may ask for (notes), and the prompt notes kept for continuations.
MAX_NEW_NOTES = 512
MAX_PROMPT_NOTES = 256
#: Styles one demo request may blend; with the base model that is `MAX_LOADED_MODELS` models at once.
MAX_BLEND_STYLES = 2
#: Loaded models kept in memory: the base and the two styles of a blend. The least recently used one is
#: dropped before another loads, so no more than this many are ever held (requests run one at a time).
MAX_LOADED_MODELS = MAX_BLEND_STYLES + 1
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
        """`(model, tokenizer)` of a style (or `base`), loaded on first use and kept (up to
        `MAX_LOADED_MODELS`).

        Raises:
            DemoInputError: an unknown style.
        """
        if style not in self.sources:
            raise DemoInputError(f"Unknown style {style!r}; choose one of {', '.join(self.sources)}.")
        with self._lock:
            if style in self._loaded:
                self._loaded.move_to_end(style)
                return self._loaded[style]
            while len(self._loaded) >= MAX_LOADED_MODELS:  # make room first: never one model too many
                self._loaded.popitem(last=False)
            source = self.sources[style]
            logger.info("Loading the %s model from %s.", style, source)
            trust = self.trust_remote_code
            pair = (load_model(source, device="auto", trust_remote_code=trust), load_tokenizer(source, trust))
            self._loaded[style] = pair
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
    """Files and words for one generation: MIDI, piano roll, WAV (None without a synthesizer), summary,
    the settings used and the record written beside the MIDI (its JSON)."""

    midi: Path
    pianoroll: Path
    wav: Path | None
    summary: str
    settings: dict[str, Any]
    record: dict[str, Any] = field(default_factory=dict)


#: The demo's motif-memory slider goes up to this (the library accepts more).
MAX_DEMO_MOTIF_MEMORY = 200.0


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


def demo_style_blend(
    catalog: ModelCatalog,
    style: str,
    style_strength: float | None = 1.0,
    blend_with: str | None = None,
    blend_share: float | None = 0.5,
) -> StyleBlend | None:
    """The blend a request asks for, checked against the catalog; None for the style's own model (strength 1
    without a second style). A blend that is one style at full weight (`is_blend` False) runs that style's
    own model.

    Args:
        style: a style of the catalog, or a blend written as on the command line
            (`baroque:0.5,romantic:0.5`; without `blend_with`).
        style_strength: 0 = the base model, 1 = the style (or blend) as given, up to 2 exaggerates it.
        blend_with: a second style mixed in (None: none).
        blend_share: the second style's share of the mix, 0..1 (the first style gets the rest).

    Raises:
        DemoInputError: a strength or share out of range, an unknown or repeated style, more than
            `MAX_BLEND_STYLES` styles, weights above `MAX_STYLE_STRENGTH` in all, or a strength other than
            1 when the catalog has no base model to weigh against.
    """
    if style_strength is None or not 0 <= float(style_strength) <= MAX_STYLE_STRENGTH:
        raise DemoInputError(
            f"Style strength must be between 0 and {MAX_STYLE_STRENGTH:g}, got {style_strength}."
        )
    strength = float(style_strength)
    if strength == 1.0 and not blend_with and style in catalog.sources:
        return None  # the style's own model, whatever its name looks like
    if style == BASE_STYLE:
        raise DemoInputError(
            "The base model has no style to turn up, down or blend: choose a style (its strength 0 is the "
            "base model)."
        )
    if blend_with and (blend_share is None or not 0 <= float(blend_share) <= 1):
        raise DemoInputError(f"The blend share must be between 0 and 1, got {blend_share}.")
    try:
        if blend_with:
            pairs = ((style.strip(), 1.0 - float(blend_share)), (blend_with.strip(), float(blend_share)))
            blend = StyleBlend(tuple(pair for pair in pairs if pair[1] > 0), strength)
        else:
            blend = StyleBlend.parse(style, strength)
    except ValueError as error:
        message = (
            str(error)
            .replace("--style_strength", "the style strength")
            .replace("style_strength", "Style strength")
        )
        raise DemoInputError(message[:1].upper() + message[1:]) from None
    names = [name for name, _ in blend.weights]
    for name in names:
        if name not in catalog.sources:
            offered = ", ".join(s for s in catalog.sources if s != BASE_STYLE)
            raise DemoInputError(f"Unknown style {name!r}; choose one of {offered}.")
    if len(names) > MAX_BLEND_STYLES:
        raise DemoInputError(f"The demo blends at most {MAX_BLEND_STYLES} styles; {len(names)} were given.")
    if not math.isclose(blend.base_weight, 0.0, abs_tol=1e-12) and BASE_STYLE not in catalog.sources:
        raise DemoInputError(
            f"Style strength {strength:g} weighs the style against the base model, which this demo does not "
            "offer (start it with base=<model> in --models): use strength 1."
        )
    return blend


def load_demo_model(catalog: ModelCatalog, style: str, blend: StyleBlend | None) -> tuple[Any, Any, str]:
    """`(model, tokenizer, model label)` for a request: the style's own model, or, for a blend, the plain
    model that carries all the weight (strength 0: the base) or a `StyleMixture` of the catalog's models
    (the same rule as `gigapiano.generation.load_blend`, over the catalog's folders and Hub ids)."""
    if blend is None:
        model, tokenizer = catalog.load(style)
        return model, tokenizer, catalog.sources[style]
    members = blend.members()
    pairs = [catalog.load(name) for name, _ in members]
    label = " + ".join(catalog.sources[name] for name, _ in members)
    if len(members) == 1 and math.isclose(members[0][1], 1.0):
        return pairs[0][0], pairs[0][1], label
    model = StyleMixture([model for model, _ in pairs], [w for _, w in members], [n for n, _ in members])
    return model, pairs[0][1], label


def _blend_words(blend: StyleBlend) -> str:
    """`Style strength 1.5; model weights: base -0.5, baroque 1.5.` for the summary."""
    weights = ", ".join(f"{name} {weight:g}" for name, weight in blend.record()["model_weights"].items())
    return f" Style strength {blend.strength:g}; model weights: {weights}."


def _knn_words(record: dict[str, Any], settings: GenerationSettings) -> str:
    """What the anti-copy filter did, for the summary."""
    knn = record.get("knn")
    if not knn:
        return ""
    return (
        f" Anti-copy: each new note is the first of {settings.knn_candidates} samples that repeats none of "
        f"the last {settings.knn_memory_tokens // 4} notes (when every sample did, the first was kept: "
        f"{knn['fallbacks']} of {knn['notes']} notes)."
    )


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
    style_strength: float = 1.0,
    blend_with: str | None = None,
    blend_share: float = 0.5,
    motif_memory: float = DEFAULT_MOTIF_MEMORY,
    output_root: str | Path | None = None,
    soundfont: str | None = None,
    show_progress: bool = False,
) -> DemoResult:
    """One demo request: encode the prompt, generate, write MIDI + piano roll (+ WAV).

    Args:
        catalog: the style models.
        style / mode: what to generate (`DEMO_MODES`); `style` may also be a blend such as
            `baroque:0.5,romantic:0.5` (see `demo_style_blend`).
        prompt: MIDI bytes (see `read_upload`), or None to improvise (`continue` / `progression` only).
        temperature / max_new_notes / seed: sampling settings (seed None: random, reported back).
        min_pitch / max_pitch: inclusive range of generated pitches (MIDI numbers; default the piano).
        style_strength / blend_with / blend_share: style as a dial (`demo_style_blend`): 0 = the base
            model, 1 = the style model, up to 2 exaggerates; a second style and its share of the mix.
        motif_memory: how strongly the prompt's motifs come back (0 = off .. `MAX_DEMO_MOTIF_MEMORY`; see
            `GenerationSettings.motif_memory`).
        output_root: where request folders go (default: `<tmp>/gigapiano-demo`).
        soundfont: SoundFont for the WAV (default: the Debian General MIDI one when installed).
        show_progress: let a tqdm bar count notes (the UI turns it into a progress bar).

    Raises:
        DemoInputError: bad settings or style blend, a prompt that is not usable MIDI, or a mode that
            needs a prompt.
    """
    max_new_notes, seed = check_settings(mode, temperature, max_new_notes, seed)
    min_pitch, max_pitch = check_pitch_range_input(min_pitch, max_pitch)
    if motif_memory is None or not 0 <= float(motif_memory) <= MAX_DEMO_MOTIF_MEMORY:
        raise DemoInputError(
            f"Motif memory must be between 0 and {MAX_DEMO_MOTIF_MEMORY:g}, got {motif_memory}."
        )
    if prompt is None and mode in ("inpaint", "harmonize"):
        raise DemoInputError(f"The {mode} mode works on a prompt: upload a MIDI file or pick an example.")
    blend = demo_style_blend(catalog, style, style_strength, blend_with, blend_share)
    if blend is not None and not blend.is_blend:  # e.g. a share of 1: the second style's own model
        style, blend = blend.weights[0][0], None
    model, tokenizer, model_label = load_demo_model(catalog, style, blend)
    try:
        prompt_ids = load_prompt(prompt, tokenizer)
    except ValueError as error:
        message = str(error)
        raise DemoInputError(message[:1].upper() + message[1:]) from None
    if mode in CONTINUING_MODES:
        prompt_ids = prompt_ids[-4 * MAX_PROMPT_NOTES :]
    try:
        settings = GenerationSettings(
            mode=mode,
            max_new_notes=max_new_notes,
            temperature=float(temperature),
            top_p=DEFAULT_TOP_P,
            motif_memory=float(motif_memory),
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
    label, file_label = style, style
    if blend is not None:  # recorded as generate.py records a blend
        label = blend.describe()
        file_label = "-".join(name for name, _ in blend.weights) + f"-strength{blend.strength:g}"
    stem = f"gigapiano-{file_label}-{mode}-seed{seed}"
    record = provenance(
        result, 0, model=model_label, style=label, extra=blend.record() if blend is not None else None
    )
    piece = result.pieces[0]
    midi = write_midi(tokenizer, piece, folder / f"{stem}.mid", 90, marker_text(record))
    (folder / f"{stem}.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    title = f"{label}: {mode}, seed {seed}"
    png = save_pianoroll([roll_panel(tokenizer, result, 0, title)], folder / f"{stem}.png", dpi=80)
    wav, audio_note = _audio(tokenizer, piece, midi, soundfont)
    new_notes = record["generated_notes"]
    prompt_notes = len(prompt_ids) // 4
    styles = " + ".join(name for name, _ in blend.weights) if blend is not None else style
    summary = (
        f"**{styles}**, {mode}, seed {seed}: {new_notes} new note(s)"
        + (f" on a {prompt_notes}-note prompt." if prompt_notes else ", improvised without a prompt.")
        + (_blend_words(blend) if blend is not None else "")
        + _knn_words(record, result.settings)
        + audio_note
    )
    return DemoResult(midi, png, wav, summary, result.settings.to_dict(), record)


__all__ = [
    "BASE_STYLE",
    "DEMO_MODES",
    "DemoInputError",
    "DemoResult",
    "MAX_BLEND_STYLES",
    "MAX_DEMO_MOTIF_MEMORY",
    "MAX_LOADED_MODELS",
    "MAX_NEW_NOTES",
    "MAX_STYLE_STRENGTH",
    "MAX_UPLOAD_BYTES",
    "ModelCatalog",
    "PIANO_PITCH_RANGE",
    "demo_style_blend",
    "example_prompts",
    "load_demo_model",
    "read_upload",
    "run_demo_generation",
]
