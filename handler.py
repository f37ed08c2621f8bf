"""Inference Endpoints handler for a GIGA-Piano model repo: base64 MIDI prompt in, base64 MIDI (and WAV) out.

`publish.py` copies this file, unchanged, into every published model repo next to a `requirements.txt`.
It is self-contained on purpose: it imports only torch, transformers and the standard library, and reads
MIDI through the tokenizer code shipped in the same repo (`AutoTokenizer`, `trust_remote_code=True`). The
`gigapiano` project is not on PyPI, so an endpoint could not install it; instead the few lines that matter
are here: a logits processor that masks every id breaking `<sep> dt dur pitch` (so every returned note is
well formed, the same guarantee as the project's `NoteStructureLogitsProcessor`) and keeps generated
pitches on the piano keyboard (21..108 unless `min_pitch` / `max_pitch` widen it), a sampling loop
that slides the window when the context is full, the anti-copy rule of the `knn` mode (the project's
`AntiCopy`), a logits processor that mixes in the base model for `style_strength` (the project's
`StyleMixture`) and the motif memory (the project's `MotifMemoryLogitsProcessor`: pitches that would take
up a motif of the prompt are favoured, `motif_memory` 0 turns it off).

Request (JSON):

    {"inputs": "<base64 MIDI file>" | null,
     "parameters": {"max_new_notes": 128, "temperature": 1.0, "top_k": 0, "top_p": 1.0, "motif_memory": 40,
                    "seed": 0,
                    "num_variations": 1, "velocity": 90, "audio": true, "min_pitch": 21, "max_pitch": 108,
                    "style_strength": 1.0, "mode": "continue" | "knn",
                    "knn_candidates": 4, "knn_threshold": 0.1, "knn_memory_tokens": 256}}

Every parameter is optional (the values above are the defaults); only `seed` may be null (a random seed,
reported back). `knn_*` belong to `"mode": "knn"`, upstream's anti-copy continuation: each new note is
sampled as `knn_candidates` rows of the batch, and the first whose (dt, dur, pitch) lies at least
`knn_threshold` token units from every note of the last `knn_memory_tokens` tokens is kept (when none does,
the first, counted as a fallback). `style_strength` 0 samples the base model this model was fine-tuned from,
1 this model (exactly as without the parameter), values between mix the two models' next-token
log-probabilities with weights 1 - s and s, up to 2 pushes past this model. The base model comes from
`$GIGAPIANO_BASE_MODEL` (a folder or a Hub id), else from `base_model.json` in the repo (`publish.py`
writes it when the base has a Hub id); it is loaded on the first request that needs it.

Response (JSON):

    {"outputs": [{"midi": "<base64>", "wav": "<base64>" (only when audio was rendered),
                  "notes": 120, "new_notes": 64}],
     "seed": 0, "parameters": {...as used...}, "audio": "rendered" | "<why not>",
     "knn": {"notes": 64, "fallbacks": 2} (mode knn: notes picked, how many had no candidate far enough),
     "style": {"base_model": "NAMESPACE/gigapiano-base", "model_weights": {"base": 0.5, "model": 0.5}}
              (style_strength other than 1)}

The MIDI's text/marker event records seed and sampling, and the knn settings and the style strength with
the base model when they are used.

Limits (see docs/limits.md), all checked before any model work: the prompt file is at most
`MAX_MIDI_BYTES` (the raw request text is measured before it is even split); `max_new_notes` x
`num_variations` (x `knn_candidates` in knn mode, x 2 when a style strength other than 0 and 1 runs two
models) is at most `MAX_TOTAL_NEW_NOTES`; generation stops at whole notes once it has run
`MAX_GENERATION_SECONDS` or used `MAX_GENERATION_CPU_SECONDS` of CPU time (the response then says
`"stopped": "time limit ..."` or `"stopped": "CPU time limit ..."` and counts the notes made); the WAV of
each output covers at most its first `MAX_AUDIO_SECONDS`.

The model, its tokenizer and the base model load with the project's own classes when `gigapiano` is
installed; on an endpoint (where it is not) they load from the code shipped with them, which is the code
being deployed.

Bad input raises `EndpointInputError` (a `ValueError` carrying an HTTP `status_code`: 400, 413 or 422);
the Inference Endpoints toolkit answers any exception with HTTP 400 and `{"error": "<message>"}`, and the
message starts with the specific status (for example "413 Payload Too Large: ...").
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import os
import random
import re
import shutil
import subprocess
import tempfile
import threading
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DynamicCache,
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
DEFAULT_TEMPERATURE = 1.0
DEFAULT_TOP_P = 1.0
#: Default motif-memory boost, the library's (see `MotifMemoryProcessor`), and the largest accepted.
DEFAULT_MOTIF_MEMORY = 40.0
MAX_MOTIF_BOOST = 1000.0
#: Largest prompt MIDI file accepted (bytes, after base64 decoding).
MAX_MIDI_BYTES = 1_000_000
#: Upper bounds of the generation parameters (one request must stay a few seconds on a GPU).
MAX_NEW_NOTES = 1024
MAX_VARIATIONS = 4
#: Upper bound of the request's decoding work: max_new_notes x num_variations, times knn_candidates in
#: `knn` mode (each candidate is a row of the batch) and times 2 when style_strength mixes two models.
MAX_TOTAL_NEW_NOTES = 1024
#: Modes: `continue` the prompt, or `knn`: continue it with upstream's anti-copy filter.
MODES = ("continue", "knn")
#: Upper bounds of the `knn` mode: candidates per note (rows per variation) and remembered tokens.
MAX_KNN_CANDIDATES = 8
MAX_KNN_MEMORY_TOKENS = 1024
#: Largest style_strength: 0 = the base model, 1 = this repo's model, 2 = twice as far from the base.
MAX_STYLE_STRENGTH = 2.0
#: Where the base model of `style_strength` comes from: this variable (a local folder or a Hub id), else
#: the `base_model` of this JSON file in the repo (`publish.py` writes it when the base has a Hub id).
BASE_MODEL_ENV = "GIGAPIANO_BASE_MODEL"
BASE_MODEL_FILE = "base_model.json"
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
    "motif_memory": (float, DEFAULT_MOTIF_MEMORY, 0.0, MAX_MOTIF_BOOST),
    "seed": (int, None, 0, 2**31 - 1),
    "num_variations": (int, 1, 1, MAX_VARIATIONS),
    "velocity": (int, 90, 1, 127),
    "audio": (bool, True, None, None),
    "min_pitch": (int, PIANO_PITCH_RANGE[0], *FIELD_RANGES[2]),
    "max_pitch": (int, PIANO_PITCH_RANGE[1], *FIELD_RANGES[2]),
    "mode": (str, "continue", None, None),
    "knn_candidates": (int, 4, 1, MAX_KNN_CANDIDATES),
    "knn_threshold": (float, 0.1, 0.0, None),
    "knn_memory_tokens": (int, 256, 4, MAX_KNN_MEMORY_TOKENS),
    "style_strength": (float, 1.0, 0.0, MAX_STYLE_STRENGTH),
}
KNN_PARAMETERS = ("knn_candidates", "knn_threshold", "knn_memory_tokens")
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_STATUS_TEXT = {400: "Bad Request", 413: "Payload Too Large", 422: "Unprocessable Entity"}


class EndpointInputError(ValueError):
    """A request the handler refuses; `status_code` is the HTTP status a server should answer with."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"{status_code} {_STATUS_TEXT.get(status_code, 'Error')}: {message}")
        self.status_code = status_code


