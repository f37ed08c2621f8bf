"""Turn a mode and a prompt into a generation job: the context the model starts from and a `NotePlan`.

* `continue` (and `knn`, which filters the sampled notes): the prompt is the context; no plan (only the
  grammar is enforced).
* `progression`: the prompt is the context; every step has the fixed dt (and duration), optionally with
  chord notes (dt = 0, going down) under it.
* `inpaint`: the context is a lone separator; note i keeps source note i's dt (and dur) and the model
  chooses the pitch. Notes sharing an onset must go down in pitch, as the tokenizer orders chords.
* `harmonize`: the context is a lone separator; each melody note (the highest note of each onset of the
  prompt) is forced whole and `chord_notes` notes with dt = 0 are added under it.

Every pitch the model chooses stays in `settings.pitch_range` (the piano by default): the plan passes the
range on, and the room each chord needs below its top note is counted from the range's bottom.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .grammar import SEP_ID, NoteFields, next_phase, normalize_prompt, onset_steps, split_notes
from .processors import NotePlan, NoteSpec
from .settings import FREE_MODES, GenerationSettings


@dataclass
class GenerationJob:
    """What the sampler runs.

    Attributes:
        context: ids the model starts from (starts on a separator).
        num_notes: notes to generate (a note opened by the context counts as the first).
        plan: per-note constraints, or None for free continuation.
        context_given: given-flags of the context's complete notes (they are part of the piece).
        time_limit_steps: for free continuation with `seconds`: stop once this many dt steps are covered.
    """

    context: list[int]
    num_notes: int
    plan: NotePlan | None = None
    context_given: int = 0
    time_limit_steps: int | None = None


def _complete_notes(ids: list[int]) -> int:
    """Number of notes of `ids` that already have all three fields."""
    separators = ids.count(SEP_ID)
    return separators if next_phase(ids) == 3 else separators - 1


def _chord_specs(count: int, lowest: int, dur: int | None = None) -> list[NoteSpec]:
    """`count` notes under the previous one: dt = 0, each lower than the last, none below `lowest`, each
    leaving room for the rest."""
    return [
        # chord note k (from 0) must leave room for the count - k - 1 notes still to come below it
        NoteSpec(dt=0, dur=dur, pitch_min=lowest + count - k - 1, below_previous=True)
        for k in range(count)
    ]


def _source_notes(prompt: list[int], settings: GenerationSettings) -> list[NoteFields]:
    """The prompt's complete notes, cut to `max_new_notes` / `seconds` (the source of inpaint/harmonize)."""
    if next_phase(prompt) != 3:  # drop a trailing partial note
        prompt = prompt[: len(prompt) - 1 - prompt[::-1].index(SEP_ID)]
    notes = split_notes(prompt) if len(prompt) > 1 else []
    if not notes:
        raise ValueError(
            f"Mode {settings.mode!r} takes its timing from a prompt; give a prompt with at least one note."
        )
    if settings.seconds_steps is not None:
        start = onset_steps(notes)[0]
        notes = [
            n
            for n, onset in zip(notes, onset_steps(notes), strict=True)
            if onset - start <= settings.seconds_steps
        ]
    return notes


def _onset_groups(notes: list[NoteFields]) -> list[list[NoteFields]]:
    """Consecutive notes sharing an onset (the first note of the piece and every dt > 0 start a group)."""
    groups: list[list[NoteFields]] = []
    for note in notes:
        if not groups or note.dt > 0:
            groups.append([note])
        else:
            groups[-1].append(note)
    return groups


def build_job(prompt_ids: list[int], settings: GenerationSettings) -> GenerationJob:
    """Build the context and plan of `settings.mode` for `prompt_ids`.

    Raises:
        ValueError: `inpaint` / `harmonize` without prompt notes, a token outside 0..127, or an `inpaint`
            source chord with more notes than the pitch range has pitches.
    """
    prompt = normalize_prompt(prompt_ids)
    mode = settings.mode
    lowest, highest = settings.pitch_range
    if mode in FREE_MODES:
        return GenerationJob(
            context=prompt,
            num_notes=settings.note_budget(),
            context_given=_complete_notes(prompt),
            time_limit_steps=settings.seconds_steps,
        )
    if mode == "progression":
        chord = settings.resolved_chord_notes
        if settings.seconds_steps is not None and settings.max_new_notes is None:
            steps = max(1, settings.seconds_steps // settings.step_dt)
        else:
            steps = max(1, math.ceil(settings.note_budget() / (chord + 1)))
        step = [NoteSpec(dt=settings.step_dt, dur=settings.step_dur, pitch_min=lowest + chord)]
        specs = (step + _chord_specs(chord, lowest, settings.step_dur)) * steps
        if next_phase(prompt) in (1, 2):
            # a prompt note cut after its dt or dur is completed freely first, then the progression starts
            specs = [NoteSpec()] + specs
        plan = NotePlan(specs, settings.pitch_range)
        return GenerationJob(prompt, len(specs), plan, _complete_notes(prompt))

    source = _source_notes(prompt, settings)
    if mode == "inpaint":
        if settings.max_new_notes is not None:
            source = source[: settings.max_new_notes]
        keep_dur = settings.keep == "time+dur"
        specs = []
        for group in _onset_groups(source):
            if len(group) > highest - lowest + 1:
                raise ValueError(
                    f"The source has a {len(group)}-note chord, more than the {highest - lowest + 1} "
                    f"pitch(es) of min_pitch..max_pitch {lowest}..{highest}; widen the pitch range."
                )
            for k, note in enumerate(group):
                # chords go high to low; leave room below for the rest of the group
                specs.append(
                    NoteSpec(
                        dt=note.dt,
                        dur=note.dur if keep_dur else None,
                        pitch_min=lowest + len(group) - k - 1,
                        below_previous=k > 0,
                    )
                )
    else:  # harmonize
        melody = _melody(source)
        if settings.max_new_notes is not None:
            melody = melody[: settings.max_new_notes]
        specs = []
        for note in melody:
            specs.append(NoteSpec(dt=note.dt, dur=note.dur, pitch=note.pitch))
            # the kept melody pitch may lie outside the range; chord notes go below it and inside the range
            room = max(0, min(note.pitch - 1, highest) - lowest + 1)
            specs += _chord_specs(min(settings.resolved_chord_notes, room), lowest)
    plan = NotePlan(specs, settings.pitch_range)
    return GenerationJob(context=[SEP_ID], num_notes=len(specs), plan=plan, context_given=0)


def _melody(notes: list[NoteFields]) -> list[NoteFields]:
    """The highest note of each onset, with its group's dt (the onset difference between groups)."""
    return [
        NoteFields(group[0].dt, top.dur, top.pitch)
        for group in _onset_groups(notes)
        for top in [max(group, key=lambda note: note.pitch)]
    ]


def melody_of(ids: list[int]) -> list[NoteFields]:
    """The melody `harmonize` keeps from a prompt: the highest note of each onset."""
    return _melody(split_notes(ids))


__all__ = ["GenerationJob", "build_job", "melody_of"]
