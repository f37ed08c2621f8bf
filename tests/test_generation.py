"""Generation core on a tiny random model: grammar, forced fields per mode, long runs, seeds, temperature.

The tiny preset has a 64-token (16-note) context, so most runs here slide the window several times.
"""

from __future__ import annotations

import random

import pytest
import torch
from transformers import LogitsProcessorList

from gigapiano.generation import (
    GenerationSettings,
    NotePlan,
    NoteSpec,
    NoteStructureLogitsProcessor,
    generate_continuation,
    is_well_formed,
    split_notes,
)
from gigapiano.generation.grammar import (
    PHASE_RANGES,
    PIANO_PITCH_RANGE,
    SEP_ID,
    join_notes,
    next_phase,
    normalize_prompt,
    onset_steps,
    tokens_to_finish,
)
from gigapiano.generation.long_context import SamplingOptions, TokenSchedule, window_start
from gigapiano.generation.modes import melody_of
from modeling_gigapiano import GigaPianoConfig, GigaPianoForCausalLM

MODES = ("continue", "inpaint", "harmonize", "progression")


@pytest.fixture(scope="module")
def model():
    """Tiny random model; one intra-op thread (faster for tiny matrices and fair on a shared machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield GigaPianoForCausalLM(GigaPianoConfig.from_preset("tiny")).eval()
    torch.set_num_threads(threads)


def random_notes(rng: random.Random, count: int) -> list[tuple[int, int, int]]:
    """Plausible notes with chords (dt = 0 runs ordered high to low, as the tokenizer writes them)."""
    notes: list[tuple[int, int, int]] = []
    while len(notes) < count:
        dt = rng.choice((0, 6, 12, 12, 24, 40)) if notes else 0
        size = rng.choice((1, 1, 1, 2, 3))
        pitches = sorted(rng.sample(range(36, 96), size), reverse=True)
        notes += [(dt if k == 0 else 0, rng.randint(1, 40), pitch) for k, pitch in enumerate(pitches)]
    return notes[:count]


@pytest.fixture(scope="module")
def source_ids() -> list[int]:
    return join_notes(random_notes(random.Random(1), 24))


# ----------------------------------------------------------------------------------------------------------
# Grammar and the processor
# ----------------------------------------------------------------------------------------------------------


def test_separator_matches_the_tokenizer():
    tokenization = pytest.importorskip("tokenization")
    assert SEP_ID == tokenization.SEP_ID


@pytest.mark.parametrize(
    ("ids", "phase"), [([], 3), ([SEP_ID], 0), ([SEP_ID, 5], 1), ([SEP_ID, 5, 3], 2), ([SEP_ID, 5, 3, 60], 3)]
)
def test_next_phase_and_tokens_to_finish(ids, phase):
    assert next_phase(ids) == phase
    # whatever the phase, finishing 3 notes ends exactly on a pitch
    assert (len(ids) + tokens_to_finish(phase, 3)) % 4 == 0


@pytest.mark.parametrize(
    "bad",
    [
        [5, 1, 60],
        [SEP_ID, 0, 0, 60],
        [SEP_ID, 0, 1, 0],
        [SEP_ID, 127, 1, 60],
        [SEP_ID, 0, 1],
        [SEP_ID, 1, 1, 60, 7],
    ],
)
def test_split_notes_rejects_malformed(bad):
    assert not is_well_formed(bad)
    with pytest.raises(ValueError):
        split_notes(bad)


def test_normalize_prompt_drops_leading_partial_and_rejects_out_of_range():
    assert normalize_prompt([3, 4, SEP_ID, 0, 1, 60]) == [SEP_ID, 0, 1, 60]
    assert normalize_prompt([]) == [SEP_ID]
    with pytest.raises(ValueError, match="0..127"):
        normalize_prompt([SEP_ID, 0, 1, 200])


def allowed_ids(processor, input_ids: list[list[int]]) -> list[set[int]]:
    scores = processor(torch.tensor(input_ids), torch.zeros(len(input_ids), 128))
    return [set(torch.nonzero(torch.isfinite(row)).flatten().tolist()) for row in scores]


@pytest.mark.parametrize("phase", range(4))
def test_processor_allows_exactly_the_phase_range(phase):
    prefix = [SEP_ID, 3, 4, 60, SEP_ID, 0, 2, 55][: 4 + 1 + phase] if phase < 3 else [SEP_ID, 3, 4, 60]
    (allowed,) = allowed_ids(NoteStructureLogitsProcessor(prompt_length=len(prefix)), [prefix])
    low, high = PIANO_PITCH_RANGE if phase == 2 else PHASE_RANGES[phase]  # pitches: the piano by default
    assert allowed == set(range(low, high + 1))


def test_processor_reads_each_rows_phase_and_starts_a_note_without_separator():
    rows = [[SEP_ID, 1, 2, 3, SEP_ID], [1, 2, 3, SEP_ID, 4]]
    dt_row, dur_row = allowed_ids(NoteStructureLogitsProcessor(prompt_length=2), rows)
    assert 0 in dt_row and SEP_ID not in dt_row
    assert 0 not in dur_row and 1 in dur_row
    (start,) = allowed_ids(NoteStructureLogitsProcessor(prompt_length=2), [[5, 6]])
    assert start == {SEP_ID}


def test_plan_forces_fields_and_pitch_below_previous():
    plan = NotePlan([NoteSpec(dt=7, dur=9), NoteSpec(dt=0, pitch_min=2, below_previous=True)])
    processor = NoteStructureLogitsProcessor(prompt_length=1, plan=plan, note_at_start=0)
    assert allowed_ids(processor, [[SEP_ID]]) == [{7}]
    assert allowed_ids(processor, [[SEP_ID, 7]]) == [{9}]
    # pitch_min 2 lies under the default pitch range, whose bottom (21, A0) is the floor then
    assert allowed_ids(processor, [[SEP_ID, 7, 9, 50, SEP_ID, 0, 3]]) == [set(range(21, 50))]
    # past the plan everything is free again
    assert allowed_ids(processor, [[SEP_ID, 7, 9, 50, SEP_ID, 0, 3, 20, SEP_ID]]) == [set(range(0, 127))]
    with pytest.raises(ValueError, match="pitch 0"):
        NotePlan([NoteSpec(pitch=0)])


def test_unconstrained_sampling_breaks_the_grammar(model):
    """Sanity check for the tests below: without the processor a random model is malformed at once."""
    torch.manual_seed(0)
    out = model.generate(
        torch.tensor([[SEP_ID]]),
        attention_mask=torch.ones(1, 1, dtype=torch.long),
        generation_config=SamplingOptions().generation_config(40),
    )
    assert not is_well_formed(out[0].tolist())


# ----------------------------------------------------------------------------------------------------------
# Every mode: well-formed for 50 seeds, and the fields each mode promises to keep
# ----------------------------------------------------------------------------------------------------------


def mode_settings(mode: str, rng: random.Random, seed: int) -> GenerationSettings:
    return GenerationSettings(
        mode=mode,
        seed=seed,
        # notes to generate (melody notes for harmonize, which adds up to 3 under each); prompts of up to 24
        # notes already overflow the 16-note context, so most runs slide the window
        max_new_notes=rng.randint(1, 4) if mode == "harmonize" else rng.randint(1, 12),
        temperature=rng.choice((0.0, 0.5, 1.0, 1.5)),
        top_k=rng.choice((0, 1, 5, 40)),
        top_p=rng.choice((1.0, 0.9, 0.3)),
        num_variations=2,
        keep=rng.choice(("time", "time+dur")),
        chord_notes=rng.choice((None, 0, 1, 3)),
        step_ms=rng.choice((16, 256, 2016)),
        step_duration_ms=rng.choice((None, 64)),
    )


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_is_well_formed_for_50_seeds(model, mode):
    rng = random.Random(mode)
    for seed in rng.sample(range(10**6), 50):
        # prompts of random length, often ending inside a note (continue/progression must complete it)
        prompt = join_notes(random_notes(rng, rng.randint(1, 24)))
        if mode in ("continue", "progression"):
            prompt = prompt[: len(prompt) - rng.choice((0, 0, 1, 2, 3))]
        settings = mode_settings(mode, rng, seed)
        result = generate_continuation(model, prompt, settings)
        assert len(result.pieces) == 2
        for piece, given in zip(result.pieces, result.given, strict=True):
            notes = split_notes(piece)  # raises on any malformed group
            assert len(notes) == len(given)
            if mode in ("continue", "progression"):
                assert piece[: len(prompt)] == prompt


def test_inpaint_keeps_time_and_duration_and_changes_only_pitches(model, source_ids):
    source = split_notes(source_ids)
    result = generate_continuation(
        model, source_ids, mode="inpaint", keep="time+dur", seed=3, num_variations=4
    )
    changed = 0
    for piece in result.pieces:
        notes = split_notes(piece)
        assert [(n.dt, n.dur) for n in notes] == [(n.dt, n.dur) for n in source]
        changed += sum(a.pitch != b.pitch for a, b in zip(notes, source, strict=True))
        # notes sharing an onset go down in pitch, as the tokenizer orders chords
        for previous, note in zip(notes, notes[1:], strict=False):
            if note.dt == 0:
                assert note.pitch < previous.pitch
    assert changed > len(source)  # the pitches really are the model's


def test_inpaint_keep_time_lets_durations_change(model, source_ids):
    source = split_notes(source_ids)
    result = generate_continuation(model, source_ids, mode="inpaint", keep="time", seed=4, num_variations=2)
    for piece in result.pieces:
        notes = split_notes(piece)
        assert [n.dt for n in notes] == [n.dt for n in source]
        assert [n.dur for n in notes] != [n.dur for n in source]


def test_inpaint_of_a_long_source_keeps_timing_across_windows(model):
    """300 notes = 1200 tokens through a 64-token context: the plan must stay aligned over every slide."""
    source_ids = join_notes(random_notes(random.Random(7), 300))
    result = generate_continuation(model, source_ids, mode="inpaint", seed=0)
    assert result.extra["windows"] > 20
    notes, source = split_notes(result.pieces[0]), split_notes(source_ids)
    assert [(n.dt, n.dur) for n in notes] == [(n.dt, n.dur) for n in source]


@pytest.mark.parametrize("chord_notes", [1, 3])
def test_harmonize_keeps_every_melody_note_at_its_onset(model, source_ids, chord_notes):
    melody = melody_of(source_ids)
    melody_onsets = onset_steps(melody)
    result = generate_continuation(
        model, source_ids, mode="harmonize", chord_notes=chord_notes, seed=5, num_variations=3
    )
    for piece, given in zip(result.pieces, result.given, strict=True):
        notes = split_notes(piece)
        onsets = onset_steps(notes)
        kept = [(onset, n.dur, n.pitch) for onset, n, g in zip(onsets, notes, given, strict=True) if g]
        assert kept == [(onset, n.dur, n.pitch) for onset, n in zip(melody_onsets, melody, strict=True)]
        assert len(notes) == len(melody) * (1 + chord_notes)
        for previous, note, is_melody in zip(notes, notes[1:], given[1:], strict=False):
            if not is_melody:  # an added chord note: same onset, below the note before it
                assert note.dt == 0 and note.pitch < previous.pitch


@pytest.mark.parametrize(("chord_notes", "duration_ms"), [(0, None), (2, 320)])
def test_progression_has_the_fixed_step_everywhere(model, chord_notes, duration_ms):
    prompt = join_notes(random_notes(random.Random(2), 5))
    result = generate_continuation(
        model, prompt, mode="progression", step_ms=400, step_duration_ms=duration_ms,
        chord_notes=chord_notes, max_new_notes=30, seed=6, num_variations=2,
    )  # fmt: skip
    for piece in result.pieces:
        new = split_notes(piece)[5:]
        assert len(new) == 30
        expected_dt = [25 if k % (chord_notes + 1) == 0 else 0 for k in range(len(new))]  # 400 ms = 25 steps
        assert [n.dt for n in new] == expected_dt
        if duration_ms is not None:
            assert {n.dur for n in new} == {10}  # 320 ms = 10 steps


# ----------------------------------------------------------------------------------------------------------
# Seeds, temperature, sampling order
# ----------------------------------------------------------------------------------------------------------


def test_same_seed_same_output_and_other_seed_differs(model, source_ids):
    run = lambda seed: generate_continuation(model, source_ids, max_new_notes=30, seed=seed, num_variations=2)  # noqa: E731
    first, again, other = run(11), run(11), run(12)
    assert first.pieces == again.pieces
    assert first.pieces != other.pieces
    assert first.pieces[0] != first.pieces[1]  # variations in one batch differ


def test_unset_seed_is_drawn_and_recorded(model):
    result = generate_continuation(model, None, max_new_notes=3)
    assert isinstance(result.settings.seed, int)
    again = generate_continuation(model, None, max_new_notes=3, seed=result.settings.seed)
    assert again.pieces == result.pieces


def test_generation_does_not_touch_the_global_rng(model):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    generate_continuation(model, None, max_new_notes=3, seed=1)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_temperature_divides_the_legal_logits(model, temperature):
    """The scores that sampling draws from are the masked logits divided by the temperature."""
    prompt = torch.tensor([[SEP_ID, 0, 10, 60, SEP_ID, 12, 10]])
    out = model.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        generation_config=SamplingOptions(temperature=temperature).generation_config(5),
        logits_processor=LogitsProcessorList([NoteStructureLogitsProcessor(prompt.shape[1])]),
        return_dict_in_generate=True,
        output_scores=True,
        output_logits=True,
    )
    for raw, processed in zip(out.logits, out.scores, strict=True):
        legal = torch.isfinite(processed)
        assert 0 < int(legal.sum()) < 128
        torch.testing.assert_close(processed[legal], raw[legal] / temperature)


def test_temperature_changes_the_distribution(model):
    """Lower temperature sharpens the next-pitch distribution; higher flattens it (upstream's was a no-op)."""
    prompt = torch.tensor([[SEP_ID, 0, 10, 60, SEP_ID, 12, 10]])
    with torch.no_grad():
        logits = model(prompt).logits[0, -1]
    masked = NoteStructureLogitsProcessor(prompt.shape[1])(prompt, logits[None])[0]
    entropies = []
    for temperature in (0.25, 1.0, 4.0):
        probs = torch.softmax(masked / temperature, dim=-1)
        assert float(probs[0]) == 0.0 and float(probs[SEP_ID]) == 0.0  # illegal pitch ids stay impossible
        entropies.append(float(-(probs[probs > 0] * probs[probs > 0].log()).sum()))
    assert entropies[0] < entropies[1] < entropies[2]


def test_near_zero_temperature_samples_the_greedy_piece(model, source_ids):
    greedy = generate_continuation(model, source_ids, max_new_notes=20, temperature=0, seed=1)
    cold = generate_continuation(model, source_ids, max_new_notes=20, temperature=1e-4, seed=1)
    warm = generate_continuation(model, source_ids, max_new_notes=20, temperature=1.0, seed=1)
    assert cold.pieces == greedy.pieces
    assert warm.pieces != greedy.pieces


def test_top_k_one_picks_the_best_legal_id(model):
    """The grammar mask runs before top-k: top_k=1 must keep the best *legal* id, never an illegal one."""
    result = generate_continuation(model, None, max_new_notes=10, top_k=1, seed=0)
    greedy = generate_continuation(model, None, max_new_notes=10, temperature=0, seed=0)
    assert result.pieces == greedy.pieces


# ----------------------------------------------------------------------------------------------------------
# Long runs and time limits
# ----------------------------------------------------------------------------------------------------------


def test_window_start_keeps_recent_notes_on_a_separator():
    ids = join_notes([(1, 1, 60)] * 20)[:-1]  # 79 tokens ending mid-note
    start = window_start(ids, keep=48)
    assert ids[start] == SEP_ID and 44 < len(ids) - start <= 48
    assert window_start([1, 2, 3, 4, 5], keep=3) == 2  # no separator at all: a plain cut


def test_schedule_forces_separators_and_planned_fields_only():
    plan = NotePlan([NoteSpec(dt=4, dur=2), NoteSpec(dt=0, below_previous=True)])
    schedule = TokenSchedule.build([SEP_ID, 1, 1, 60], 3, plan)
    assert schedule.forced == [SEP_ID, 4, 2, None, SEP_ID, 0, None, None, SEP_ID, None, None, None]
    assert schedule.notes == [0] * 4 + [1] * 4 + [2] * 4
    free = TokenSchedule.build([SEP_ID, 1], 2, None)  # opened note: dur and pitch first
    assert free.phases == [1, 2, 3, 0, 1, 2] and free.forced == [None, None, SEP_ID, None, None, None]


@torch.no_grad()
def test_cached_inpainting_equals_full_recomputation(model):
    """Greedy inpainting on the cache (forced tokens prefilled) picks what a full forward per note picks."""
    notes = [(0 if i == 0 else 3 + i % 5, 1 + i % 7, 60) for i in range(14)]  # no chords, 56 tokens < 64
    sequence = [SEP_ID]
    for index, (dt, dur, _) in enumerate(notes):
        sequence += ([SEP_ID] if index else []) + [dt, dur]
        logits = model(torch.tensor([sequence])).logits[0, -1]
        low, high = PIANO_PITCH_RANGE  # generated pitches: the piano keyboard by default
        sequence.append(low + int(logits[low : high + 1].argmax()))
    result = generate_continuation(model, join_notes(notes), mode="inpaint", temperature=0)
    assert result.extra["windows"] == 1
    assert result.pieces[0] == sequence


@pytest.mark.slow
def test_3000_tokens_past_the_context_stay_well_formed(model):
    result = generate_continuation(model, None, max_new_notes=750, seed=0, num_variations=2)
    assert result.extra["windows"] > 50  # many slides through the 64-token context
    for piece in result.pieces:
        assert len(piece) == 3000
        assert len(split_notes(piece)) == 750


def test_seconds_limits_the_span_of_new_notes(model, source_ids):
    result = generate_continuation(model, source_ids, seconds=4.0, seed=2, num_variations=3)
    prompt_notes = len(split_notes(source_ids))
    for piece in result.pieces:
        new = split_notes(piece)[prompt_notes:]
        assert new and onset_steps(new)[-1] <= 250  # 4 s = 250 steps of 16 ms


def test_source_modes_need_a_prompt(model):
    with pytest.raises(ValueError, match="prompt"):
        generate_continuation(model, None, mode="inpaint")


@pytest.mark.parametrize(
    ("field", "value"),
    [("mode", "fugue"), ("temperature", -1.0), ("top_p", 0.0), ("top_k", -2), ("num_variations", 0),
     ("step_ms", 5000), ("keep", "pitch"), ("seconds", 0.0), ("max_new_notes", 0)],
)  # fmt: skip
def test_settings_reject_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        GenerationSettings(**{field: value})


@pytest.mark.parametrize("mode", ["continue", "inpaint"])
def test_sampler_follows_the_saved_cache_default_with_the_same_notes(model, mode, monkeypatch):
    """The saved `static` default gives a StaticCache, `dynamic` a DynamicCache, the same notes either way
    (also across a window slide), and the model's setting is restored after sampling."""
    from transformers import DynamicCache, StaticCache

    import gigapiano.generation.long_context as long_context

    made = []
    build = long_context.window_cache
    monkeypatch.setattr(long_context, "window_cache", lambda *a: made.append(build(*a)) or made[-1])
    prompt = join_notes(random_notes(random.Random(5), 30))
    pieces = {}
    for implementation in ("static", "dynamic"):
        model.generation_config.cache_implementation = implementation
        try:
            result = generate_continuation(model, prompt, mode=mode, max_new_notes=30, seed=4)
        finally:
            assert model.generation_config.cache_implementation == implementation
            model.generation_config.cache_implementation = None
        pieces[implementation] = result.pieces[0]
        assert result.extra["windows"] >= 2  # 64-token context: the window slid
    assert made and {type(cache) for cache in made} == {StaticCache, DynamicCache}
    assert pieces["static"] == pieces["dynamic"]


def test_window_cache_defaults_to_static_and_takes_a_crop(model):
    from transformers import StaticCache

    from gigapiano.generation.long_context import window_cache

    cache = window_cache(model, 32, None)
    assert isinstance(cache, StaticCache) and cache.get_max_length() == 32
    ids = torch.tensor([join_notes(random_notes(random.Random(3), 6))])
    with torch.no_grad():
        model(ids, cache=cache)
        cache.crop(-4)
        assert int(cache.get_seq_length()) == ids.shape[1] - 4
        logits = model(ids[:, -4:], cache=cache).logits
        full = model(ids, use_cache=False).logits[:, -4:]
    torch.testing.assert_close(logits, full, rtol=1e-5, atol=1e-5)
