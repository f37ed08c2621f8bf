"""Sampling any number of notes with `generate()` on the key/value cache, past the model's context.

Tokens whose value is already known (every separator, and the fields a plan fixes: the source's dt and
dur when inpainting, the melody notes when harmonising, the step when building a progression) are not
sampled: they are appended to the sequence and encoded in the same forward as the next sampled token.
Each `generate()` call then samples one run of free tokens (at most the three fields of a note) on a
cache that persists across calls, so a note costs one cached forward per sampled field, and an
inpainted note (only its pitch is free) costs one forward in all. Upstream re-ran the whole context
for every token instead.

When the window would pass `max_position_embeddings`, the sampler keeps its most recent `keep_fraction`
(cut so that it starts on a separator), encodes that window once into a fresh cache and carries on. The
cache is the kind the model's generation defaults name (`generation_config.cache_implementation`, saved
as `static` with every converted or trained model): transformers' `StaticCache`, sized to the window
once, so steps write into it instead of copying it; a model whose defaults name another cache gets
transformers' `DynamicCache`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import DynamicCache, GenerationConfig, LogitsProcessorList, PreTrainedModel, StaticCache
from transformers.cache_utils import Cache

from .anti_copy import AntiCopy
from .grammar import PIANO_PITCH_RANGE, SEP_ID, next_phase, tokens_to_finish
from .processors import MotifMemoryLogitsProcessor, NotePlan, NoteStructureLogitsProcessor

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplingOptions:
    """How each free token is drawn (see `GenerationSettings` for the meaning of each field)."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    motif_memory: float = 0.0

    def logits_processors(
        self, grammar: NoteStructureLogitsProcessor, prompt_end: int | None = None
    ) -> LogitsProcessorList:
        """The motif memory (when on; it remembers the notes before `prompt_end`, all when None), then the
        grammar, which has the last word on legal ids."""
        processors = []
        if self.motif_memory > 0:
            processors.append(MotifMemoryLogitsProcessor(self.motif_memory, remember_until=prompt_end))
        return LogitsProcessorList([*processors, grammar])

    def generation_config(self, max_new_tokens: int) -> GenerationConfig:
        """A complete config, so that nothing is filled in from a model's `generation_config.json`."""
        greedy = self.temperature == 0
        return GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=not greedy,
            temperature=None if greedy else self.temperature,
            top_k=None if greedy else self.top_k,
            top_p=None if greedy else self.top_p,
            num_beams=1,
            use_cache=True,
            pad_token_id=SEP_ID,
            bos_token_id=SEP_ID,
            eos_token_id=None,
        )


@dataclass(frozen=True)
class TokenSchedule:
    """Per generated token: its phase (0 dt, 1 dur, 2 pitch, 3 separator), its plan note index and the
    value it is forced to (None: sampled)."""

    phases: list[int]
    notes: list[int]
    forced: list[int | None]

    @classmethod
    def build(cls, context: list[int], num_notes: int, plan: NotePlan | None) -> TokenSchedule:
        phase = next_phase(context)
        note = -1 if phase == 3 else 0  # a note opened by the context is plan note 0
        phases, notes, forced = [], [], []
        for _ in range(tokens_to_finish(phase, num_notes)):
            if phase == 3:
                note += 1
            value = SEP_ID if phase == 3 else None
            if value is None and plan is not None and 0 <= note < len(plan):
                low, high = int(plan.low[note, phase]), int(plan.high[note, phase])
                value = low if low == high else None
            phases.append(phase)
            notes.append(note)
            forced.append(value)
            phase = (phase + 1) % 4
        return cls(phases, notes, forced)

    def __len__(self) -> int:
        return len(self.phases)


def window_cache(model: PreTrainedModel, capacity: int, implementation: str | None) -> Cache:
    """A fresh cache for one context window of `capacity` positions, of the `implementation` the model's
    generation defaults name: a `StaticCache` unless they name another one (old folders name none, and a
    window's size is known, so they get the static one too)."""
    if implementation in (None, "static"):
        return StaticCache(config=model.config, max_cache_len=capacity)
    return DynamicCache(config=model.config)


@contextmanager
def sampler_owned_cache(model: PreTrainedModel) -> Iterator[str | None]:
    """Within the block, `generate()` accepts the cache the sampler passes (and keeps across calls); yields
    the cache implementation the model's generation defaults name, for `window_cache`.

    transformers refuses a cache object while the model's generation config names a cache implementation,
    so the setting is lifted for the block and restored after it, also after an error.
    """
    config = model.generation_config
    saved = getattr(config, "cache_implementation", None)
    config.cache_implementation = None
    try:
        yield saved
    finally:
        config.cache_implementation = saved


def window_start(ids: list[int], keep: int) -> int:
    """Start of the most recent `keep` tokens of `ids`, moved forward to the first separator (so the
    window starts a note); a tail without separator (a malformed prompt) is cut as is."""
    start = max(0, len(ids) - keep)
    try:
        return ids.index(SEP_ID, start)
    except ValueError:
        return start