class MotifMemoryProcessor(LogitsProcessor):
    """The project's motif memory: before a pitch, the places of the prompt (notes before `remember_until`)
    where the latest 2-6 pitch steps occurred propose the step that followed there (longer matches weigh 4x
    per extra step); each proposed pitch's probability is multiplied by `1 + boost * its share`. Put it
    before the grammar mask."""

    def __init__(self, boost: float) -> None:
        self.boost = boost
        self.remember_until = 0  # set by the sampler for each window

    def proposals(self, pitches: list[int], remembered: int) -> dict[int, float]:
        """Proposed next pitch -> share, after `pitches` (only steps that led to one of the first
        `remembered` pitches)."""
        steps = [later - earlier for earlier, later in zip(pitches[:-1], pitches[1:], strict=True)]
        weights: dict[int, float] = {}
        for place in range(2, min(len(steps), remembered - 1)):  # steps[place] followed the match
            length = 0
            while length < 6 and place - 1 - length >= 0 and steps[place - 1 - length] == steps[-1 - length]:
                length += 1
            if length >= 2:
                target = pitches[-1] + steps[place]
                if 0 <= target < 128:
                    weights[target] = weights.get(target, 0.0) + 4.0 ** (length - 2)
        total = sum(weights.values())
        return {pitch: weight / total for pitch, weight in weights.items()}

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.boost == 0:
            return scores
        scores = scores.clone()
        for row, ids in enumerate(input_ids.tolist()):
            seps = [i for i, token in enumerate(ids) if token == SEP_ID]
            if not seps or len(ids) - 1 - seps[-1] != 2:  # not right after `<sep> dt dur`
                continue
            positions = [i + 3 for i in seps if i + 3 < len(ids)]
            remembered = sum(position < self.remember_until for position in positions)
            for pitch, share in self.proposals([ids[i] for i in positions], remembered).items():
                scores[row, pitch] += math.log1p(self.boost * share)
        return scores


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


