"""Continuations of the evaluation prompts, through the same generation library that `generate.py` uses.

Every model continues every prompt with the same settings, and prompt `i` always uses seed `seed + i`, so the
models differ only in their weights. The variations of one prompt are sampled as one batch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from gigapiano.generation import GenerationSettings, generate_continuation, is_well_formed

from .prompts import EvaluationPrompt

logger = logging.getLogger(__name__)


@dataclass
class SamplingSetup:
    """How continuations are sampled (identical for every model).

    Attributes:
        new_notes: Notes generated after each prompt.
        samples: Continuations per prompt (one batch of variations).
        seed: Prompt `i` uses seed `seed + i`.
        temperature: Sampling temperature (1.0 = the model's distribution).
        top_k: Top-k filter (0 = off).
        top_p: Nucleus filter (1.0 = off).
    """

    new_notes: int = 128
    samples: int = 2
    seed: int = 0
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0


@dataclass
class Continuation:
    """One generated continuation.

    Attributes:
        prompt_index: Index of its prompt.
        sample: Which variation of that prompt.
        seed: Seed of the batch it came from.
        ids: The new ids only (without the prompt), as sampled.
        well_formed: Whether `ids` parse as whole `127, dt, dur, pitch` notes with legal values.
    """

    prompt_index: int
    sample: int
    seed: int
    ids: list[int]
    well_formed: bool


def continue_prompts(
    model: torch.nn.Module,
    prompts: Sequence[EvaluationPrompt],
    setup: SamplingSetup,
    show_progress: bool = False,
    description: str = "generating",
) -> list[Continuation]:
    """Generates `setup.samples` continuations of every prompt with one model.

    Args:
        model: A GIGA-Piano causal LM in eval mode.
        prompts: The prompts.
        setup: Sampling settings.
        show_progress: Show a tqdm bar over prompts.
        description: Label of the progress bar.

    Returns:
        The continuations, prompt by prompt, sample by sample.
    """
    settings = GenerationSettings(
        mode="continue",
        max_new_notes=setup.new_notes,
        temperature=setup.temperature,
        top_k=setup.top_k,
        top_p=setup.top_p,
        num_variations=setup.samples,
    )
    continuations = []
    for index, prompt in enumerate(tqdm(prompts, desc=description, unit="prompt", disable=not show_progress)):
        seed = setup.seed + index
        result = generate_continuation(model, prompt.ids, settings, seed=seed)
        for sample, piece in enumerate(result.pieces):
            new_ids = list(piece[len(result.prompt_ids) :])
            continuations.append(Continuation(index, sample, seed, new_ids, is_well_formed(new_ids)))
    return continuations


__all__ = ["Continuation", "SamplingSetup", "continue_prompts"]
