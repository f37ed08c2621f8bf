"""Inference Endpoints handler for a GIGA-Piano model repo: base64 MIDI prompt in, base64 MIDI (and WAV) out.

`publish.py` copies this file, unchanged, into every published model repo next to a `requirements.txt`.
It is self-contained on purpose: it imports only torch, transformers and the standard library, and reads
MIDI through the tokenizer code shipped in the same repo (`AutoTokenizer`, `trust_remote_code=True`). The
`gigapiano` project is not on PyPI, so an endpoint could not install it; instead the few lines that matter
are here: a logits processor that masks every id breaking `<sep> dt dur pitch` (so every returned note is
well formed, the same guarantee as the project's `NoteStructureLogitsProcessor`) and keeps generated
pitches on the piano keyboard (21..108 unless `min_pitch` / `max_pitch` widen it), and a sampling loop
that slides the window when the context is full.

Request (JSON):

    {"inputs": "<base64 MIDI file>" | null,
     "parameters": {"max_new_notes": 128, "temperature": 0.9, "top_k": 0, "top_p": 1.0, "seed": 0,
                    "num_variations": 1, "velocity": 90, "audio": true, "min_pitch": 21, "max_pitch": 108}}

Response (JSON):

    {"outputs": [{"midi": "<base64>", "wav": "<base64>" (only when audio was rendered),
                  "notes": 120, "new_notes": 64}],
     "seed": 0, "parameters": {...as used...}, "audio": "rendered" | "<why not>"}

Limits (see docs/limits.md), all checked before any model work: the prompt file is at most
`MAX_MIDI_BYTES` (the raw request text is measured before it is even split); `max_new_notes` x
`num_variations` is at most `MAX_TOTAL_NEW_NOTES`; generation stops at whole notes once it has run
`MAX_GENERATION_SECONDS` or used `MAX_GENERATION_CPU_SECONDS` of CPU time (the response then says
`"stopped": "time limit ..."` or `"stopped": "CPU time limit ..."` and counts the notes made); the WAV of
each output covers at most its first `MAX_AUDIO_SECONDS`.

The model and tokenizer load with the project's own classes when `gigapiano` is installed; on an endpoint
(where it is not) they load from the code shipped in this same repo, which is the code being deployed.

Bad input raises `EndpointInputError` (a `ValueError` carrying an HTTP `status_code`: 400, 413 or 422);
the Inference Endpoints toolkit answers any exception with HTTP 400 and `{"error": "<message>"}`, and the
message starts with the specific status (for example "413 Payload Too Large: ...").
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import os
import random
import shutil
import subprocess
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)

logger = logging.getLogger(__name__)

SEP_ID = 127
#: Inclusive id range of each note field after the separator: dt, dur, pitch.
FIELD_RANGES = ((0, 126), (1, 126), (1, 126))
#: Default range of generated pitches (MIDI note numbers): the piano keyboard, A0..C8.
PIANO_PITCH_RANGE = (21, 108)
#: Default sampling, the library's (`gigapiano.generation.settings`, chosen in docs/sampling.md).
DEFAULT_TEMPERATURE = 0.9
DEFAULT_TOP_P = 1.0
#: Largest prompt MIDI file accepted (bytes, after base64 decoding).
MAX_MIDI_BYTES = 1_000_000
#: Upper bounds of the generation parameters (one request must stay a few seconds on a GPU).
MAX_NEW_NOTES = 1024
MAX_VARIATIONS = 4
#: Upper bound of max_new_notes x num_variations: the request's decoding work.
MAX_TOTAL_NEW_NOTES = 1024
#: Wall-clock budget of the sampling loop; past it the request returns the whole notes made so far.
MAX_GENERATION_SECONDS = 120.0
#: CPU budget of the sampling loop (`time.process_time`: all threads of the process), checked at every
#: token like the wall-clock budget: many CPU threads can burn far more CPU seconds than wall seconds.
MAX_GENERATION_CPU_SECONDS = 240.0
#: Seconds of audio rendered per output at most (a WAV holds 4 * SAMPLE_RATE bytes per second).
MAX_AUDIO_SECONDS = 300.0
#: Largest raw `inputs` text read at all: the base64 of MAX_MIDI_BYTES plus line breaks and a data: prefix.
MAX_INPUT_CHARS = 4 * math.ceil(MAX_MIDI_BYTES / 3) * 17 // 16 + 1024
#: Milliseconds per dt step and per duration step of the tokens.
DT_MS, DUR_MS = 16, 32
#: Fraction of the context kept when the window slides.
KEEP_FRACTION = 0.75
SAMPLE_RATE = 22_050
RELEASE_TAIL_S = 1.5
SOUNDFONT_ENV = "GIGAPIANO_SOUNDFONT"
DEBIAN_SOUNDFONTS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
)
#: name -> (type, default, low, high); None bounds are open.
PARAMETERS: dict[str, tuple[type, Any, float | None, float | None]] = {
    "max_new_notes": (int, 128, 1, MAX_NEW_NOTES),
    "temperature": (float, DEFAULT_TEMPERATURE, 0.0, 5.0),
    "top_k": (int, 0, 0, 128),
    "top_p": (float, DEFAULT_TOP_P, 1e-6, 1.0),
    "seed": (int, None, 0, 2**31 - 1),
    "num_variations": (int, 1, 1, MAX_VARIATIONS),
    "velocity": (int, 90, 1, 127),
    "audio": (bool, True, None, None),
    "min_pitch": (int, PIANO_PITCH_RANGE[0], *FIELD_RANGES[2]),
    "max_pitch": (int, PIANO_PITCH_RANGE[1], *FIELD_RANGES[2]),
}
_STATUS_TEXT = {400: "Bad Request", 413: "Payload Too Large", 422: "Unprocessable Entity"}


class EndpointInputError(ValueError):
    """A request the handler refuses; `status_code` is the HTTP status a server should answer with."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"{status_code} {_STATUS_TEXT.get(status_code, 'Error')}: {message}")
        self.status_code = status_code


