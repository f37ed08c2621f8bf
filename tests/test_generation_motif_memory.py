"""The motif memory: what it proposes, where it acts, how it mixes, and that it reaches the output."""

from __future__ import annotations

import random

import pytest
import torch

from gigapiano.generation import GenerationSettings, generate_continuation, is_well_formed
from gigapiano.generation.grammar import SEP_ID, join_notes
from gigapiano.generation.processors import MotifMemoryLogitsProcessor
from modeling_gigapiano import GigaPianoConfig, GigaPianoForCausalLM


def test_memory_proposes_the_step_that_followed_the_latest_steps_elsewhere():
    memory = MotifMemoryLogitsProcessor(0.5)
    # 60 62 64 -> 60 (steps +2 +2 -4); later 65 67 69: the same +2 +2, so the memory proposes 69 - 4 = 65.
    proposal = memory.memory([60, 62, 64, 60, 70, 65, 67, 69], 128)
    assert torch.nonzero(proposal).flatten().tolist() == [65]
    assert proposal.sum().item() == pytest.approx(1.0)
    assert memory.memory([60, 61, 63], 128) is None  # too short to hold a match
    assert memory.memory([60, 62, 64, 70, 71, 75], 128) is None  # the latest steps never occurred before


def test_longer_matches_weigh_more():
    memory = MotifMemoryLogitsProcessor(0.5, match_base=4.0)
    # latest steps ... +5 +2 +2; "+2 +2 then -4" matched over 3 steps, "+2 +2 then +7" over 2 steps only
    pitches = [50, 55, 57, 59, 55, 40, 42, 44, 51, 30, 35, 37, 39]
    proposal = memory.memory(pitches, 128)
    assert proposal[39 - 4].item() == pytest.approx(4 / 5)
    assert proposal[39 + 7].item() == pytest.approx(1 / 5)


def scores_after(ids: list[int], vocab: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.tensor([ids]), torch.randn(1, vocab)


def test_processor_boosts_proposed_pitches_only_before_a_pitch():
    notes = [(4, 4, p) for p in (60, 62, 64, 60, 70, 65, 67, 69)]
    ids = join_notes(notes)
    processor = MotifMemoryLogitsProcessor(9.0)
    before_pitch, scores = scores_after([*ids, SEP_ID, 4, 4])
    boosted = processor(before_pitch, scores)
    expected = scores.clone()
    expected[0, 65] += torch.log(torch.tensor(10.0))  # probability x (1 + 9 * q), q = 1
    torch.testing.assert_close(boosted, expected)
    for partial in ([*ids, SEP_ID], [*ids, SEP_ID, 4], ids):  # before a dt, a duration, a separator
        row, scores = scores_after(partial)
        torch.testing.assert_close(processor(row, scores), scores)
    assert torch.equal(MotifMemoryLogitsProcessor(0.0)(before_pitch, scores), scores)
    with pytest.raises(ValueError, match="motif memory"):
        MotifMemoryLogitsProcessor(-1.0)


def test_settings_refuse_a_bad_motif_memory():
    with pytest.raises(ValueError, match="motif_memory"):
        GenerationSettings(motif_memory=-0.1)
    with pytest.raises(ValueError, match="motif_memory"):
        GenerationSettings(motif_memory=5000.0)
    with pytest.raises(ValueError, match="motif_memory"):
        GenerationSettings(motif_memory=float("nan"))


def test_strong_memory_repeats_a_repeated_motif_and_stays_well_formed():
    """With a very strong boost a prompt made of one repeated motif is continued with that motif's steps."""
    torch.manual_seed(0)
    model = GigaPianoForCausalLM(GigaPianoConfig.from_preset("tiny")).eval()
    motif = [60, 64, 67, 64]
    prompt = join_notes([(8, 8, motif[i % 4]) for i in range(12)])
    result = generate_continuation(model, prompt, max_new_notes=8, motif_memory=1000.0, temperature=0)
    piece = result.pieces[0]
    assert is_well_formed(piece) and result.settings.motif_memory == 1000.0
    new_pitches = piece[len(prompt) + 3 :: 4]
    assert new_pitches == [motif[i % 4] for i in range(12, 20)]
    plain = generate_continuation(model, prompt, max_new_notes=8, motif_memory=0.0, temperature=0).pieces[0]
    assert plain[len(prompt) + 3 :: 4] != new_pitches  # the random model alone does not


def test_only_the_prompt_is_remembered_when_asked():
    memory = MotifMemoryLogitsProcessor(0.5)
    # +2 +2 is followed by -4 inside the first 4 pitches and by +7 later; the latest steps are +2 +2 again.
    pitches = [60, 62, 64, 60, 62, 64, 71, 73, 75]
    everything = memory.memory(pitches, 128)
    assert torch.nonzero(everything).flatten().tolist() == [71, 82]
    prompt_only = memory.memory(pitches, 128, remembered=4)
    assert torch.nonzero(prompt_only).flatten().tolist() == [71]
    assert memory.memory(pitches, 128, remembered=3) is None  # the -4 step leads to pitch 4: not remembered

    processor = MotifMemoryLogitsProcessor(1.0, remember_until=4 * 4)  # the first 4 notes are the prompt
    ids = torch.tensor([[*join_notes([(4, 4, p) for p in pitches]), SEP_ID, 4, 4]])
    scores = processor(ids, torch.zeros(1, 128))
    assert scores[0].nonzero().flatten().tolist() == [71]


def test_inference_handler_proposes_what_the_library_proposes():
    """The handler keeps its own copy of the memory (it ships alone): same boosts on the same contexts."""
    import handler

    rng = random.Random(7)
    for trial in range(30):
        pitches = [rng.choice((60, 62, 64, 65, 67)) for _ in range(rng.randint(4, 24))]
        prompt_notes = rng.randint(2, len(pitches))
        ids = torch.tensor([[*join_notes([(4, 4, p) for p in pitches]), SEP_ID, 4, 4]])
        library = MotifMemoryLogitsProcessor(40.0, remember_until=4 * prompt_notes)
        endpoint = handler.MotifMemoryProcessor(40.0)
        endpoint.remember_until = 4 * prompt_notes
        scores = torch.randn(1, 128, generator=torch.Generator().manual_seed(trial))
        torch.testing.assert_close(endpoint(ids, scores), library(ids, scores), msg=f"trial {trial}")
