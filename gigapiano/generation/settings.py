"""What to generate (`GenerationSettings`) and what came out (`GenerationResult`)."""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass, field
from typing import Any, Literal

from .anti_copy import AntiCopy
from .grammar import DT_MS, DUR_MS, PIANO_PITCH_RANGE, SEP_ID, check_pitch_range, split_notes

Mode = Literal["continue", "knn", "inpaint", "harmonize", "progression"]
MODES: tuple[str, ...] = ("continue", "knn", "inpaint", "harmonize", "progression")
#: The modes that continue the prompt freely (`knn` is `continue` with the anti-copy filter).
FREE_MODES: tuple[str, ...] = ("continue", "knn")
KEEP_CHOICES: tuple[str, ...] = ("time", "time+dur")
DEFAULT_MAX_NEW_NOTES = 256
#: Default sampling, chosen on the styles' validation prompts by
#: `python -m gigapiano.evaluation.sampling_sweep` (`docs/sampling.md`): of temperatures 1.0 / 0.9 / 0.8 and
#: motif memory 0 / 20 / 40, the setting whose continuations' musical statistics come closest to the real
#: music's among those that take up the prompt's motifs at least half as often as the real ones (without the
#: memory: 5-20 times less often). With the current (fourth-pass) models temperature 1.0 with 40 won in two
#: independent sweeps; 0.9, right for weaker models, now plays faster than the real music and loops.
DEFAULT_TEMPERATURE = 1.0
DEFAULT_TOP_P = 1.0
#: Default boost of the motif memory (`MotifMemoryLogitsProcessor`), chosen with the temperature (above).
DEFAULT_MOTIF_MEMORY = 40.0
#: Largest motif-memory boost accepted (a proposal's probability multiplied by at most 1 + this).
MAX_MOTIF_BOOST = 1000.0
#: With `seconds` and no `max_new_notes`, stop after this many notes per second at the latest.
NOTES_PER_SECOND_CAP = 40
DEFAULT_CHORD_NOTES = {"harmonize": 2, "progression": 0}
#: Upper bounds checked before any work (docs/limits.md): notes per piece (for inpaint / harmonize, source
#: notes), seconds of new music, and variations decoded together (each holds its own key/value cache).
MAX_NEW_NOTES = 16_384
MAX_SECONDS = 600.0
MAX_VARIATIONS = 16
#: `knn` decodes num_variations x knn_candidates rows together.
MAX_DECODING_ROWS = 64


