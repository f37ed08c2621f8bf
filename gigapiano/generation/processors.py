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


def _phase_bounds(pitch_range: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-phase `(low, high)` id tensors (dt, dur, pitch, separator) with the pitch phase narrowed."""
    low = torch.tensor([low for low, _ in PHASE_RANGES])
    high = torch.tensor([high for _, high in PHASE_RANGES])
    low[2], high[2] = pitch_range
    return low, high


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
        batch, length = input_ids.shape
        device = input_ids.device
        is_sep = input_ids == SEP_ID
        positions = torch.arange(length, device=device)
        last_sep = torch.where(is_sep, positions, -1).amax(dim=1)  # (batch,), -1 when none
        phase = (length - 1 - last_sep).clamp(max=3)
        phase = torch.where(last_sep < 0, 3, phase)  # no separator at all: start a note
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


__all__ = ["NotePlan", "NoteSpec", "NoteStructureLogitsProcessor"]