class NoteGrammarLogitsProcessor(LogitsProcessor):
    """Masks every id outside the legal range of the next token's field.

    The field follows from the distance to the last separator: 1 -> dt, 2 -> dur, 3 -> pitch, 4 or more
    (or no separator at all) -> the separator.

    Args:
        pitch_range: inclusive range of the generated pitches (default: the piano, 21..108).
    """

    def __init__(self, pitch_range: tuple[int, int] = PIANO_PITCH_RANGE) -> None:
        ranges = (*FIELD_RANGES[:2], tuple(pitch_range), (SEP_ID, SEP_ID))
        self.low = torch.tensor([r[0] for r in ranges])
        self.high = torch.tensor([r[1] for r in ranges])

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        length = input_ids.shape[1]
        positions = torch.arange(length, device=input_ids.device)
        last_sep = torch.where(input_ids == SEP_ID, positions, -1).amax(dim=1)
        phase = torch.where(last_sep < 0, 3, (length - 1 - last_sep).clamp(max=3))
        low = self.low.to(input_ids.device)[phase]
        high = self.high.to(input_ids.device)[phase]
        vocab = torch.arange(scores.shape[-1], device=input_ids.device)
        illegal = (vocab[None, :] < low[:, None]) | (vocab[None, :] > high[:, None])
        return scores.masked_fill(illegal, float("-inf"))


class CpuTimeCriteria(StoppingCriteria):
    """Stops `generate()` once the process CPU time (`time.process_time()`) reaches `stop_at`."""

    def __init__(self, stop_at: float) -> None:
        self.stop_at = stop_at

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        spent = time.process_time() >= self.stop_at
        return torch.full((input_ids.shape[0],), spent, dtype=torch.bool, device=input_ids.device)