class StyleMixLogitsProcessor(LogitsProcessor):
    """Style strength: turns the model's next-token scores into `(1 - s) log p_base + s log p_model`.

    `s` = 0 is the base model, 1 this model, above 1 pushes past it, away from the base (the project's
    `StyleMixture`, as a processor). Put it before the grammar mask. The base model runs once per token on
    its own key/value cache, which keeps the longest prefix of `input_ids` it has already encoded: after the
    window slides, or after a knn pick replaced a candidate note, the rows are re-encoded from where they
    differ.

    Args:
        base: the base causal LM (same vocabulary, context and device as the model).
        strength: `s`.
    """

    def __init__(self, base: Any, strength: float) -> None:
        self.base, self.strength = base, strength
        self.ids: torch.Tensor | None = None  # what the cache holds
        self.cache: DynamicCache | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        kept = 0
        if self.ids is not None and self.ids.shape[0] == input_ids.shape[0]:
            length = min(self.ids.shape[1], input_ids.shape[1] - 1)
            same = (self.ids[:, :length] == input_ids[:, :length]).all(dim=0)
            kept = length if bool(same.all()) else int(same.to(torch.int8).argmin())
        if kept == 0:
            self.cache = DynamicCache(config=self.base.config)
        for layer in self.cache.layers:
            layer.crop(min(kept - layer.get_seq_length(), 0))
        output = self.base(input_ids=input_ids[:, kept:], cache=self.cache, use_cache=True, logits_to_keep=1)
        self.ids = input_ids
        base = torch.log_softmax(output.logits[:, -1].float(), dim=-1)
        return (1 - self.strength) * base + self.strength * torch.log_softmax(scores.float(), dim=-1)


