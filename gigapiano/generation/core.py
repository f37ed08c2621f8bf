"""The library entry point: ids in, ids out, no files. Used by `generate.py`, the demo and the endpoint."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import torch
from transformers import PreTrainedModel

from .grammar import normalize_prompt, onset_steps, split_notes
from .long_context import SamplingOptions, sample_notes
from .modes import build_job
from .settings import MAX_NEW_NOTES, GenerationResult, GenerationSettings

logger = logging.getLogger(__name__)


def generate_continuation(
    model: PreTrainedModel,
    prompt_ids: Sequence[int] | None = None,
    settings: GenerationSettings | None = None,
    *,
    show_progress: bool = False,
    **overrides,
) -> GenerationResult:
    """Generate with GIGA-Piano in any mode; every returned piece is well-formed by construction, and every
    pitch the model chose lies in `settings.pitch_range` (the piano, 21..108, unless widened).

    Args:
        model: a GIGA-Piano causal LM (in eval mode), e.g. from `load_model_and_tokenizer`.
        prompt_ids: token ids of the prompt / source (`tokenizer.encode_midi(...)`); None or empty
            improvises from a separator (`continue` and `progression` only).
        settings: mode, length and sampling; defaults to `GenerationSettings()`.
        show_progress: show a tqdm bar counting notes.
        overrides: fields of `GenerationSettings` to replace, e.g. `mode="inpaint", seed=3`.

    Returns:
        A `GenerationResult` with one piece per variation and the settings actually used (seed filled).

    Example:
        ```python
        >>> prompt = tokenizer.encode_midi("prompt.mid")
        >>> result = generate_continuation(model, prompt, max_new_notes=64, seed=0)
        >>> tokenizer.save_midi(result.pieces[0], "out.mid")
        ```
    """
    settings = dataclasses.replace(settings or GenerationSettings(), **overrides).with_seed()
    if model.training:
        logger.warning("The model is in training mode (dropout on); call model.eval() for proper sampling.")
    job = build_job(list(prompt_ids or []), settings)
    if job.num_notes > MAX_NEW_NOTES:  # inpaint / harmonize of a long source without a length
        raise ValueError(
            f"Mode {settings.mode!r} would generate {job.num_notes} notes; the limit is {MAX_NEW_NOTES}: "
            "pass max_new_notes or seconds to use the start of the prompt."
        )
    sampling = SamplingOptions(settings.temperature, settings.top_k, settings.top_p, settings.motif_memory)
    logger.info(
        "mode=%s: %d note(s) x %d variation(s), seed %d, pitches %d..%d",
        settings.mode,
        job.num_notes,
        settings.num_variations,
        settings.seed,
        *settings.pitch_range,
    )
    report: dict = {}
    with torch.random.fork_rng(devices=[model.device] if model.device.type == "cuda" else []):
        torch.manual_seed(settings.seed)
        new_ids, windows = sample_notes(
            model,
            job.context,
            job.num_notes,
            batch_size=settings.num_variations,
            plan=job.plan,
            sampling=sampling,
            keep_fraction=settings.keep_fraction,
            time_limit_steps=job.time_limit_steps,
            show_progress=show_progress,
            pitch_range=settings.pitch_range,
            anti_copy=settings.anti_copy_options() if settings.mode == "knn" else None,
            report=report,
        )
    pieces, given = [], []
    for row in new_ids.tolist():
        piece = job.context + row
        flags = [True] * job.context_given
        flags += job.plan.given if job.plan is not None else [False] * (len(piece) // 4 - job.context_given)
        if job.time_limit_steps is not None:
            piece, flags = _trim_to_span(piece, flags, job.context_given, job.time_limit_steps)
        pieces.append(piece)
        given.append(flags)
    prompt = normalize_prompt(list(prompt_ids or []))
    extra = {"windows": windows, **report}
    weights = getattr(model, "weights_by_name", None)  # a style blend (`StyleMixture`)
    if weights is not None:
        extra["model_weights"] = dict(weights)
    return GenerationResult(pieces, given, prompt, settings, extra=extra)


def _trim_to_span(
    piece: list[int], given: list[bool], first_new: int, limit_steps: int
) -> tuple[list[int], list[bool]]:
    """Drop new notes whose onset (counted from the first new note's predecessor) exceeds `limit_steps`;
    at least one new note stays."""
    notes = split_notes(piece)
    offsets = onset_steps(notes[first_new:])
    keep = first_new + max(1, sum(1 for offset in offsets if offset <= limit_steps))
    return piece[: 4 * keep], given[:keep]


__all__ = ["generate_continuation"]