def parse_parameters(raw: Any) -> dict[str, Any]:
    """Check names, types and ranges of the request's `parameters`; fill defaults.

    Raises:
        EndpointInputError: 400 naming the parameter and the allowed values.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise EndpointInputError(400, f"'parameters' must be a JSON object, got {type(raw).__name__}.")
    unknown = sorted(set(raw) - set(PARAMETERS))
    if unknown:
        raise EndpointInputError(
            400, f"unknown parameter(s) {', '.join(unknown)}; allowed: {', '.join(PARAMETERS)}."
        )
    values = {}
    for name, (kind, default, low, high) in PARAMETERS.items():
        value = raw.get(name, default)
        if value is None:
            values[name] = None
            continue
        if kind is bool:
            if not isinstance(value, bool):
                raise EndpointInputError(400, f"'{name}' must be true or false, got {value!r}.")
        elif kind is int:
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value != int(value)
            ):
                raise EndpointInputError(400, f"'{name}' must be an integer, got {value!r}.")
            value = int(value)
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise EndpointInputError(400, f"'{name}' must be a number, got {value!r}.")
            value = float(value)
        if low is not None and not low <= value <= high:
            raise EndpointInputError(400, f"'{name}' must be in {low:g}..{high:g}, got {value!r}.")
        values[name] = value
    for name in ("min_pitch", "max_pitch"):
        if values[name] is None:
            raise EndpointInputError(400, f"'{name}' must be a MIDI note number in 1..126, got null.")
    if values["min_pitch"] > values["max_pitch"]:
        raise EndpointInputError(
            400, f"'min_pitch' ({values['min_pitch']}) must not be above 'max_pitch' ({values['max_pitch']})."
        )
    total = values["max_new_notes"] * values["num_variations"]
    if total > MAX_TOTAL_NEW_NOTES:
        raise EndpointInputError(
            400,
            f"'max_new_notes' x 'num_variations' is {total}; the limit is {MAX_TOTAL_NEW_NOTES} notes per "
            "request (ask for fewer notes or fewer variations).",
        )
    return values


def decode_midi_input(inputs: Any) -> bytes | None:
    """The prompt MIDI bytes from `inputs` (base64 text, optionally a `data:` URL); None means no prompt.

    Raises:
        EndpointInputError: 400 for a wrong type or invalid base64, 413 when over `MAX_MIDI_BYTES`.
    """
    if inputs is None or inputs == "":
        return None
    if not isinstance(inputs, str):
        raise EndpointInputError(
            400,
            f"'inputs' must be a base64-encoded MIDI file (a string) or null, got {type(inputs).__name__}.",
        )
    if len(inputs) > MAX_INPUT_CHARS:  # refuse before splitting or copying anything
        raise EndpointInputError(
            413,
            f"'inputs' has {len(inputs)} characters, more than base64 needs for the limit; the limit is "
            f"{MAX_MIDI_BYTES} bytes.",
        )
    text = inputs.split(",", 1)[1] if inputs.startswith("data:") else inputs
    text = "".join(text.split())
    if len(text) > 4 * math.ceil(MAX_MIDI_BYTES / 3):  # refuse before decoding
        raise EndpointInputError(
            413, f"the prompt is about {len(text) * 3 // 4} bytes; the limit is {MAX_MIDI_BYTES} bytes."
        )
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise EndpointInputError(400, f"'inputs' is not valid base64 ({error}).") from None
    if len(data) > MAX_MIDI_BYTES:
        raise EndpointInputError(
            413, f"the prompt is {len(data)} bytes; the limit is {MAX_MIDI_BYTES} bytes."
        )
    if not data.startswith(b"MThd"):
        raise EndpointInputError(422, "'inputs' is not a MIDI file (it does not start with 'MThd').")
    return data


def tokens_to_finish(context: list[int], num_notes: int) -> int:
    """Tokens that complete `num_notes` new notes after `context`, ending on a pitch."""
    since_sep = len(context) - 1 - max(i for i, t in enumerate(context) if t == SEP_ID)
    if since_sep == 0:  # the context ends on a separator: the first note is already opened
        return 4 * num_notes - 1
    return 4 * num_notes


def window_start(ids: list[int], keep: int) -> int:
    """Start of the last `keep` tokens, moved forward to a separator so the window starts on a note."""
    start = max(0, len(ids) - keep)
    return next((i for i in range(start, len(ids)) if ids[i] == SEP_ID), start)


def sample_continuation(
    model: Any,
    context: list[int],
    num_notes: int,
    *,
    batch_size: int = 1,
    temperature: float = DEFAULT_TEMPERATURE,
    top_k: int = 0,
    top_p: float = DEFAULT_TOP_P,
    pitch_range: tuple[int, int] = PIANO_PITCH_RANGE,
    time_limit_s: float | None = None,
    cpu_limit_s: float | None = None,
) -> list[list[int]]:
    """`num_notes` well-formed notes after `context` (which starts on a separator), for each of
    `batch_size` rows, with pitches in `pitch_range`; the window slides to its last `KEEP_FRACTION` when
    the context is full. With `time_limit_s` (wall-clock seconds) or `cpu_limit_s` (CPU seconds of the
    process), sampling stops once that budget is spent and the rows are cut to their last complete note
    (possibly fewer than `num_notes`, possibly none)."""
    deadline = None if time_limit_s is None else time.monotonic() + time_limit_s
    cpu_deadline = None if cpu_limit_s is None else time.process_time() + cpu_limit_s
    stopping = StoppingCriteriaList([CpuTimeCriteria(cpu_deadline)] if cpu_deadline is not None else [])
    max_context = int(model.config.max_position_embeddings)
    keep = max(4, int(max_context * KEEP_FRACTION))
    device = model.device
    sequence = torch.tensor([context] * batch_size, dtype=torch.long, device=device)
    target = len(context) + tokens_to_finish(context, num_notes)
    greedy = temperature == 0
    start = window_start(context, max_context - 3) if len(context) > max_context - 3 else 0
    while sequence.shape[1] < target:
        if sequence.shape[1] - start >= max_context:
            start = window_start(sequence[0].tolist(), keep)
        window = sequence[:, start:]
        steps = min(max_context - window.shape[1], target - sequence.shape[1])
        config = GenerationConfig(
            max_new_tokens=steps,
            do_sample=not greedy,
            temperature=None if greedy else temperature,
            top_k=None if greedy else top_k,
            top_p=None if greedy else top_p,
            num_beams=1,
            use_cache=True,
            pad_token_id=SEP_ID,
            bos_token_id=SEP_ID,
            eos_token_id=None,
            max_time=None if deadline is None else max(deadline - time.monotonic(), 0.001),
        )
        output = model.generate(
            window,
            attention_mask=torch.ones_like(window),  # the separator is also the pad id: never infer a mask
            generation_config=config,
            logits_processor=LogitsProcessorList([NoteGrammarLogitsProcessor(pitch_range)]),
            stopping_criteria=stopping,
        )
        sequence = torch.cat([sequence, output[:, window.shape[1] :]], dim=1)
        spent = (deadline is not None and time.monotonic() >= deadline) or (
            cpu_deadline is not None and time.process_time() >= cpu_deadline
        )
        if spent and sequence.shape[1] < target:
            whole = sequence.shape[1] - sequence.shape[1] % 4  # the piece starts on a separator
            return sequence[:, len(context) : max(whole, len(context))].tolist()
    return sequence[:, len(context) :].tolist()


def cut_to_seconds(piece: list[int], limit_s: float = MAX_AUDIO_SECONDS) -> tuple[list[int], bool]:
    """The notes of `piece` (which starts on a separator) that start within the first `limit_s` seconds,
    and whether any note was left out; a kept note may ring on by its duration (at most 4 s)."""
    limit_steps = limit_s * 1000 / DT_MS
    onset = 0
    for index in range(0, len(piece) - 3, 4):
        onset += piece[index + 1]
        if onset > limit_steps:
            return piece[:index], True
    return piece, False


def find_soundfont(model_dir: Path) -> Path | None:
    """`$GIGAPIANO_SOUNDFONT`, a `.sf2` file in the repo, or a Debian General MIDI SoundFont."""
    candidates = [os.environ.get(SOUNDFONT_ENV, "")]
    candidates += [str(p) for p in sorted(model_dir.glob("*.sf2"))] + list(DEBIAN_SOUNDFONTS)
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


def render_wav(notes: list[Any], midi_path: Path, soundfont: Path, wav_path: Path) -> None:
    """Render with pyfluidsynth when usable, else with the `fluidsynth` program.

    Raises:
        RuntimeError: neither works.
    """
    try:
        import fluidsynth
        import numpy as np
    except (ImportError, OSError) as error:
        program = shutil.which("fluidsynth")
        if program is None:
            raise RuntimeError(f"no synthesizer (pyfluidsynth: {error}; no fluidsynth program)") from None
        command = [program, "-ni", "-q", "-r", str(SAMPLE_RATE), "-F", str(wav_path), str(soundfont),
                   str(midi_path)]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0 or not wav_path.is_file():
            raise RuntimeError(f"fluidsynth failed: {' '.join(result.stderr.split())[:200]}") from None
        return
    events = sorted(
        [(n.offset_ms, 0, n.pitch, 0) for n in notes] + [(n.onset_ms, 1, n.pitch, n.velocity) for n in notes]
    )
    synth = fluidsynth.Synth(gain=0.6, samplerate=float(SAMPLE_RATE))
    try:
        font = synth.sfload(str(soundfont))
        if font == -1:
            raise RuntimeError(f"FluidSynth could not load {soundfont}")
        synth.program_select(0, font, 0, 0)
        chunks, rendered = [], 0
        for time_ms, is_on, pitch, velocity in events:
            sample = round(time_ms * SAMPLE_RATE / 1000)
            if sample > rendered:
                chunks.append(synth.get_samples(sample - rendered))
                rendered = sample
            if is_on:
                synth.noteon(0, pitch, velocity)
            else:
                synth.noteoff(0, pitch)
        chunks.append(synth.get_samples(round(RELEASE_TAIL_S * SAMPLE_RATE)))
    finally:
        synth.delete()
    samples = np.concatenate(chunks).astype("<i2").reshape(-1, 2)
    with wave.open(str(wav_path), "wb") as handle:
        handle.setnchannels(2)
        handle.setsampwidth(2)
        handle.setframerate(SAMPLE_RATE)
        handle.writeframes(samples.tobytes())


def _project_classes() -> tuple[Any, Any] | None:
    """`(GigaPianoForCausalLM, GigaPianoTokenizer)` when the gigapiano project is installed, else None."""
    try:
        from modeling_gigapiano import GigaPianoForCausalLM
        from tokenization import GigaPianoTokenizer
    except ImportError:
        return None
    return GigaPianoForCausalLM, GigaPianoTokenizer


class EndpointHandler:
    """The Inference Endpoints entry point: loaded once with the repo folder, called once per request.

    Args:
        path: the model repo folder (Inference Endpoints passes its local copy).
        time_limit_s: wall-clock budget of one request's sampling (default `MAX_GENERATION_SECONDS`).
        cpu_limit_s: CPU-time budget of one request's sampling (None: `MAX_GENERATION_CPU_SECONDS`).
    """

    #: None: `MAX_GENERATION_CPU_SECONDS` as it is when a request comes.
    cpu_limit_s: float | None = None

    def __init__(
        self, path: str = "", time_limit_s: float = MAX_GENERATION_SECONDS, cpu_limit_s: float | None = None
    ) -> None:
        self.path = Path(path or ".")
        self.time_limit_s = time_limit_s
        self.cpu_limit_s = cpu_limit_s
        device = "cuda" if torch.cuda.is_available() else "cpu"
        # Weights may be stored in fp16 to stay small: keep them on a GPU, decode in float32 on a CPU.
        dtype = "auto" if device == "cuda" else torch.float32
        project = _project_classes()
        if project is not None:  # the installed project's own classes: no code from the folder runs
            model_class, tokenizer_class = project
            self.model = model_class.from_pretrained(str(self.path), dtype=dtype)
            self.tokenizer = tokenizer_class.from_pretrained(str(self.path))
        else:  # an endpoint: the code shipped in this repo is the code being deployed
            self.model = AutoModelForCausalLM.from_pretrained(
                str(self.path), trust_remote_code=True, dtype=dtype
            )
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.path), trust_remote_code=True)
        self.model = self.model.to(device).eval()
        self.soundfont = find_soundfont(self.path)
        logger.info("GIGA-Piano endpoint ready on %s (SoundFont: %s).", device, self.soundfont or "none")

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        """Generate from one request (see the module docstring for the JSON formats).

        Raises:
            EndpointInputError: a request that is malformed, too large, or whose MIDI is unusable.
        """
        if not isinstance(data, dict):
            raise EndpointInputError(400, "the request body must be a JSON object with 'inputs'.")
        unknown = sorted(set(data) - {"inputs", "parameters"})
        if unknown:
            raise EndpointInputError(
                400, f"unknown field(s) {', '.join(unknown)}; send 'inputs' and 'parameters'."
            )
        params = parse_parameters(data.get("parameters"))
        midi = decode_midi_input(data.get("inputs"))
        prompt = self._encode(midi) if midi is not None else []
        seed = params["seed"] if params["seed"] is not None else random.SystemRandom().randrange(2**31)
        params["seed"] = seed
        context = prompt or [SEP_ID]
        prompt_notes = len(context) // 4
        devices = [self.model.device] if self.model.device.type == "cuda" else []
        cpu_limit_s = MAX_GENERATION_CPU_SECONDS if self.cpu_limit_s is None else self.cpu_limit_s
        cpu_started = time.process_time()
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            new = sample_continuation(
                self.model,
                context,
                params["max_new_notes"],
                batch_size=params["num_variations"],
                temperature=params["temperature"],
                top_k=params["top_k"],
                top_p=params["top_p"],
                pitch_range=(params["min_pitch"], params["max_pitch"]),
                time_limit_s=self.time_limit_s,
                cpu_limit_s=cpu_limit_s,
            )
        cpu_used = time.process_time() - cpu_started
        made = (len(context) + len(new[0])) // 4 - prompt_notes
        audio = "not requested"
        if params["audio"]:
            audio = "rendered" if self.soundfont else f"no SoundFont (set {SOUNDFONT_ENV} or add a .sf2 file)"
        outputs = []
        for row in new:
            piece = (prompt + row) if prompt else [SEP_ID] + row
            item, audio_state = self._render(piece, params, seed, audio == "rendered")
            item["new_notes"] = made
            outputs.append(item)
            if audio == "rendered" and audio_state != "rendered":
                audio = audio_state
        response = {"outputs": outputs, "seed": seed, "parameters": params, "audio": audio}
        wanted = params["max_new_notes"]
        if made < wanted and cpu_used >= cpu_limit_s:
            logger.warning("CPU time limit: %d of %d notes in %.1f CPU s.", made, wanted, cpu_used)
            response["stopped"] = f"CPU time limit ({cpu_limit_s:g} s): {made} of {wanted} notes"
        elif made < wanted:
            logger.warning("Time limit: %d of %d notes in %g s.", made, wanted, self.time_limit_s)
            response["stopped"] = f"time limit ({self.time_limit_s:g} s): {made} of {wanted} notes"
        return response

    def _encode(self, midi: bytes) -> list[int]:
        try:
            ids = [int(i) for i in self.tokenizer.encode_midi(midi)]
        except ValueError as error:  # the tokenizer's MidiTokenizationError is a ValueError
            raise EndpointInputError(422, f"the prompt is not a usable MIDI file: {error}") from None
        if not ids:
            raise EndpointInputError(422, "the prompt has no piano notes (it is empty or drums only).")
        return ids

    def _render(self, piece: list[int], params: dict[str, Any], seed: int, audio: bool) -> tuple[dict, str]:
        """Base64 MIDI (and WAV) of one piece; returns the item and the audio state."""
        state = "rendered"
        with tempfile.TemporaryDirectory(prefix="gigapiano-endpoint-") as scratch:
            midi_path, wav_path = Path(scratch) / "out.mid", Path(scratch) / "out.wav"
            text = (
                f"GIGA-Piano endpoint: seed={seed} temperature={params['temperature']} "
                f"top_k={params['top_k']} top_p={params['top_p']} "
                f"pitch_range={params['min_pitch']}..{params['max_pitch']}"
            )
            self.tokenizer.save_midi(piece, midi_path, velocity=params["velocity"], text=text)
            item = {
                "midi": base64.b64encode(midi_path.read_bytes()).decode("ascii"),
                "notes": len(piece) // 4,
            }
            if audio:
                try:
                    heard, cut = cut_to_seconds(piece)
                    if cut:  # the synthesizer gets only the first MAX_AUDIO_SECONDS
                        midi_path = Path(scratch) / "audio.mid"
                        self.tokenizer.save_midi(heard, midi_path, velocity=params["velocity"])
                        state = f"rendered (the first {MAX_AUDIO_SECONDS:g} s)"
                    notes = self.tokenizer.ids_to_timed_notes(heard, velocity=params["velocity"])
                    render_wav(notes, midi_path, self.soundfont, wav_path)
                    item["wav"] = base64.b64encode(wav_path.read_bytes()).decode("ascii")
                except (RuntimeError, OSError, subprocess.SubprocessError) as error:
                    logger.warning("No audio: %s", error)
                    state = f"failed: {error}"
        return item, state