@dataclass
class GenerationSettings:
    """Everything that decides a generation; recorded next to every output so it can be reproduced.

    Args:
        mode: `continue` the prompt; `knn`: continue it with upstream's anti-copy filter (of
            `knn_candidates` sampled notes keep one that does not repeat a note of the last
            `knn_memory_tokens` tokens); `inpaint` the prompt's pitches keeping its timing; `harmonize` the
            prompt's melody with chord notes under each melody note; `progression`: notes (or chords) at
            a fixed step after the prompt.
        max_new_notes: notes to generate (`continue`, `knn`, `progression`); for `inpaint` / `harmonize` the
            number of source notes to use (default: all). Default 256 for `continue` / `knn` /
            `progression`.
        seconds: alternative length: stop once the new notes' onsets span this many seconds (the source
            is cut to this span for `inpaint` / `harmonize`).
        temperature: divides the logits before sampling (1.0 = the model's distribution, lower = safer,
            higher = wilder); 0 means greedy decoding.
        top_k: sample among the k most likely legal ids of each field (0 = off).
        top_p: nucleus sampling: the smallest set of legal ids with this total probability (1.0 = off).
        motif_memory: how strongly each pitch favours taking up a motif of the prompt (0 = off): the pitch
            steps that followed earlier occurrences of the latest steps in the prompt have their probability
            multiplied by up to `1 + motif_memory`, so the prompt's motifs come back, also transposed
            (`MotifMemoryLogitsProcessor`).
        seed: random seed; `None` draws one, and the drawn value is recorded in the result.
        num_variations: independent continuations generated together as one batch.
        keep: `inpaint` only: keep each source note's `time` (dt) or `time+dur` (dt and duration).
        chord_notes: notes added under each melody note (`harmonize`, default 2) or each progression step
            (`progression`, default 0 = single notes), all with dt = 0 and going down in pitch.
        step_ms: `progression` only: time between steps in ms (rounded to 16 ms; 16..2016).
        step_duration_ms: `progression` only: duration of every note in ms (rounded to 32 ms; 32..4032);
            `None` lets the model choose durations.
        keep_fraction: when the sequence fills the context, keep this fraction of it (the most recent notes)
            and continue with a fresh cache.
        min_pitch / max_pitch: inclusive range of the pitches the model may choose, as MIDI note numbers
            (default 21..108, A0..C8: the piano keyboard; the tokenizer allows 1..126). Pitches a mode keeps
            from the prompt (its notes, a harmonised melody) stay as given.
        knn_candidates / knn_threshold / knn_memory_tokens: `knn` only: candidate notes per new note
            (rows of the batch), the least (dt, duration, pitch) distance in token units from every
            remembered note (0.1: refuse exact repeats), and how many recent tokens are remembered
            (upstream's 4, 0.1 and 256).
    """

    mode: Mode = "continue"
    max_new_notes: int | None = None
    seconds: float | None = None
    temperature: float = DEFAULT_TEMPERATURE
    top_k: int = 0
    top_p: float = DEFAULT_TOP_P
    motif_memory: float = DEFAULT_MOTIF_MEMORY
    seed: int | None = None
    num_variations: int = 1
    keep: Literal["time", "time+dur"] = "time+dur"
    chord_notes: int | None = None
    step_ms: int = 256
    step_duration_ms: int | None = None
    keep_fraction: float = 0.75
    min_pitch: int = PIANO_PITCH_RANGE[0]
    max_pitch: int = PIANO_PITCH_RANGE[1]
    knn_candidates: int = 4
    knn_threshold: float = 0.1
    knn_memory_tokens: int = 256

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"Unknown mode {self.mode!r}; choose one of {', '.join(MODES)}.")
        if self.max_new_notes is not None and not 1 <= self.max_new_notes <= MAX_NEW_NOTES:
            raise ValueError(f"max_new_notes must be in 1..{MAX_NEW_NOTES}, got {self.max_new_notes}.")
        if self.seconds is not None and not (0 < self.seconds <= MAX_SECONDS):  # also refuses NaN
            raise ValueError(f"seconds must be a number in (0, {MAX_SECONDS:g}], got {self.seconds}.")
        if not (self.temperature >= 0 and math.isfinite(self.temperature)):
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}.")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = off), got {self.top_k}.")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1] (1 = off), got {self.top_p}.")
        if not 0 <= self.motif_memory <= MAX_MOTIF_BOOST:  # also refuses NaN
            raise ValueError(
                f"motif_memory must be in [0, {MAX_MOTIF_BOOST:g}] (0 = off), got {self.motif_memory}."
            )
        if not 1 <= self.num_variations <= MAX_VARIATIONS:
            raise ValueError(f"num_variations must be in 1..{MAX_VARIATIONS}, got {self.num_variations}.")
        if self.keep not in KEEP_CHOICES:
            raise ValueError(f"keep must be one of {', '.join(KEEP_CHOICES)}, got {self.keep!r}.")
        if self.chord_notes is not None and not 0 <= self.chord_notes <= 12:
            raise ValueError(f"chord_notes must be in 0..12, got {self.chord_notes}.")
        if not 1 <= self.step_dt <= 126:
            raise ValueError(f"step_ms must be in 16..2016 ms (1..126 steps of 16 ms), got {self.step_ms}.")
        if self.step_duration_ms is not None and not 1 <= self.step_dur <= 126:
            raise ValueError(f"step_duration_ms must be in 32..4032 ms, got {self.step_duration_ms}.")
        if not 0.25 <= self.keep_fraction <= 0.95:
            raise ValueError(f"keep_fraction must be in 0.25..0.95, got {self.keep_fraction}.")
        self.min_pitch, self.max_pitch = check_pitch_range(self.min_pitch, self.max_pitch)
        anti_copy = self.anti_copy_options()  # validates the knn fields in every mode
        if self.mode == "knn" and self.num_variations * anti_copy.candidates > MAX_DECODING_ROWS:
            raise ValueError(
                f"num_variations x knn_candidates is {self.num_variations * anti_copy.candidates}; at most "
                f"{MAX_DECODING_ROWS} rows are decoded together."
            )
        if self.mode == "progression" and self.resolved_chord_notes > self.max_pitch - self.min_pitch:
            raise ValueError(
                f"A progression step with {self.resolved_chord_notes} chord note(s) needs "
                f"{self.resolved_chord_notes + 1} distinct pitches; min_pitch..max_pitch "
                f"{self.min_pitch}..{self.max_pitch} has {self.max_pitch - self.min_pitch + 1}."
            )

    def anti_copy_options(self) -> AntiCopy:
        """The `knn` filter these settings describe (validated)."""
        return AntiCopy(self.knn_candidates, self.knn_threshold, self.knn_memory_tokens)

    @property
    def step_dt(self) -> int:
        """`step_ms` in 16 ms dt steps."""
        return round(self.step_ms / DT_MS)

    @property
    def step_dur(self) -> int | None:
        """`step_duration_ms` in 32 ms duration steps (None: the model chooses)."""
        return None if self.step_duration_ms is None else round(self.step_duration_ms / DUR_MS)

    @property
    def pitch_range(self) -> tuple[int, int]:
        """`(min_pitch, max_pitch)`: the inclusive range of the pitches the model chooses."""
        return self.min_pitch, self.max_pitch

    @property
    def resolved_chord_notes(self) -> int:
        """`chord_notes`, or the mode's default."""
        return DEFAULT_CHORD_NOTES.get(self.mode, 0) if self.chord_notes is None else self.chord_notes

    @property
    def seconds_steps(self) -> int | None:
        """`seconds` in 16 ms dt steps."""
        return None if self.seconds is None else math.ceil(self.seconds * 1000 / DT_MS)

    def note_budget(self) -> int:
        """Notes to generate at most in the free modes (`max_new_notes`, or the cap for `seconds`)."""
        if self.max_new_notes is not None:
            return self.max_new_notes
        if self.seconds is not None:
            return min(max(8, math.ceil(self.seconds * NOTES_PER_SECOND_CAP)), MAX_NEW_NOTES)
        return DEFAULT_MAX_NEW_NOTES

    def with_seed(self) -> GenerationSettings:
        """A copy whose seed is set (drawn at random when `seed` is None)."""
        seed = self.seed if self.seed is not None else random.SystemRandom().randrange(2**31)
        return dataclasses.replace(self, seed=seed)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class GenerationResult:
    """Output of `generate_continuation`.

    Attributes:
        pieces: one complete id sequence per variation (starts on a separator, ends on a pitch): the
            prompt's notes followed by the new ones (`continue`, `progression`), or the re-generated
            source (`inpaint`, `harmonize`).
        given: per variation, one flag per note of the piece: True for notes taken unchanged from the
            prompt (prompt notes, forced melody notes), False for notes the model chose (in part).
        prompt_ids: the prompt / source as used (normalised; for `inpaint` / `harmonize`, the source).
        settings: the settings with the seed filled in.
        extra: run facts, e.g. `windows`: how many context windows were encoded (1 + slides).
    """

    pieces: list[list[int]]
    given: list[list[bool]]
    prompt_ids: list[int]
    settings: GenerationSettings
    extra: dict[str, Any] = field(default_factory=dict)

    def generated_ids(self, variation: int = 0) -> list[int]:
        """The notes of one variation that the model chose (in part), as ids."""
        notes = split_notes(self.pieces[variation])
        flags = self.given[variation]
        ids: list[int] = []
        for note, given in zip(notes, flags, strict=True):
            if not given:
                ids += [SEP_ID, *note]
        return ids


__all__ = [
    "GenerationResult",
    "GenerationSettings",
    "MAX_NEW_NOTES",
    "MAX_SECONDS",
    "MAX_VARIATIONS",
    "MODES",
    "Mode",
]
