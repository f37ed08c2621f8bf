"""Logits processors that keep generation inside the note grammar and force fields for controlled modes.

`NoteStructureLogitsProcessor` is handed to `model.generate(logits_processor=...)`. At every step it
reads the phase of the next token from the running sequence (prompt included), then masks every id
outside the allowed range of that phase. A `NotePlan` narrows the ranges note by note: a fixed dt for
a progression, the source's dt and dur for inpainting, the whole melody note for harmonisation. Every
pitch the model chooses is also kept inside a pitch range (by default the piano's 21..108); a pitch the
plan forces (a melody note kept by harmonisation) stays as given. The mask runs before temperature,
top-k and top-p (transformers applies custom processors first), so a warper can never leave only illegal
ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import LogitsProcessor

from .grammar import PHASE_RANGES, PIANO_PITCH_RANGE, SEP_ID, check_pitch_range
from .settings import MAX_MOTIF_BOOST


def _phase_bounds(pitch_range: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-phase `(low, high)` id tensors (dt, dur, pitch, separator) with the pitch phase narrowed."""
    low = torch.tensor([low for low, _ in PHASE_RANGES])
    high = torch.tensor([high for _, high in PHASE_RANGES])
    low[2], high[2] = pitch_range
    return low, high


def _next_fields(input_ids: torch.LongTensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, `(phase, last_sep)`: the field of the next token (0 dt, 1 dur, 2 pitch, 3 separator), read as
    its distance from the last separator (a row without one starts a note), and that separator's position
    (-1 when none)."""
    length = input_ids.shape[1]
    positions = torch.arange(length, device=input_ids.device)
    last_sep = torch.where(input_ids == SEP_ID, positions, -1).amax(dim=1)
    phase = (length - 1 - last_sep).clamp(max=3)
    return torch.where(last_sep < 0, 3, phase), last_sep


@dataclass(frozen=True)
class NoteSpec:
    """Constraints on one generated note; `None` leaves a field to the model.

    Args:
        dt / dur / pitch: force the field to this value.
        pitch_min: lowest pitch the model may choose (used to leave room under a chord); the plan's pitch
            range applies as well, so the effective floor is the larger of the two.
        below_previous: the pitch must be lower than the previous note's pitch (chord notes are encoded
            high to low, so a note added under a melody note or a chord note must go down).
    """

    dt: int | None = None
    dur: int | None = None
    pitch: int | None = None
    pitch_min: int = PHASE_RANGES[2][0]
    below_previous: bool = False

    @property
    def fully_forced(self) -> bool:
        """True when nothing is left to the model (for example a melody note in harmonisation)."""
        return self.dt is not None and self.dur is not None and self.pitch is not None


class NotePlan:
    """Per-note allowed ranges for a run of generated notes, as tensors the processor can index.

    Args:
        specs: one `NoteSpec` per note to generate, in order.
        pitch_range: inclusive range of the pitches the model chooses (forced pitches may lie outside it).

    Raises:
        ValueError: a forced value outside its field's range, a bad `pitch_range`, or a `pitch_min` above
            the range's top.
    """

    def __init__(self, specs: Sequence[NoteSpec], pitch_range: tuple[int, int] = PIANO_PITCH_RANGE) -> None:
        self.specs = list(specs)
        self.pitch_range = check_pitch_range(*pitch_range)
        default_low, default_high = _phase_bounds(self.pitch_range)
        low = default_low[:3].repeat(len(self.specs), 1)
        high = default_high[:3].repeat(len(self.specs), 1)
        for index, spec in enumerate(self.specs):
            for phase, value in enumerate((spec.dt, spec.dur, spec.pitch)):
                if value is None:
                    continue
                field_low, field_high = PHASE_RANGES[phase]
                if not field_low <= value <= field_high:
                    name = ("dt", "dur", "pitch")[phase]
                    raise ValueError(
                        f"Note {index}: forced {name} {value} is outside {field_low}..{field_high}."
                    )
                low[index, phase] = high[index, phase] = value
            if spec.pitch is None:
                low[index, 2] = max(int(low[index, 2]), spec.pitch_min)
                if low[index, 2] > high[index, 2]:
                    raise ValueError(
                        f"Note {index}: pitch_min {spec.pitch_min} is above the pitch range's top "
                        f"{self.pitch_range[1]}."
                    )
        self.low, self.high = low, high
        self.below_previous = torch.tensor([spec.below_previous for spec in self.specs], dtype=torch.bool)

    def __len__(self) -> int:
        return len(self.specs)

    @property
    def given(self) -> list[bool]:
        """Per note: True when the note is forced entirely (shown as given, not generated)."""
        return [spec.fully_forced for spec in self.specs]


class NoteStructureLogitsProcessor(LogitsProcessor):
    """Masks every id that would break `<sep> dt dur pitch` or the plan of the note being generated.

    The phase of the next token is its distance from the last separator in `input_ids` (prompt
    included), so a prompt that ends in the middle of a note is completed correctly. Which plan note is
    being generated is counted from the separators produced since the segment's prompt.

    Args:
        prompt_length: length of the `input_ids` handed to `generate()` for this segment.
        plan: constraints per generated note; `None` (free continuation) only enforces the grammar.
        note_at_start: plan index of the note opened by the last separator of the segment's prompt
            (-1 when that separator belongs to the prompt's own notes). Notes past the plan are free.
        pitch_range: inclusive range of the pitches the model may choose outside the plan (default: the
            piano, 21..108); inside the plan, the plan's own range applies.

    Raises:
        ValueError: a bad `pitch_range` (see `check_pitch_range`).
    """

    def __init__(
        self,
        prompt_length: int,
        plan: NotePlan | None = None,
        note_at_start: int = -1,
        pitch_range: tuple[int, int] = PIANO_PITCH_RANGE,
    ) -> None:
        self.prompt_length = prompt_length
        self.plan = plan
        self.note_at_start = note_at_start
        self.pitch_range = check_pitch_range(*pitch_range)
        self._low, self._high = _phase_bounds(self.pitch_range)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        device = input_ids.device
        is_sep = input_ids == SEP_ID
        phase, last_sep = _next_fields(input_ids)
        low = self._low.to(device)[phase]
        high = self._high.to(device)[phase]

        if self.plan is not None and len(self.plan) > 0:
            note = self.note_at_start + is_sep[:, self.prompt_length :].sum(dim=1)
            planned = (note >= 0) & (note < len(self.plan)) & (phase < 3)
            index = note.clamp(0, len(self.plan) - 1)
            field = phase.clamp(max=2)
            plan_low = self.plan.low.to(device)[index, field]
            plan_high = self.plan.high.to(device)[index, field]
            low = torch.where(planned, plan_low, low)
            high = torch.where(planned, plan_high, high)
            # The previous note's pitch sits just before the current note's separator.
            below = planned & (phase == 2) & self.plan.below_previous.to(device)[index] & (last_sep >= 1)
            previous_pitch = input_ids.gather(1, (last_sep - 1).clamp(min=0)[:, None]).squeeze(1)
            high = torch.where(below, torch.minimum(high, previous_pitch - 1), high)
            high = torch.maximum(high, low)  # never leave a row without a legal id

        vocab = torch.arange(scores.shape[-1], device=device)
        illegal = (vocab[None, :] < low[:, None]) | (vocab[None, :] > high[:, None])
        return scores.masked_fill(illegal, float("-inf"))


class MotifMemoryLogitsProcessor(LogitsProcessor):
    """Favours the pitches that would take up a motif of the prompt (a memory of its pitch steps).

    Small models copy little from their context (the previous release predicted an excerpt repeated
    verbatim barely better the second time, and its continuations almost never took up a motif of the
    prompt; docs/sampling.md).
    Before each pitch, this processor looks for the places in the remembered notes (the prompt, in token
    order) where the latest `min_match` or more pitch steps occurred, and proposes for each the step that
    followed there, applied to the current pitch (so a motif can also come back at another pitch level, as
    in a sequence). Longer matches count `match_base` times more per extra step; the proposals form a
    distribution `q`. The model's probability of each proposed pitch is then multiplied by `1 + boost * q`
    (and the distribution renormalised): the model still judges what fits (a proposal it finds unlikely,
    say out of key, stays unlikely), the memory tips the balance toward the prompt's motifs. Pitches are
    left alone where nothing matches; the grammar processor that runs after it decides what is legal.

    Args:
        boost: how strongly proposals are favoured (0 = off).
        remember_until: only the notes before this position of `input_ids` are remembered (the prompt, so
            that the continuation takes up the prompt's motifs without feeding on its own and looping);
            None remembers the whole context.
        min_match: pitch steps that must match before a place is remembered.
        max_match: longest match counted.
        match_base: weight factor per matched step beyond `min_match`.
    """

    def __init__(
        self,
        boost: float,
        remember_until: int | None = None,
        min_match: int = 2,
        max_match: int = 6,
        match_base: float = 4.0,
    ) -> None:
        if not 0 <= boost <= MAX_MOTIF_BOOST:  # also refuses NaN
            raise ValueError(f"motif memory boost must be in [0, {MAX_MOTIF_BOOST:g}], got {boost}.")
        self.boost = float(boost)
        self.remember_until = remember_until
        self.min_match, self.max_match, self.match_base = min_match, max_match, match_base

    def memory(
        self, pitches: Sequence[int], vocab_size: int, remembered: int | None = None
    ) -> torch.Tensor | None:
        """The memory's distribution over ids for the pitch after `pitches`, or None without a match; only
        steps that led to one of the first `remembered` pitches (all when None) are proposed."""
        values = torch.as_tensor(list(pitches), dtype=torch.long)
        count = values.numel()
        if count < self.min_match + 2:
            return None
        steps = values[1:] - values[:-1]  # steps[i] leads from pitch i to pitch i + 1
        # Place j (the pitch at index j + 1 followed earlier) matches when the steps before it equal the
        # latest steps: steps[j - 1 - t] == steps[-1 - t] for t < length.
        latest = steps.flip(0)[: self.max_match]
        last_place = steps.numel() if remembered is None else min(steps.numel(), remembered - 1)
        candidates = torch.arange(self.min_match, max(self.min_match, last_place))
        length = torch.zeros(candidates.numel(), dtype=torch.long)
        running = torch.ones(candidates.numel(), dtype=torch.bool)
        for t in range(latest.numel()):
            index = candidates - 1 - t
            valid = index >= 0
            equal = valid & (steps[index.clamp(min=0)] == latest[t])
            running &= equal
            length += running.long()
        chosen = length >= self.min_match
        if not bool(chosen.any()):
            return None
        targets = values[-1] + steps[candidates[chosen]]
        weights = self.match_base ** (length[chosen] - self.min_match).double()
        inside = (targets >= 0) & (targets < vocab_size)
        if not bool(inside.any()):
            return None
        distribution = torch.zeros(vocab_size, dtype=torch.double)
        distribution.index_add_(0, targets[inside], weights[inside])
        return (distribution / distribution.sum()).float()

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.boost == 0:
            return scores
        length = input_ids.shape[1]
        at_pitch = _next_fields(input_ids)[0] == 2  # `<sep> dt dur` seen: a pitch comes next
        if not bool(at_pitch.any()):
            return scores
        scores = scores.clone()
        rows = input_ids.cpu()
        for row in torch.nonzero(at_pitch).flatten().tolist():
            seps = torch.nonzero(rows[row] == SEP_ID).flatten()
            pitch_positions = seps[seps + 3 < length] + 3
            remembered = None
            if self.remember_until is not None:
                remembered = int((pitch_positions < self.remember_until).sum())
            memory = self.memory(rows[row, pitch_positions].tolist(), scores.shape[-1], remembered)
            if memory is not None:
                scores[row] += torch.log1p(self.boost * memory.to(scores.device)).to(scores.dtype)
        return scores


__all__ = [
    "MAX_MOTIF_BOOST",
    "MotifMemoryLogitsProcessor",
    "NotePlan",
    "NoteSpec",
    "NoteStructureLogitsProcessor",
]