@dataclass(frozen=True)
class AntiCopyRule:
    """Upstream's anti-copy ("knn") filter, the rule of the project's `AntiCopy`: of `candidates` notes
    sampled as consecutive rows, keep the first whose nearest (dt, dur, pitch) neighbour among the notes of
    the last `memory_tokens` tokens lies at least `threshold` away (token units, Euclidean); when none does,
    keep the first and count a fallback."""

    candidates: int = 4
    threshold: float = 0.1
    memory_tokens: int = 256

    def choose(self, sequence: torch.Tensor) -> tuple[torch.Tensor, int]:
        """`(rows, fallbacks)`: for each row of `sequence` (starting on a separator, ending on a complete
        note), the row to continue from, and how many groups of candidates had no note far enough."""
        rows, length = sequence.shape
        groups = rows // self.candidates
        notes = sequence[:, -3:].float().view(groups, self.candidates, 3)
        remembered = min((length - 4) // 4, self.memory_tokens // 4)
        chosen = torch.zeros(groups, dtype=torch.long, device=sequence.device)
        fallbacks = 0
        if remembered > 0:
            history = sequence[:: self.candidates, length - 4 - 4 * remembered : length - 4]
            history = history.reshape(groups, remembered, 4)[..., 1:].float()
            far = torch.cdist(notes, history).amin(dim=-1) >= self.threshold  # (groups, candidates)
            chosen = torch.where(far.any(dim=1), far.to(torch.int8).argmax(dim=1), chosen)
            fallbacks = int((~far.any(dim=1)).sum())
        first = torch.arange(groups, device=sequence.device) * self.candidates + chosen
        return first.repeat_interleave(self.candidates), fallbacks


def parse_parameters(raw: Any) -> dict[str, Any]:
    """Check names, types and ranges of the request's `parameters`; fill defaults. Only `seed` may be
    null (a random seed); the `knn_*` parameters belong to `"mode": "knn"` and are recorded only there.

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
            if name in ("min_pitch", "max_pitch"):
                raise EndpointInputError(400, f"'{name}' must be a MIDI note number in 1..126, got null.")
            if name != "seed":
                raise EndpointInputError(400, f"'{name}' must not be null (leave it out for {default!r}).")
            values[name] = None
            continue
        if kind is str:
            if value not in MODES:
                raise EndpointInputError(400, f"'{name}' must be one of {', '.join(MODES)}, got {value!r}.")
        elif kind is bool:
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
        if high is None and low is not None and value < low:
            raise EndpointInputError(400, f"'{name}' must be >= {low:g}, got {value!r}.")
        if high is not None and not low <= value <= high:
            raise EndpointInputError(400, f"'{name}' must be in {low:g}..{high:g}, got {value!r}.")
        values[name] = value
    if values["min_pitch"] > values["max_pitch"]:
        raise EndpointInputError(
            400, f"'min_pitch' ({values['min_pitch']}) must not be above 'max_pitch' ({values['max_pitch']})."
        )
    knn = values["mode"] == "knn"
    if not knn:
        given = [name for name in KNN_PARAMETERS if name in raw]
        if given:
            raise EndpointInputError(400, f'{", ".join(given)} only apply to "mode": "knn".')
        for name in KNN_PARAMETERS:
            del values[name]
    factors = ["'max_new_notes' x 'num_variations'"] + (["'knn_candidates'"] if knn else [])
    total = values["max_new_notes"] * values["num_variations"] * (values["knn_candidates"] if knn else 1)
    if values["style_strength"] not in (0.0, 1.0):
        factors.append("2 models (a style_strength other than 0 and 1 mixes two)")
        total *= 2
    if total > MAX_TOTAL_NEW_NOTES:
        raise EndpointInputError(
            400,
            f"{' x '.join(factors)} is {total}; the limit is {MAX_TOTAL_NEW_NOTES} notes per request "
            "(ask for fewer notes, variations or candidates).",
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


def sample_continuation(model: Any, context: list[int], num_notes: int, **options: Any) -> list[list[int]]:
    """`_sample_continuation` (see there). Its knn loop passes its own cache to `generate()`, which
    transformers refuses while the model's saved generation defaults name a cache implementation (the
    project saves `static`): the name is lifted for the call and restored after it, also after an error."""
    config = model.generation_config
    saved = getattr(config, "cache_implementation", None)
    if options.get("anti_copy") is not None:
        config.cache_implementation = None
    try:
        return _sample_continuation(model, context, num_notes, **options)
    finally:
        config.cache_implementation = saved


def _sample_continuation(
    model: Any,
    context: list[int],
    num_notes: int,
    *,
    batch_size: int = 1,
    temperature: float = DEFAULT_TEMPERATURE,
    top_k: int = 0,
    top_p: float = DEFAULT_TOP_P,
    motif_memory: float = 0.0,
    pitch_range: tuple[int, int] = PIANO_PITCH_RANGE,
    time_limit_s: float | None = None,
    cpu_limit_s: float | None = None,
    anti_copy: AntiCopyRule | None = None,
    mix: StyleMixLogitsProcessor | None = None,
    report: dict[str, int] | None = None,
) -> list[list[int]]:
    """`num_notes` well-formed notes after `context` (which starts on a separator), for each of
    `batch_size` rows, with pitches in `pitch_range`; the window slides to its last `KEEP_FRACTION` when
    the context is full. With `time_limit_s` (wall-clock seconds) or `cpu_limit_s` (CPU seconds of the
    process), sampling stops once that budget is spent and the rows are cut to their last complete note
    (possibly fewer than `num_notes`, possibly none).

    With `anti_copy` every note is sampled as `anti_copy.candidates` rows of the batch on one key/value
    cache, one call per note; the cache is cropped back after each pick, so the kept note is encoded with the
    next call. `report` then receives `knn_notes` and `knn_fallbacks`. `mix` mixes in the base model."""
    deadline = None if time_limit_s is None else time.monotonic() + time_limit_s
    cpu_deadline = None if cpu_limit_s is None else time.process_time() + cpu_limit_s
    stopping = StoppingCriteriaList([CpuTimeCriteria(cpu_deadline)] if cpu_deadline is not None else [])
    memory = MotifMemoryProcessor(motif_memory)
    processors = LogitsProcessorList(
        [*([mix] if mix is not None else []), memory, NoteGrammarLogitsProcessor(pitch_range)]
    )
    max_context = int(model.config.max_position_embeddings)
    keep = max(4, int(max_context * KEEP_FRACTION))
    device = model.device
    candidates = anti_copy.candidates if anti_copy is not None else 1
    sequence = torch.tensor([context] * batch_size * candidates, dtype=torch.long, device=device)
    target = len(context) + tokens_to_finish(context, num_notes)
    greedy = temperature == 0
    start = window_start(context, max_context - 3) if len(context) > max_context - 3 else 0
    cache, knn_notes, knn_fallbacks = None, 0, 0
    while sequence.shape[1] < target:
        if anti_copy is not None and sequence.shape[1] % 4 == 0:  # a note is complete: open the next one
            sequence = torch.cat([sequence, torch.full_like(sequence[:, :1], SEP_ID)], dim=1)
        room = 3 if anti_copy is not None else 1  # tokens this call must be able to add
        if sequence.shape[1] - start + room > max_context:
            start, cache = window_start(sequence[0].tolist(), keep), None
        window = sequence[:, start:]
        memory.remember_until = len(context) - start  # the prompt's part of the window
        steps = min(max_context - window.shape[1], target - sequence.shape[1])
        if anti_copy is not None:  # the rest of the open note (3 tokens unless a budget cut a call short)
            steps = 4 - sequence.shape[1] % 4
            cache = cache if cache is not None else DynamicCache(config=model.config)
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
            logits_processor=processors,
            stopping_criteria=stopping,
            **({} if cache is None else {"cache": cache}),
        )
        sequence = torch.cat([sequence, output[:, window.shape[1] :]], dim=1)
        if anti_copy is not None and sequence.shape[1] % 4 == 0:  # all candidates made (not cut by a budget)
            rows, fallbacks = anti_copy.choose(sequence)
            sequence = sequence[rows]
            knn_notes, knn_fallbacks = knn_notes + batch_size, knn_fallbacks + fallbacks
            for layer in cache.layers:  # forget the candidates (all after the separator): the next call
                layer.crop(sequence.shape[1] - 3 - start - layer.get_seq_length())  # encodes the kept one
        spent = (deadline is not None and time.monotonic() >= deadline) or (
            cpu_deadline is not None and time.process_time() >= cpu_deadline
        )
        if spent and sequence.shape[1] < target:
            break
    if report is not None and anti_copy is not None:
        report.update(knn_notes=knn_notes, knn_fallbacks=knn_fallbacks)
    whole = sequence.shape[1] - sequence.shape[1] % 4 if sequence.shape[1] < target else target
    return sequence[::candidates, len(context) : max(whole, len(context))].tolist()


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


def load_model(source: str, device: str | torch.device) -> Any:
    """The causal LM of a folder or Hub id, in eval mode on `device`: the installed project's class when
    there is one (no code from the folder runs), else the code shipped with the model (`trust_remote_code`).
    Weights stored in fp16 stay so on a GPU and decode in float32 on a CPU."""
    dtype = "auto" if torch.device(device).type == "cuda" else torch.float32
    project = _project_classes()
    if project is not None:
        model = project[0].from_pretrained(source, dtype=dtype)
    else:
        model = AutoModelForCausalLM.from_pretrained(source, trust_remote_code=True, dtype=dtype)
    return model.to(device).eval()


class EndpointHandler:
    """The Inference Endpoints entry point: loaded once with the repo folder, called once per request.

    Args:
        path: the model repo folder (Inference Endpoints passes its local copy).
        time_limit_s: wall-clock budget of one request's sampling (default `MAX_GENERATION_SECONDS`).
        cpu_limit_s: CPU-time budget of one request's sampling (None: `MAX_GENERATION_CPU_SECONDS`).
    """

    #: None: `MAX_GENERATION_CPU_SECONDS` as it is when a request comes.
    cpu_limit_s: float | None = None
    #: The base model of `style_strength` (see `base_model_source`), loaded by the first request needing it.
    base: Any = None
    base_name: str | None = None
    _base_lock = threading.Lock()

    def __init__(
        self, path: str = "", time_limit_s: float = MAX_GENERATION_SECONDS, cpu_limit_s: float | None = None
    ) -> None:
        self.path = Path(path or ".")
        self.time_limit_s = time_limit_s
        self.cpu_limit_s = cpu_limit_s
        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = load_model(str(self.path), device)
        project = _project_classes()
        if project is not None:
            self.tokenizer = project[1].from_pretrained(str(self.path))
        else:  # an endpoint: the code shipped in this repo is the code being deployed
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.path), trust_remote_code=True)
        self.soundfont = find_soundfont(self.path)
        logger.info("GIGA-Piano endpoint ready on %s (SoundFont: %s).", device, self.soundfont or "none")

    def base_model_source(self) -> str | None:
        """Where the base model of `style_strength` loads from: `$GIGAPIANO_BASE_MODEL` (a local folder or a
        Hub id), else the `base_model` in the repo's `base_model.json`, else None."""
        source = os.environ.get(BASE_MODEL_ENV, "").strip()
        if not source and (self.path / BASE_MODEL_FILE).is_file():
            try:
                source = str(json.loads((self.path / BASE_MODEL_FILE).read_text()).get("base_model") or "")
            except (ValueError, AttributeError):
                logger.warning("%s is not a JSON object with 'base_model'.", self.path / BASE_MODEL_FILE)
        return source.strip() or None

    def base_model(self) -> Any:
        """The base model, loaded once with the same rules as the model (`load_model`).

        Raises:
            EndpointInputError: 422 when no base model is known, or it does not load or does not fit.
        """
        with self._base_lock:
            if self.base is not None:
                return self.base
            source = self.base_model_source()
            if source is None:
                raise EndpointInputError(
                    422,
                    f"a style_strength other than 1 needs the base model this model was fine-tuned from, and "
                    f"none is known: set {BASE_MODEL_ENV} (a folder or Hub id) or add {BASE_MODEL_FILE}.",
                )
            if not Path(source).is_dir() and not _HUB_ID.match(source):
                raise EndpointInputError(422, f"the base model {source!r} is neither a folder nor a Hub id.")
            try:
                base = load_model(source, self.model.device)
            except (OSError, ValueError, RuntimeError, KeyError) as error:
                message = " ".join(str(error).split())[:300]
                raise EndpointInputError(422, f"the base model {source} did not load: {message}") from None
            for key in ("vocab_size", "max_position_embeddings"):
                ours, theirs = getattr(self.model.config, key), getattr(base.config, key)
                if ours != theirs:
                    raise EndpointInputError(
                        422,
                        f"the base model {source} cannot be mixed with this one ({key} {theirs} vs {ours}).",
                    )
            self.base, self.base_name = base, Path(source).name if Path(source).is_dir() else source
            logger.info("Base model for style_strength: %s.", source)
            return base

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
        strength = params["style_strength"]
        model, mix = self.model, None  # strength 1: this model as it is, 0: the base model as it is
        if strength == 0:
            model = self.base_model()
        elif strength != 1:
            mix = StyleMixLogitsProcessor(self.base_model(), strength)
        prompt = self._encode(midi) if midi is not None else []
        seed = params["seed"] if params["seed"] is not None else random.SystemRandom().randrange(2**31)
        params["seed"] = seed
        context = prompt or [SEP_ID]
        prompt_notes = len(context) // 4
        anti_copy, knn = None, {}
        if params["mode"] == "knn":
            anti_copy = AntiCopyRule(*(params[name] for name in KNN_PARAMETERS))
        devices = [model.device] if model.device.type == "cuda" else []
        cpu_limit_s = MAX_GENERATION_CPU_SECONDS if self.cpu_limit_s is None else self.cpu_limit_s
        cpu_started = time.process_time()
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            new = sample_continuation(
                model,
                context,
                params["max_new_notes"],
                batch_size=params["num_variations"],
                temperature=params["temperature"],
                top_k=params["top_k"],
                top_p=params["top_p"],
                motif_memory=params["motif_memory"],
                pitch_range=(params["min_pitch"], params["max_pitch"]),
                time_limit_s=self.time_limit_s,
                cpu_limit_s=cpu_limit_s,
                anti_copy=anti_copy,
                mix=mix,
                report=knn,
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
        if anti_copy is not None:  # how many notes were picked, and how often no candidate was far enough
            response["knn"] = {"notes": knn["knn_notes"], "fallbacks": knn["knn_fallbacks"]}
        if strength != 1:
            weights = {"base": round(1 - strength, 6), "model": strength}  # of the next-token log-probs
            response["style"] = {"base_model": self.base_name, "model_weights": weights}
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
            if params["mode"] == "knn":
                text += " mode=knn " + " ".join(f"{name}={params[name]}" for name in KNN_PARAMETERS)
            if params["style_strength"] != 1:
                text += f" style_strength={params['style_strength']} base_model={self.base_name}"
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
