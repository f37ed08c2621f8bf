"""Style strength, style blends and the anti-copy (`knn`) mode: exactness at the ends of the dial, the
blend's arithmetic on the shared cache, the anti-copy rule, validation and what the outputs record."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

pytest.importorskip("tokenization")

from gigapiano.generation import (  # noqa: E402
    AntiCopy,
    GenerationSettings,
    StyleBlend,
    StyleMixture,
    generate_continuation,
    load_blend,
    split_notes,
)
from gigapiano.generation.resolve import load_model  # noqa: E402
from modeling_gigapiano import GigaPianoConfig, GigaPianoForCausalLM  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PROMPT = [127, 10, 5, 60, 127, 0, 5, 64, 127, 10, 5, 67, 127, 12, 6, 72]


def tiny_model(seed: int, context: int = 64) -> GigaPianoForCausalLM:
    torch.manual_seed(seed)
    config = GigaPianoConfig(
        num_hidden_layers=2,
        hidden_size=32,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=context,
    )
    return GigaPianoForCausalLM(config).eval()


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    """A models folder with a base and two 'styles' (different random weights)."""
    root = tmp_path_factory.mktemp("models")
    for seed, name in enumerate(("base", "baroque", "romantic")):
        tiny_model(seed).save_pretrained(root / f"gigapiano-{name}")
    return root


def repeating_model(peak: float) -> GigaPianoForCausalLM:
    """A model that plays note (dt 60, dur 60, pitch 60) with probability about p^3 at every step, where p
    is the chance of token 60 among the legal values of a field: its hidden state is a constant vector and
    its head maps it onto token 60 with logit `peak`."""
    model = tiny_model(0)
    with torch.no_grad():
        model.model.norm.weight.zero_()
        model.model.norm.bias.zero_()
        model.model.norm.bias[0] = 1.0
        model.lm_head.weight.zero_()
        model.lm_head.weight[60, 0] = peak
    return model


def notes_of(ids: list[int]) -> list[tuple[int, int, int]]:
    return [tuple(note) for note in split_notes(ids)]


def exact_repeats(piece: list[int], first_new: int, memory_notes: int) -> int:
    """New notes equal in all three fields to one of the `memory_notes` notes before them."""
    notes = notes_of(piece)
    return sum(notes[i] in notes[max(0, i - memory_notes) : i] for i in range(first_new, len(notes)))


# ---------------------------------------------------------------- anti-copy rule


def test_choose_keeps_the_first_candidate_far_from_memory():
    memory = [127, 10, 5, 60, 127, 0, 5, 64]
    candidates = [(10, 5, 60), (0, 5, 64), (3, 4, 70), (3, 4, 71)]  # two repeats, then two new notes
    rows = torch.tensor([memory + [127, *note] for note in candidates])
    chosen, fallbacks = AntiCopy(candidates=4, threshold=0.1).choose(rows)
    assert chosen.tolist() == [2, 2, 2, 2] and fallbacks == 0


def test_choose_falls_back_to_the_first_candidate_when_all_are_near():
    memory = [127, 10, 5, 60, 127, 0, 5, 64]
    candidates = [(0, 5, 64), (10, 5, 60), (0, 5, 64), (10, 5, 61)]
    rows = torch.tensor([memory + [127, *note] for note in candidates])
    chosen, fallbacks = AntiCopy(candidates=4, threshold=1.5).choose(rows)  # (10,5,61) is 1.0 from a note
    assert chosen.tolist() == [0, 0, 0, 0] and fallbacks == 1


def test_choose_only_remembers_the_memory_window_and_works_per_variation():
    old, recent = [127, 10, 5, 60], [127, 1, 1, 30, 127, 1, 1, 31]
    group_a = [old + recent + [127, 10, 5, 60], old + recent + [127, 1, 1, 30]]
    group_b = [old + recent + [127, 1, 1, 31], old + recent + [127, 2, 2, 40]]
    rows = torch.tensor(group_a + group_b)
    chosen, fallbacks = AntiCopy(candidates=2, threshold=0.1, memory_tokens=8).choose(rows)
    # the old note (10, 5, 60) is outside 8 tokens of memory, so group a keeps its first candidate;
    # group b refuses the repeat of (1, 1, 31)
    assert chosen.tolist() == [0, 0, 3, 3] and fallbacks == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"candidates": 0},
        {"candidates": 17},
        {"threshold": -1.0},
        {"threshold": math.nan},
        {"memory_tokens": 2},
    ],
)
def test_anti_copy_options_are_checked(fields):
    with pytest.raises(ValueError, match="knn_"):
        AntiCopy(**fields)


def test_knn_mode_never_repeats_a_remembered_note_unless_it_had_to():
    model = repeating_model(peak=6.0)  # plain sampling repeats the same note about 40% of the time
    plain = generate_continuation(model, PROMPT, max_new_notes=60, seed=0, temperature=1.0)
    knn = generate_continuation(model, PROMPT, mode="knn", max_new_notes=60, seed=0, temperature=1.0)
    first_new = len(notes_of(PROMPT))
    assert exact_repeats(plain.pieces[0], first_new, 64) > 10
    # a kept note repeats the memory only when all four candidates did (the reported fallbacks)
    assert knn.extra["knn_notes"] == 60
    assert exact_repeats(knn.pieces[0], first_new, 64) == knn.extra["knn_fallbacks"]
    assert knn.extra["knn_fallbacks"] < 15


def test_knn_mode_falls_back_to_the_plain_sample_when_every_candidate_repeats():
    model = repeating_model(peak=14.0)  # every candidate is the same note
    result = generate_continuation(model, PROMPT, mode="knn", max_new_notes=20, seed=0, temperature=1.0)
    new_notes = notes_of(result.pieces[0])[len(notes_of(PROMPT)) :]
    assert len(new_notes) == 20 and set(new_notes) == {(60, 60, 60)}
    # the first (60, 60, 60) is new to the piece; every later one repeats it and had no alternative
    assert result.extra["knn_fallbacks"] == 19


def test_knn_mode_slides_past_the_context_with_variations_and_stays_well_formed():
    model = tiny_model(1, context=32)
    result = generate_continuation(model, PROMPT, mode="knn", max_new_notes=30, seed=2, num_variations=2)
    assert result.extra["windows"] > 1
    for piece in result.pieces:
        assert len(notes_of(piece)) == len(notes_of(PROMPT)) + 30
        assert all(21 <= pitch <= 108 for _, _, pitch in notes_of(piece))
    assert result.pieces[0] != result.pieces[1]


def test_knn_rows_are_bounded():
    with pytest.raises(ValueError, match="rows are decoded together"):
        GenerationSettings(mode="knn", num_variations=16, knn_candidates=8)


# ---------------------------------------------------------------- style blends


def test_strength_zero_and_one_reproduce_the_base_and_the_style_model(models_dir):
    base = load_model(models_dir / "gigapiano-base", device="cpu")
    style = load_model(models_dir / "gigapiano-baroque", device="cpu")
    for strength, reference in ((0.0, base), (1.0, style)):
        model = load_blend(StyleBlend.parse("baroque", strength), models_dir, device="cpu")
        assert not isinstance(model, StyleMixture)
        got = generate_continuation(model, PROMPT, max_new_notes=24, seed=5).pieces[0]
        want = generate_continuation(reference, PROMPT, max_new_notes=24, seed=5).pieces[0]
        assert got == want


def test_blend_scores_are_the_weighted_log_probabilities_also_through_the_cache(models_dir):
    blend = StyleBlend.parse("baroque:0.5,romantic:1.0", strength=1.0)
    model = load_blend(blend, models_dir, device="cpu")
    assert isinstance(model, StyleMixture)
    assert model.weights_by_name == pytest.approx({"base": -0.5, "baroque": 0.5, "romantic": 1.0})
    ids = torch.tensor([PROMPT])
    with torch.no_grad():
        want = sum(
            weight * torch.log_softmax(member(ids).logits, dim=-1)
            for member, weight in zip(model.members, model.weights, strict=True)
        )
        full = model(ids, use_cache=False).logits
        first = model(ids[:, :10], use_cache=True)
        rest = model(ids[:, 10:], cache=first.cache, use_cache=True).logits
    torch.testing.assert_close(full, want)
    torch.testing.assert_close(rest, want[:, 10:], atol=1e-5, rtol=1e-5)
    assert first.cache.get_seq_length() == len(PROMPT)


def test_blend_generates_valid_notes_in_every_mode_and_records_its_weights(models_dir):
    model = load_blend(StyleBlend.parse("baroque", strength=1.5), models_dir, device="cpu")
    for mode in ("continue", "knn", "inpaint", "harmonize", "progression"):
        result = generate_continuation(model, PROMPT, mode=mode, max_new_notes=6, seed=0)
        assert result.extra["model_weights"] == pytest.approx({"base": -0.5, "baroque": 1.5})
        assert len(notes_of(result.pieces[0])) >= 4


def test_halfway_blend_differs_from_both_ends(models_dir):
    pieces = {}
    for strength in (0.0, 0.5, 1.0):
        model = load_blend(StyleBlend.parse("baroque", strength), models_dir, device="cpu")
        pieces[strength] = generate_continuation(model, PROMPT, max_new_notes=40, seed=1).pieces[0]
    assert pieces[0.5] not in (pieces[0.0], pieces[1.0])


@pytest.mark.parametrize(
    ("spec", "strength", "message"),
    [
        ("baroque:abc", 1.0, "is not a number"),
        ("baroque:-1", 1.0, "must be a number > 0"),
        ("baroque:0", 1.0, "must be a number > 0"),
        ("baroque:nan", 1.0, "must be a number > 0"),
        ("baroque:0.5,baroque:0.5", 1.0, "appears twice"),
        ("baroque,,romantic", 1.0, "Empty style"),
        ("all:0.5", 1.0, "cannot be blended"),
        ("base:0.5", 1.0, "not a style weight"),
        ("baroque", 2.5, "style_strength must be in 0..2"),
        ("baroque", -0.1, "style_strength must be in 0..2"),
        ("baroque", math.inf, "style_strength must be in 0..2"),
        ("baroque:1.5,romantic:1", 1.0, "add up to 2.5"),
        ("baroque:1,romantic:1", 1.5, "add up to 3"),
    ],
)
def test_bad_blends_are_named(spec, strength, message):
    with pytest.raises(ValueError, match=message):
        StyleBlend.parse(spec, strength)


def test_blend_weights_and_description():
    blend = StyleBlend.parse(" baroque : 0.5 , romantic:0.25", strength=2.0)
    assert blend.effective_weights == {"baroque": 1.0, "romantic": 0.5}
    assert blend.base_weight == pytest.approx(-0.5)
    assert blend.describe() == "baroque:0.5,romantic:0.25@2"
    assert blend.record()["model_weights"] == {"base": -0.5, "baroque": 1.0, "romantic": 0.5}
    assert not StyleBlend.parse("baroque").is_blend and StyleBlend.parse("baroque", 0.5).is_blend


def test_blend_of_unshipped_style_is_a_clear_error(models_dir):
    with pytest.raises(FileNotFoundError, match="rachmaninoff"):
        load_blend(StyleBlend.parse("baroque:0.5,rachmaninoff:0.5"), models_dir)


# ---------------------------------------------------------------- generate.py


def test_cli_blend_writes_weights_to_the_sidecar_and_the_midi(models_dir, tmp_path, capsys):
    import generate

    out = tmp_path / "blend.mid"
    code = generate.main(
        ["--style", "baroque:0.5,romantic:0.5", "--style_strength", "1.2", "--models_dir", str(models_dir),
         "--max_new_notes", "8", "--seed", "0", "--mode", "knn", "--output", str(out), "--no_progress"]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["style_strength"] == 1.2
    assert record["style_blend"] == "baroque:0.5,romantic:0.5@1.2"
    assert record["model_weights"] == pytest.approx({"base": -0.2, "baroque": 0.6, "romantic": 0.6})
    assert record["knn"]["notes"] == 8 and record["settings"]["knn_candidates"] == 4
    assert "gigapiano-base" in record["model"] and "gigapiano-romantic" in record["model"]
    assert b"style_strength=1.2" in out.read_bytes()  # the MIDI's marker text


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--style", "baroque:x"], "is not a number"),
        (["--style", "baroque", "--style_strength", "3"], "style_strength must be in 0..2"),
        (["--model", "runs/whatever", "--style_strength", "0.5"], "--style_strength needs --style"),
        (["--style", "baroque:0.5,grunge:0.5"], "grunge"),
        (["--mode", "knn", "--knn_candidates", "0", "--style", "baroque"], "knn_candidates"),
    ],
)
def test_cli_bad_dial_values_are_one_line_errors(argv, fragment, models_dir, capsys):
    import generate

    code = generate.main([*argv, "--models_dir", str(models_dir), "--no_progress"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != 0 and len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err
