"""Generated pitches stay on the piano (21..108) by default, in every mode and every entry point.

The model under test is a tiny GIGA-Piano whose head scores pitch 5 and pitch 120 far above every other id
(`biased_model`), so any pitch the range does not forbid is sampled there; `min_pitch` / `max_pitch`
widen the range and then those pitches appear. Pitches a mode keeps from the user's input (prompt notes, a
harmonised melody) are never changed. Everything runs offline on one CPU thread in a few seconds.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

import handler
from gigapiano.generation import (
    GenerationSettings,
    NotePlan,
    NoteSpec,
    NoteStructureLogitsProcessor,
    generate_continuation,
    split_notes,
)
from gigapiano.generation.grammar import PIANO_PITCH_RANGE, SEP_ID, check_pitch_range, join_notes
from gigapiano.generation.outputs import provenance
from modeling_gigapiano import GigaPianoConfig, GigaPianoForCausalLM

PIANO = range(PIANO_PITCH_RANGE[0], PIANO_PITCH_RANGE[1] + 1)
#: Pitches the biased model prefers: one under the keyboard, one above it.
FAVOURITES = (5, 120)
FULL = {"min_pitch": 1, "max_pitch": 126}


def biased_model() -> GigaPianoForCausalLM:
    """Tiny model whose logits are 32 for ids 5 and 120 and 0 elsewhere, whatever the input: the final
    norm outputs a constant vector of ones and only two head rows are non-zero."""
    torch.manual_seed(0)
    config = GigaPianoConfig.from_preset("tiny", embd_pdrop=0, resid_pdrop=0, attn_pdrop=0)
    model = GigaPianoForCausalLM(config).eval()
    with torch.no_grad():
        model.model.norm.weight.zero_()
        model.model.norm.bias.fill_(1.0)
        model.lm_head.weight.zero_()
        model.lm_head.weight[list(FAVOURITES)] = 1.0
    return model


@pytest.fixture(scope="module")
def model():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is fastest and fair on a shared machine
    yield biased_model()
    torch.set_num_threads(threads)


def notes_with_chords(count: int, seed: int = 1) -> list[tuple[int, int, int]]:
    """Piano notes (pitches 36..96) with chords written high to low, as the tokenizer orders them."""
    rng = random.Random(seed)
    notes: list[tuple[int, int, int]] = []
    while len(notes) < count:
        dt = rng.choice((6, 12, 24)) if notes else 0
        pitches = sorted(rng.sample(range(36, 97), rng.choice((1, 2, 3))), reverse=True)
        notes += [(dt if k == 0 else 0, rng.randint(2, 30), pitch) for k, pitch in enumerate(pitches)]
    return notes[:count]


PROMPT = join_notes(notes_with_chords(10))

#: Every way of generating that lets the model choose pitches: (settings, prompt).
CASES = {
    "continue": (dict(max_new_notes=12), PROMPT),
    "continue-from-nothing": (dict(max_new_notes=8), []),
    "continue-after-a-cut-note": (dict(max_new_notes=6), PROMPT[:-1]),  # the first new token is a pitch
    "continue-past-the-context": (dict(max_new_notes=60), PROMPT),  # 64-token context: the window slides
    "continue-seconds": (dict(seconds=3.0), PROMPT),
    "continue-greedy": (dict(max_new_notes=6, temperature=0.0), PROMPT),
    "continue-top-k": (dict(max_new_notes=6, top_k=3, top_p=0.9), PROMPT),
    "variations": (dict(max_new_notes=10, num_variations=3), PROMPT),
    "inpaint": (dict(mode="inpaint"), PROMPT),
    "inpaint-keep-time": (dict(mode="inpaint", keep="time"), PROMPT),
    "inpaint-long-source": (dict(mode="inpaint"), join_notes(notes_with_chords(40, seed=2))),
    "harmonize": (dict(mode="harmonize", chord_notes=3), PROMPT),
    "progression": (dict(mode="progression", max_new_notes=9), PROMPT),
    "progression-chords": (dict(mode="progression", chord_notes=2, max_new_notes=12), PROMPT),
    "progression-after-a-cut-note": (dict(mode="progression", max_new_notes=4), PROMPT[:-1]),
}


def generated_pitches(result) -> list[int]:
    """Pitches of the notes the model chose (in part), over every variation."""
    return [
        note.pitch
        for piece, flags in zip(result.pieces, result.given, strict=True)
        for note, given in zip(split_notes(piece), flags, strict=True)
        if not given
    ]


def given_notes(result, variation: int = 0) -> list[tuple[int, int, int]]:
    flags = result.given[variation]
    notes = split_notes(result.pieces[variation])
    return [tuple(note) for note, given in zip(notes, flags, strict=True) if given]


# ----------------------------------------------------------------------------------------------------------
# The processor on crafted scores
# ----------------------------------------------------------------------------------------------------------


def allowed(processor, ids: list[int]) -> list[int]:
    scores = torch.zeros(1, 128)
    scores[0, list(FAVOURITES)] = 1e4  # the favourites would win any sampling
    return torch.isfinite(processor(torch.tensor([ids]), scores))[0].nonzero().flatten().tolist()


def test_processor_masks_pitches_off_the_keyboard_by_default_and_a_range_widens_it():
    at_pitch = [SEP_ID, 0, 4]
    assert allowed(NoteStructureLogitsProcessor(3), at_pitch) == list(PIANO)
    assert allowed(NoteStructureLogitsProcessor(3, pitch_range=(1, 126)), at_pitch) == list(range(1, 127))
    assert allowed(NoteStructureLogitsProcessor(3, pitch_range=(60, 72)), at_pitch) == list(range(60, 73))
    assert allowed(NoteStructureLogitsProcessor(3, pitch_range=(60, 60)), at_pitch) == [60]
    # the other fields keep their full ranges
    assert allowed(NoteStructureLogitsProcessor(1), [SEP_ID]) == list(range(0, 127))
    assert allowed(NoteStructureLogitsProcessor(2), [SEP_ID, 0]) == list(range(1, 127))


def test_plan_keeps_forced_pitches_and_bounds_the_free_ones():
    plan = NotePlan([NoteSpec(dt=0, dur=4, pitch=115), NoteSpec(dt=0, below_previous=True), NoteSpec()])
    processor = NoteStructureLogitsProcessor(1, plan, note_at_start=0)
    assert allowed(processor, [SEP_ID, 0, 4]) == [115]  # a forced pitch stays as given, even off the piano
    assert allowed(processor, [SEP_ID, 0, 4, 115, SEP_ID, 0, 9]) == list(PIANO)  # below 115, on the piano
    assert allowed(processor, [SEP_ID, 0, 4, 115, SEP_ID, 0, 9, 60, SEP_ID, 3, 9]) == list(PIANO)
    past = [SEP_ID, 0, 4, 115, SEP_ID, 0, 9, 60, SEP_ID, 3, 9, 50, SEP_ID, 1, 1]  # past the plan
    assert allowed(processor, past) == list(PIANO)
    narrow = NotePlan([NoteSpec(pitch_min=62)], pitch_range=(60, 70))
    assert allowed(NoteStructureLogitsProcessor(1, narrow, note_at_start=0), [SEP_ID, 0, 4]) == list(
        range(62, 71)
    )
    with pytest.raises(ValueError, match="pitch_min 80 is above the pitch range's top 70"):
        NotePlan([NoteSpec(pitch_min=80)], pitch_range=(60, 70))


# ----------------------------------------------------------------------------------------------------------
# Every mode, on a model that wants pitches 5 and 120
# ----------------------------------------------------------------------------------------------------------


def test_the_model_really_prefers_pitches_off_the_keyboard(model):
    result = generate_continuation(model, PROMPT, max_new_notes=20, seed=0, **FULL)
    assert set(generated_pitches(result)) <= set(FAVOURITES)


@pytest.mark.parametrize("case", list(CASES))
def test_generated_pitches_stay_on_the_piano_by_default(model, case):
    overrides, prompt = CASES[case]
    result = generate_continuation(model, prompt, seed=7, **overrides)
    pitches = generated_pitches(result)
    assert pitches and set(pitches) <= set(PIANO), sorted(set(pitches) - set(PIANO))
    assert result.settings.pitch_range == PIANO_PITCH_RANGE
    if case == "continue-past-the-context":
        assert result.extra["windows"] > 1
    if result.settings.mode in ("continue", "progression"):
        kept = prompt or [SEP_ID]
        for piece in result.pieces:  # the prompt is kept as given
            assert piece[: len(kept)] == kept


@pytest.mark.parametrize("case", list(CASES))
def test_a_widened_range_lets_the_model_leave_the_keyboard(model, case):
    overrides, prompt = CASES[case]
    result = generate_continuation(model, prompt, seed=7, **overrides, **FULL)
    pitches = generated_pitches(result)
    assert set(pitches) - set(PIANO), "the biased model should reach 5 or 120 once the range allows it"
    assert all(1 <= pitch <= 126 for pitch in pitches)


@pytest.mark.parametrize("mode", ["continue", "inpaint", "harmonize", "progression"])
def test_a_narrow_range_is_honoured(model, mode):
    result = generate_continuation(
        model, PROMPT, mode=mode, max_new_notes=8, chord_notes=2, seed=1, min_pitch=60, max_pitch=72
    )
    assert set(generated_pitches(result)) <= set(range(60, 73))
    assert result.settings.to_dict()["min_pitch"] == 60 and result.settings.to_dict()["max_pitch"] == 72


def test_prompt_and_melody_pitches_off_the_keyboard_are_kept(model):
    # melody 110 above the keyboard, 15 below it, 60 on it; each with a lower note in the same chord
    source = join_notes([(0, 8, 110), (0, 8, 50), (12, 8, 15), (0, 8, 10), (12, 8, 60), (0, 8, 40)])
    result = generate_continuation(model, source, mode="harmonize", chord_notes=2, seed=3)
    assert [pitch for _, _, pitch in given_notes(result)] == [110, 15, 60]
    assert set(generated_pitches(result)) <= set(PIANO)
    notes = split_notes(result.pieces[0])
    melody_15 = [note.pitch for note in notes].index(15)
    assert notes[melody_15 + 1].dt > 0  # nothing fits under 15 on the keyboard: no chord notes there
    prompt = join_notes([(0, 8, 10), (10, 8, 115), (10, 8, 60)])
    result = generate_continuation(model, prompt, max_new_notes=5, seed=3)
    assert result.pieces[0][: len(prompt)] == prompt and set(generated_pitches(result)) <= set(PIANO)


def test_chords_that_cannot_fit_the_range_are_clear_errors(model):
    chord = join_notes([(0, 8, 70), (0, 8, 65), (0, 8, 60)])
    with pytest.raises(ValueError, match="3-note chord, more than the 2 pitch"):
        generate_continuation(model, chord, mode="inpaint", min_pitch=60, max_pitch=61)
    with pytest.raises(ValueError, match="needs 4 distinct pitches; min_pitch..max_pitch 60..62 has 3"):
        GenerationSettings(mode="progression", chord_notes=3, min_pitch=60, max_pitch=62)
    result = generate_continuation(model, chord, mode="inpaint", min_pitch=60, max_pitch=62, seed=0)
    assert [note.pitch for note in split_notes(result.pieces[0])] == [62, 61, 60]


@pytest.mark.parametrize(
    ("low", "high", "message"),
    [
        (90, 30, "min_pitch 90 is above max_pitch 30"),
        (0, 108, "min_pitch must be in 1..126"),
        (21, 127, "max_pitch must be in 1..126"),
        (20.5, 108, "min_pitch must be a whole MIDI note number in 1..126"),
        ("low", 108, "min_pitch must be a whole MIDI note number"),
        (21, None, "max_pitch must be a whole MIDI note number"),
        (True, 108, "min_pitch must be a whole MIDI note number"),
        (21, float("nan"), "max_pitch must be a whole MIDI note number"),
    ],
)
def test_bad_ranges_are_refused_naming_the_field(low, high, message):
    with pytest.raises(ValueError, match=message):
        GenerationSettings(min_pitch=low, max_pitch=high)
    with pytest.raises(ValueError, match=message):
        NoteStructureLogitsProcessor(1, pitch_range=(low, high))


def test_whole_floats_are_accepted_as_integers():
    assert check_pitch_range(30.0, 90) == (30, 90)
    settings = GenerationSettings(min_pitch=30.0, max_pitch=90.0)
    assert settings.pitch_range == (30, 90) and isinstance(settings.min_pitch, int)


def test_the_sidecar_records_the_range(model):
    record = provenance(generate_continuation(model, PROMPT, max_new_notes=2, seed=0), 0, model="m")
    assert record["pitch_range"] == [21, 108]
    assert record["settings"]["min_pitch"] == 21 and record["settings"]["max_pitch"] == 108
    widened = generate_continuation(model, PROMPT, max_new_notes=2, seed=0, **FULL)
    assert provenance(widened, 0, model="m")["pitch_range"] == [1, 126]
    json.dumps(record)  # stays JSON


# ----------------------------------------------------------------------------------------------------------
# generate.py, the endpoint handler and the demo
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def biased_model_dir(model, tmp_path_factory) -> Path:
    """The biased model saved as a model folder (no tokenizer files: the default tokenizer is used)."""
    folder = tmp_path_factory.mktemp("biased") / "gigapiano-biased"
    model.save_pretrained(folder)
    return folder


@pytest.fixture
def cli(capsys):
    """`generate.main(argv)` in-process; returns (exit code, stdout, stderr); logging state restored."""
    from transformers.utils import logging as hf_logging

    import generate

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()

    def run(*argv: str) -> tuple[int, str, str]:
        code = generate.main([*argv, "--no_progress", "--log_level", "warning"])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    yield run
    hf_logging.set_verbosity(verbosity)
    if bars:
        hf_logging.enable_progress_bar()


def midi_pitches(path: Path) -> list[int]:
    from tokenization import GigaPianoTokenizer

    return [note.pitch for note in split_notes(GigaPianoTokenizer().encode_midi(path))]


@pytest.mark.parametrize("widen", [False, True])
def test_generate_py_keeps_the_keyboard_unless_widened_and_records_the_range(
    cli, biased_model_dir, tmp_path, widen
):
    output = tmp_path / "out.mid"
    flags = ["--min_pitch", "1", "--max_pitch", "126"] if widen else []
    code, _, err = cli(
        "--model", str(biased_model_dir), "--output", str(output), "--max_new_notes", "12", "--seed", "2",
        "--device", "cpu", *flags,
    )  # fmt: skip
    assert code == 0, err
    record = json.loads(output.with_suffix(".json").read_text())
    pitches = set(midi_pitches(output))
    if widen:
        assert record["pitch_range"] == [1, 126] and pitches - set(PIANO)
    else:
        assert record["pitch_range"] == [21, 108] and pitches <= set(PIANO)


@pytest.mark.parametrize(
    ("flags", "status", "fragment"),
    [
        (["--min_pitch", "90", "--max_pitch", "30"], 1, "min_pitch 90 is above max_pitch 30"),
        (["--min_pitch", "0"], 1, "min_pitch must be in 1..126"),
        (["--max_pitch", "200"], 1, "max_pitch must be in 1..126"),
        (["--max_pitch", "high"], 2, "invalid int value: 'high'"),
        (["--min_pitch", "20.5"], 2, "invalid int value: '20.5'"),
    ],
)
def test_generate_py_refuses_bad_ranges_in_one_line(cli, tmp_path, flags, status, fragment):
    # the range is checked before any model is looked up: the folder need not exist
    code, out, err = cli("--model", str(tmp_path / "absent"), "--output", str(tmp_path / "x.mid"), *flags)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == status and out == ""
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err
    assert not (tmp_path / "x.mid").exists()


def test_generate_py_help_explains_the_range(cli):
    code, out, _ = cli("--help")
    text = " ".join(out.split())
    assert code == 0 and "--min_pitch" in text and "--max_pitch" in text
    assert "21 = A0" in text and "108 = C8" in text and "1..126" in text


def test_handler_parameters_bound_the_range():
    params = handler.parse_parameters({})
    assert (params["min_pitch"], params["max_pitch"]) == (21, 108)
    assert handler.parse_parameters({"min_pitch": 1, "max_pitch": 126.0})["max_pitch"] == 126
    bad = [
        ({"min_pitch": 0}, "'min_pitch' must be in 1..126"),
        ({"max_pitch": 127}, "'max_pitch' must be in 1..126"),
        ({"min_pitch": 20.5}, "'min_pitch' must be an integer"),
        ({"min_pitch": None}, "'min_pitch' must be a MIDI note number in 1..126"),
        ({"min_pitch": 90, "max_pitch": 30}, r"'min_pitch' \(90\) must not be above 'max_pitch' \(30\)"),
    ]
    for raw, message in bad:
        with pytest.raises(handler.EndpointInputError, match=message) as info:
            handler.parse_parameters(raw)
        assert info.value.status_code == 400


def test_handler_sampling_keeps_the_keyboard_unless_widened(model):
    prompt = PROMPT
    torch.manual_seed(0)
    rows = handler.sample_continuation(model, prompt, 40, batch_size=2)  # 40 notes: the window slides
    pitches = {note.pitch for row in rows for note in split_notes(prompt + row)[len(prompt) // 4 :]}
    assert pitches <= set(PIANO)
    rows = handler.sample_continuation(model, prompt, 10, pitch_range=(1, 126))
    assert {note.pitch for note in split_notes(prompt + rows[0])[len(prompt) // 4 :]} <= set(FAVOURITES)


def test_demo_passes_the_range_on_and_checks_it(biased_model_dir, tmp_path):
    from gigapiano.hub.demo import DemoInputError, ModelCatalog, run_demo_generation

    catalog = ModelCatalog({"biased": str(biased_model_dir)})
    for low, high in ((21, 108), (1, 126)):
        result = run_demo_generation(
            catalog, "biased", "continue", None, max_new_notes=8, seed=1, min_pitch=low, max_pitch=high,
            output_root=tmp_path,
        )  # fmt: skip
        pitches = set(midi_pitches(result.midi))
        assert (result.settings["min_pitch"], result.settings["max_pitch"]) == (low, high)
        assert json.loads(result.midi.with_suffix(".json").read_text())["pitch_range"] == [low, high]
        assert pitches <= set(PIANO) if low == 21 else pitches - set(PIANO)
    for low, high, message in ((90, 30, "Lowest pitch 90 is above highest pitch 30"), (0, 108, "1..126")):
        with pytest.raises(DemoInputError, match=message):
            run_demo_generation(catalog, "biased", "continue", None, min_pitch=low, max_pitch=high)


def test_web_demo_offers_bounded_pitch_sliders_wired_to_generation(biased_model_dir, tmp_path, monkeypatch):
    gr = pytest.importorskip("gradio")
    import app
    from gigapiano.hub.demo import ModelCatalog

    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the demo's request folders go under the test's folder
    monkeypatch.setattr("tempfile.tempdir", None)
    demo = app.build_demo(ModelCatalog({"biased": str(biased_model_dir)}))
    (event,) = [fn for fn in demo.fns.values() if len(fn.inputs) == 13]
    low, high, memory = event.inputs[-3:]
    assert (low.minimum, low.maximum, low.value) == (1, 126, 21)
    assert (high.minimum, high.maximum, high.value) == (1, 126, 108)
    assert (memory.minimum, memory.value) == (0, 40.0)  # the motif memory, at the library's default
    args = (None, app.NO_EXAMPLE, "biased", 1.0, app.NO_BLEND, 0.5, "continue", 1.0, 8, 3)
    _, _, midi, _ = event.fn(*args, 1, 126, 40.0, progress=lambda *a, **k: None)
    assert set(midi_pitches(Path(midi))) - set(PIANO)
    with pytest.raises(gr.Error, match="Lowest pitch 90 is above highest pitch 30"):
        event.fn(*args, 90, 30, 40.0, progress=lambda *a, **k: None)
