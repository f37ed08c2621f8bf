"""Continuations of the evaluation prompts, many prompts and seeds per batch, on the library's grammar path.

All prompts have the same number of notes (they are excerpts of the test performances), so the rows of one
batch are aligned: every row is a prompt, and one `generate()` call samples all its new tokens on the
cache the library's sampler would use (`window_cache`: the model's saved default, a static cache), with the
library's `NoteStructureLogitsProcessor` (its default ranges: valid `<sep> dt dur pitch` notes, and whatever
pitch range the library enforces by default) and the library's `SamplingOptions`. Separators come out of the
processor with probability 1, exactly as the library's `sample_notes`
appends them. A prompt plus its continuation that does not fit the model's context falls back to the
library's sliding-window `sample_notes`, one prompt at a time.

Seeds: for seed `s`, `torch.manual_seed(s)` is set before the batches of that seed, so every model draws its
continuations of seed `s` from the same random stream, and a run is reproducible.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from gigapiano.generation import NoteStructureLogitsProcessor, SamplingOptions, is_well_formed, sample_notes
from gigapiano.generation.long_context import sampler_owned_cache, window_cache
from gigapiano.generation.settings import DEFAULT_MOTIF_MEMORY, DEFAULT_TEMPERATURE, DEFAULT_TOP_P

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplingSetup:
    """How continuations are sampled (identical for every model).

    Attributes:
        new_notes: Notes generated after each prompt.
        seeds: One continuation of every prompt per seed.
        temperature: Sampling temperature (1.0 = the model's distribution; default: the library's).
        top_k: Top-k filter (0 = off).
        top_p: Nucleus filter (1.0 = off).
        motif_memory: Motif-memory boost (0 = off; default: the library's).
        batch_size: Rows (prompt x seed) per `generate()` call.
    """

    new_notes: int = 128
    seeds: tuple[int, ...] = (0, 1, 2)
    temperature: float = DEFAULT_TEMPERATURE
    top_k: int = 0
    top_p: float = DEFAULT_TOP_P
    batch_size: int = 64
    motif_memory: float = DEFAULT_MOTIF_MEMORY

    @property
    def sampling(self) -> SamplingOptions:
        return SamplingOptions(self.temperature, self.top_k, self.top_p, self.motif_memory)

    @classmethod
    def from_arguments(cls, args: Any) -> SamplingSetup:
        """The setup an evaluation's arguments describe (`GigaPianoEvaluationArguments`)."""
        return cls(
            args.new_notes,
            tuple(args.seeds),
            args.temperature,
            args.top_k,
            args.top_p,
            args.generation_batch_size,
            args.motif_memory,
        )


@dataclass
class Continuation:
    """One generated continuation.

    Attributes:
        prompt_index: Index of its prompt.
        seed: Its seed.
        ids: The new ids only (without the prompt).
        well_formed: Whether `ids` parse as whole notes with legal values.
    """

    prompt_index: int
    seed: int
    ids: list[int]
    well_formed: bool


def _batched(
    model: torch.nn.Module, prompts: list[list[int]], new_tokens: int, setup: SamplingSetup
) -> list[list[int]]:
    """New ids of aligned prompts (same length, each ending on a pitch) in one cached `generate()`."""
    device = model.device
    rows = torch.tensor(prompts, dtype=torch.long, device=device)
    processor = NoteStructureLogitsProcessor(rows.shape[1])
    with sampler_owned_cache(model) as implementation:
        cache = window_cache(model, int(model.config.max_position_embeddings), implementation)
        output = model.generate(
            rows,
            attention_mask=torch.ones_like(rows),  # the separator doubles as pad id: never infer a mask
            cache=cache,
            generation_config=setup.sampling.generation_config(new_tokens),
            logits_processor=setup.sampling.logits_processors(processor, rows.shape[1]),
        )
    return output[:, rows.shape[1] :].cpu().tolist()


@torch.no_grad()
def continue_prompts(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    setup: SamplingSetup,
    show_progress: bool = False,
    description: str = "generating",
) -> list[Continuation]:
    """Continues every prompt once per seed.

    Args:
        model: A GIGA-Piano causal LM in eval mode.
        prompts: Token ids of the prompts; each starts on a separator and ends on a pitch.
        setup: Sampling settings.
        show_progress: Show a tqdm bar over batches.
        description: Label of the progress bar.

    Returns:
        The continuations, seed by seed, prompt by prompt.
    """
    model.eval()
    context = int(model.config.max_position_embeddings)
    new_tokens = 4 * setup.new_notes
    lengths = {len(p) for p in prompts}
    aligned = len(lengths) == 1 and lengths.pop() + new_tokens <= context
    if not aligned:
        logger.warning(
            "Prompts of unequal length or longer than the context with their continuation: generating one "
            "prompt at a time with the library's sliding window (slower)."
        )
    results: list[Continuation] = []
    batches = [
        (seed, start)
        for seed in setup.seeds
        for start in range(0, len(prompts), setup.batch_size if aligned else 1)
    ]
    current_seed = None
    devices = [model.device] if model.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # leave the caller's random state alone
        for seed, start in tqdm(
            batches, desc=description, unit="batch", disable=not show_progress, leave=False
        ):
            if seed != current_seed:
                torch.manual_seed(seed)
                current_seed = seed
            chunk = [list(p) for p in prompts[start : start + (setup.batch_size if aligned else 1)]]
            if aligned:
                new = _batched(model, chunk, new_tokens, setup)
            else:
                ids, _ = sample_notes(model, chunk[0], setup.new_notes, sampling=setup.sampling)
                new = ids.tolist()
            for offset, ids in enumerate(new):
                results.append(Continuation(start + offset, seed, ids, is_well_formed(ids)))
    return results


__all__ = ["Continuation", "SamplingSetup", "continue_prompts"]