def sample_notes(
    model: PreTrainedModel,
    context: list[int],
    num_notes: int,
    *,
    batch_size: int = 1,
    plan: NotePlan | None = None,
    sampling: SamplingOptions = SamplingOptions(),
    keep_fraction: float = 0.75,
    time_limit_steps: int | None = None,
    show_progress: bool = False,
    pitch_range: tuple[int, int] = PIANO_PITCH_RANGE,
    anti_copy: AntiCopy | None = None,
    report: dict | None = None,
) -> tuple[torch.Tensor, int]:
    """Generate `num_notes` notes after `context` for `batch_size` rows, sliding past the context.

    Args:
        model: a causal LM whose `config.max_position_embeddings` is its context.
        context: ids to continue (starts on a separator; may end inside a note).
        num_notes: notes to generate; a note opened by `context` counts as the first.
        batch_size: independent rows sampled together (variations); they share the forced tokens.
        plan: per-note constraints (`None`: grammar only).
        sampling: temperature / top-k / top-p.
        keep_fraction: fraction of the context kept when the window slides.
        time_limit_steps: stop early, at a note boundary, once every row's new onsets span this many
            16 ms steps.
        show_progress: show a tqdm bar counting notes.
        pitch_range: inclusive range of the pitches sampled outside `plan` (a plan carries its own).
        anti_copy: sample `anti_copy.candidates` candidates of every note as extra rows of the batch and keep
            one that does not repeat a remembered note (see `anti_copy.py`); free continuation only.
        report: a dict to fill with run facts (`knn_notes`, `knn_fallbacks` with `anti_copy`).

    Returns:
        `(new_ids, windows)`: `(batch_size, T)` generated ids (ending on a pitch) and the number of
        windows encoded from scratch (1 + number of slides).
    """
    max_context = int(model.config.max_position_embeddings)
    keep = max(4, int(max_context * keep_fraction))
    device = model.device
    schedule = TokenSchedule.build(context, num_notes, plan)
    if anti_copy is not None and plan is not None:
        raise ValueError("Anti-copy (knn) sampling applies to free continuation only, not to a note plan.")
    candidates = anti_copy.candidates if anti_copy is not None else 1
    knn_notes = knn_fallbacks = 0
    batch_size *= candidates  # candidate rows of one variation are consecutive
    sequence = torch.tensor([context] * batch_size, dtype=torch.long, device=device)
    first_new, start, cache, windows, done = len(context), 0, None, 0, 0
    elapsed = torch.zeros(batch_size, dtype=torch.long, device=device)  # dt steps generated so far
    progress = tqdm(total=num_notes, unit="note", desc="generating", disable=not show_progress, leave=False)
    with sampler_owned_cache(model) as cache_implementation, progress as bar:
        while done < len(schedule):
            # 1. known tokens: appended now, encoded together with the next sampled token
            forced = []
            while done < len(schedule) and schedule.forced[done] is not None:
                forced.append(schedule.forced[done])
                done += 1
            if forced:
                column = torch.tensor(forced, dtype=torch.long, device=device).expand(batch_size, -1)
                sequence = torch.cat([sequence, column], dim=1)
            run = 0
            while done + run < len(schedule) and schedule.forced[done + run] is None:
                run += 1
            if run == 0:  # the plan ends on known tokens (e.g. a melody note without chord notes)
                bar.update(sum(phase == 2 for phase in schedule.phases[done - len(forced) : done]))
                break
            # 2. slide the window when this run would not fit
            if sequence.shape[1] - start + run > max_context:
                if windows == 0 and first_new > max_context:
                    logger.warning(
                        "The prompt has %d tokens, more than the model's context of %d; the model sees the "
                        "most recent ones (the output keeps the whole prompt).",
                        first_new,
                        max_context,
                    )
                start = window_start(sequence[0].tolist(), keep)
                cache = None
                if sequence.shape[1] - start + run > max_context:
                    raise ValueError(
                        f"keep_fraction {keep_fraction} leaves no room to generate in a "
                        f"{max_context}-token context."
                    )
            if cache is None:
                cache = window_cache(model, max_context, cache_implementation)
                windows += 1
            # 3. sample the run of free tokens on the cache
            window = sequence[:, start:]
            processor = NoteStructureLogitsProcessor(
                window.shape[1], plan, note_at_start=schedule.notes[done], pitch_range=pitch_range
            )
            output = model.generate(
                window,
                attention_mask=torch.ones_like(window),  # the separator doubles as pad id: never infer a mask
                cache=cache,
                generation_config=sampling.generation_config(run),
                logits_processor=sampling.logits_processors(processor, max(0, first_new - start)),
            )
            sequence = torch.cat([sequence, output[:, window.shape[1] :]], dim=1)
            counted, done = done - len(forced), done + run
            if anti_copy is not None and schedule.phases[done - 1] == 2:
                rows, fallbacks = anti_copy.choose(sequence)
                sequence = sequence[rows]
                knn_notes += batch_size // candidates
                knn_fallbacks += fallbacks
                # the rows sampled different tokens in this call: forget them, they are re-encoded next call
                for layer in cache.layers:
                    layer.crop(window.shape[1] - int(layer.get_seq_length()))
            bar.update(sum(phase == 2 for phase in schedule.phases[counted:done]))
            for index in range(counted, done):
                if schedule.phases[index] == 0:
                    elapsed += sequence[:, first_new + index]
            if time_limit_steps is not None and schedule.phases[done - 1] == 2:
                if bool((elapsed >= time_limit_steps).all()):
                    break
    logger.debug("sampled %d tokens in %d window(s)", sequence.shape[1] - first_new, windows)
    if report is not None and anti_copy is not None:
        report.update(knn_notes=knn_notes, knn_fallbacks=knn_fallbacks)
    return sequence[::candidates, first_new:].cpu(), windows


__all__ = [
    "SamplingOptions",
    "TokenSchedule",
    "sample_notes",
    "sampler_owned_cache",
    "window_cache",
    "window_start",
]
