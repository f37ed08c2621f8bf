"""`handler.py` (Inference Endpoints): well-formed notes by construction, limits, clear errors, round trip."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
import torch

import handler
from gigapiano.generation import split_notes
from gigapiano.generation.audio import DEBIAN_SOUNDFONTS
from modeling_gigapiano import GigaPianoConfig, GigaPianoForCausalLM
from tokenization import GigaPianoTokenizer

REPO = Path(__file__).resolve().parents[1]
FUR_ELISE = REPO / "examples" / "fur_elise.mid"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def random_tiny_model():
    torch.manual_seed(0)
    return GigaPianoForCausalLM(
        GigaPianoConfig.from_preset("tiny", embd_pdrop=0, resid_pdrop=0, attn_pdrop=0)
    ).eval()


def test_grammar_processor_allows_only_the_next_fields_range():
    processor = handler.NoteGrammarLogitsProcessor()
    rows = torch.tensor([
        [127, 5, 10, 60, 127],  # next: dt 0..126
        [60, 127, 5, 10, 60],  # next: separator
        [5, 127, 0, 10, 60],  # next: separator (a full note after the separator)
        [10, 60, 127, 0, 3],  # next: pitch 1..126
        [1, 2, 3, 4, 5],  # no separator at all: start a note
    ])  # fmt: skip
    allowed = torch.isfinite(processor(rows, torch.zeros(5, 128)))
    # pitches: the piano keyboard (21..108) by default
    expected = [range(0, 127), range(127, 128), range(127, 128), range(21, 109), range(127, 128)]
    for row, ids in zip(allowed, expected, strict=True):
        assert row.nonzero().flatten().tolist() == list(ids)


@pytest.mark.parametrize("prompt_notes", [0, 5, 40])
def test_sampling_loop_keeps_every_note_well_formed_even_with_random_weights(random_tiny_model, prompt_notes):
    """Random weights put mass on every id: only the mask keeps the grammar. 40 prompt notes (160 tokens)
    exceed the 64-token context, so the window slides while 30 notes are generated."""
    generator = torch.Generator().manual_seed(prompt_notes)
    notes = torch.randint(1, 127, (prompt_notes, 3), generator=generator).tolist()
    prompt = [token for note in notes for token in (127, *note)] or [127]
    torch.manual_seed(1)
    rows = handler.sample_continuation(random_tiny_model, prompt, 30, batch_size=2, temperature=1.5)
    for row in rows:
        piece = prompt + row
        assert len(split_notes(piece)) == prompt_notes + 30  # raises on any malformed note
    assert rows[0] != rows[1]  # two variations, sampled independently


def test_greedy_sampling_is_deterministic(random_tiny_model):
    prompt = [127, 0, 10, 60, 127, 8, 10, 64]
    first = handler.sample_continuation(random_tiny_model, prompt, 20, temperature=0)
    again = handler.sample_continuation(random_tiny_model, prompt, 20, temperature=0)
    assert first == again and len(split_notes(prompt + first[0])) == 22


def test_parameters_are_checked_and_defaulted():
    params = handler.parse_parameters({"max_new_notes": 16, "top_p": 0.9, "seed": 3.0})
    assert params["max_new_notes"] == 16 and params["top_p"] == 0.9 and params["seed"] == 3
    assert (
        params["temperature"] == handler.DEFAULT_TEMPERATURE
        and params["num_variations"] == 1
        and params["audio"] is True
    )
    bad = [
        ({"max_new_notes": 0}, "'max_new_notes' must be in 1..1024"),
        ({"max_new_notes": handler.MAX_NEW_NOTES + 1}, "'max_new_notes' must be in"),
        ({"num_variations": 9}, "'num_variations' must be in 1..4"),
        ({"temperature": "hot"}, "'temperature' must be a number"),
        ({"top_k": 2.5}, "'top_k' must be an integer"),
        ({"audio": "yes"}, "'audio' must be true or false"),
        ({"length": 3}, "unknown parameter(s) length"),
    ]
    for raw, message in bad:
        with pytest.raises(
            handler.EndpointInputError, match=message.replace("(", r"\(").replace(")", r"\)")
        ) as info:
            handler.parse_parameters(raw)
        assert info.value.status_code == 400 and str(info.value).startswith("400 Bad Request: ")
    with pytest.raises(handler.EndpointInputError, match="must be a JSON object"):
        handler.parse_parameters([1, 2])


def test_midi_input_is_size_limited_and_must_be_base64_midi():
    midi = FUR_ELISE.read_bytes()
    encoded = base64.b64encode(midi).decode()
    assert handler.decode_midi_input(encoded) == midi
    assert handler.decode_midi_input("data:audio/midi;base64," + encoded) == midi
    assert handler.decode_midi_input(None) is None and handler.decode_midi_input("") is None
    cases = [
        ("A" * (2 * handler.MAX_MIDI_BYTES), 413, "the limit is 1000000 bytes"),
        ("not base64 at all!", 400, "not valid base64"),
        (base64.b64encode(b"RIFF....WAVEfmt ").decode(), 422, "not a MIDI file"),
        (12345, 400, "must be a base64-encoded MIDI file"),
    ]
    for value, status, message in cases:
        with pytest.raises(handler.EndpointInputError, match=message) as info:
            handler.decode_midi_input(value)
        assert info.value.status_code == status


ENDPOINT_SESSION = """
import base64, json, sys
sys.path.insert(0, "repo")  # Inference Endpoints imports handler.py from the repo folder
from handler import EndpointHandler, EndpointInputError

endpoint = EndpointHandler("repo")
midi = base64.b64encode(open("repo/examples/fur_elise.mid", "rb").read()).decode()
report = {}
report["audio"] = endpoint({"inputs": midi, "parameters": {"max_new_notes": 8, "seed": 5}})
parameters = {"max_new_notes": 24, "seed": 11, "num_variations": 2, "audio": False}
request = {"inputs": midi, "parameters": parameters}
report["continue"] = endpoint(request)
report["again"] = endpoint(request)
parameters = {"max_new_notes": 12, "temperature": 0, "audio": False}
report["improvise"] = endpoint({"inputs": None, "parameters": parameters})
truncated = base64.b64encode(open("repo/examples/fur_elise.mid", "rb").read()[:40]).decode()
errors = {
    "oversized": {"inputs": "TVRoZA" + "A" * 1_400_000},
    "corrupt_base64": {"inputs": "%%% not base64 %%%"},
    "not_midi": {"inputs": base64.b64encode(b"hello, this is text").decode()},
    "truncated_midi": {"inputs": truncated},
    "bad_parameter": {"inputs": midi, "parameters": {"temperature": -2}},
    "unknown_field": {"inputs": midi, "prompt": "x"},
}
report["errors"] = {}
for name, body in errors.items():
    try:
        endpoint(body)
        report["errors"][name] = None
    except EndpointInputError as error:  # the toolkit turns any exception into HTTP 400 {"error": str(error)}
        report["errors"][name] = [error.status_code, str(error)]
# style strength and knn (issue 16): no base model known, then the base from $GIGAPIANO_BASE_MODEL
try:
    endpoint({"inputs": None, "parameters": {"max_new_notes": 4, "style_strength": 0.5}})
    report["no_base"] = None
except EndpointInputError as error:
    report["no_base"] = [error.status_code, str(error)]
import os
os.environ["GIGAPIANO_BASE_MODEL"] = "base"
parameters = {"max_new_notes": 12, "seed": 7, "audio": False}
report["base_only"] = EndpointHandler("base")({"inputs": midi, "parameters": parameters})
for name, extra in {"strength_0": {"style_strength": 0}, "strength_half": {"style_strength": 0.5},
                    "knn_half": {"style_strength": 0.5, "mode": "knn"}}.items():
    report[name] = endpoint({"inputs": midi, "parameters": {**parameters, **extra}})
print("REPORT" + json.dumps(report))
"""


def _has_synthesizer() -> bool:
    try:
        import fluidsynth  # noqa: F401
    except (ImportError, OSError):
        return shutil.which("fluidsynth") is not None
    return True


@pytest.mark.slow
def test_endpoint_round_trips_a_prompt_and_refuses_bad_input_in_a_fresh_process(
    published_tiny_repo, tmp_path, run_isolated
):
    shutil.copytree(published_tiny_repo, tmp_path / "repo")  # the repo folder alone, as an endpoint gets it
    shutil.copytree(published_tiny_repo, tmp_path / "base")  # a "base model": the same repo, other weights
    config = GigaPianoConfig.from_pretrained(published_tiny_repo)
    torch.manual_seed(5)
    base = GigaPianoForCausalLM(config)
    base.save_pretrained(tmp_path / "base-weights")
    shutil.copy(tmp_path / "base-weights" / "model.safetensors", tmp_path / "base" / "model.safetensors")
    result = run_isolated(ENDPOINT_SESSION, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.split("REPORT", 1)[1])

    tokenizer = GigaPianoTokenizer()
    prompt = split_notes(tokenizer.encode_midi(FUR_ELISE))
    response = report["continue"]
    assert response["seed"] == 11 and response["parameters"]["max_new_notes"] == 24
    assert len(response["outputs"]) == 2
    for output in response["outputs"]:
        midi = base64.b64decode(output["midi"])
        assert midi[:4] == b"MThd"
        notes = split_notes(tokenizer.encode_midi(midi))  # a valid MIDI whose notes are all well formed
        assert output["notes"] == len(notes) == len(prompt) + 24 and output["new_notes"] == 24
        assert [(n.dt, n.pitch) for n in notes[: len(prompt)]] == [(n.dt, n.pitch) for n in prompt]
    assert response["outputs"][0]["midi"] != response["outputs"][1]["midi"]
    assert report["again"]["outputs"] == response["outputs"]  # same seed, same music
    assert "wav" not in response["outputs"][0] and response["audio"] == "not requested"

    improvised = report["improvise"]["outputs"][0]
    assert (
        improvised["notes"] == 12
        and len(split_notes(tokenizer.encode_midi(base64.b64decode(improvised["midi"])))) == 12
    )

    audio = report["audio"]
    if any(Path(font).is_file() for font in DEBIAN_SOUNDFONTS) and _has_synthesizer():
        wav = base64.b64decode(audio["outputs"][0]["wav"])
        assert (
            audio["audio"] == "rendered" and wav[:4] == b"RIFF" and wav[8:12] == b"WAVE" and len(wav) > 10_000
        )
    else:
        assert "wav" not in audio["outputs"][0] and audio["audio"] != "rendered"

    errors = report["errors"]
    assert errors["oversized"][0] == 413 and "limit is 1000000 bytes" in errors["oversized"][1]
    assert errors["corrupt_base64"][0] == 400 and "not valid base64" in errors["corrupt_base64"][1]
    assert errors["not_midi"][0] == 422 and "not a MIDI file" in errors["not_midi"][1]
    assert errors["truncated_midi"][0] == 422 and "not a usable MIDI file" in errors["truncated_midi"][1]
    assert errors["bad_parameter"][0] == 400 and "'temperature' must be in 0..5" in errors["bad_parameter"][1]
    assert errors["unknown_field"][0] == 400 and "unknown field(s) prompt" in errors["unknown_field"][1]
    for status, message in errors.values():
        assert message.startswith(f"{status} ") and "\n" not in message  # one clear line each

    # style strength: the base model loads with the repo's own code, strength 0 is the base alone
    assert report["no_base"][0] == 422 and "GIGAPIANO_BASE_MODEL" in report["no_base"][1]
    assert [notes_of(o) for o in report["strength_0"]["outputs"]] == [
        notes_of(o) for o in report["base_only"]["outputs"]
    ]
    half, knn = report["strength_half"], report["knn_half"]
    assert half["style"] == {"base_model": "base", "model_weights": {"base": 0.5, "model": 0.5}}
    assert notes_of(half["outputs"][0]) not in (
        notes_of(report["strength_0"]["outputs"][0]),
        notes_of(report["base_only"]["outputs"][0]),
    )
    assert knn["knn"]["notes"] == 12 and knn["parameters"]["mode"] == "knn" and "style" in knn
    assert len(split_notes(notes_of(knn["outputs"][0]))) == len(prompt) + 12


# --- style strength (issue 16): the base model mixed in by a logits processor -------------------------------


def tiny_model(seed: int, **overrides) -> GigaPianoForCausalLM:
    torch.manual_seed(seed)
    config = GigaPianoConfig.from_preset("tiny", embd_pdrop=0, resid_pdrop=0, attn_pdrop=0, **overrides)
    return GigaPianoForCausalLM(config).eval()


def save_model_folder(model: GigaPianoForCausalLM, folder: Path) -> Path:
    model.save_pretrained(folder)
    GigaPianoTokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def style_and_base(tmp_path_factory) -> tuple[Path, Path]:
    """Folders of two random tiny models: a "style" model and the "base" it is mixed with."""
    root = tmp_path_factory.mktemp("style-and-base")
    return save_model_folder(tiny_model(0), root / "style"), save_model_folder(tiny_model(1), root / "base")


def notes_of(output: dict) -> list[int]:
    return GigaPianoTokenizer().encode_midi(base64.b64decode(output["midi"]))


def test_style_strength_0_is_the_base_model_1_is_unchanged_and_between_mixes(style_and_base, monkeypatch):
    style, base = style_and_base
    monkeypatch.delenv(handler.BASE_MODEL_ENV, raising=False)
    plain = handler.EndpointHandler(str(style))  # no base model known
    only_base = handler.EndpointHandler(str(base))
    midi = base64.b64encode(FUR_ELISE.read_bytes()).decode()
    parameters = {"max_new_notes": 24, "seed": 9, "num_variations": 2, "audio": False}
    today = plain({"inputs": midi, "parameters": parameters})
    assert today["parameters"]["style_strength"] == 1.0 and today["parameters"]["mode"] == "continue"
    assert "style" not in today and "knn" not in today and plain.base is None  # nothing of the base loaded
    monkeypatch.setenv(handler.BASE_MODEL_ENV, str(base))
    endpoint = handler.EndpointHandler(str(style))

    def ask(strength: float) -> dict:
        return endpoint({"inputs": midi, "parameters": {**parameters, "style_strength": strength}})

    assert ask(1)["outputs"] == today["outputs"]  # byte for byte, as before style strength existed
    assert endpoint.base is None  # strength 1 never loads the base
    zero = ask(0)
    expected = only_base({"inputs": midi, "parameters": parameters})
    assert [notes_of(o) for o in zero["outputs"]] == [notes_of(o) for o in expected["outputs"]]
    assert zero["style"] == {"base_model": "base", "model_weights": {"base": 1.0, "model": 0.0}}
    loaded = endpoint.base
    half = ask(0.5)
    assert endpoint.base is loaded  # loaded once, on the first request that needed it
    assert half["parameters"]["style_strength"] == 0.5
    assert half["style"] == {"base_model": "base", "model_weights": {"base": 0.5, "model": 0.5}}
    for output, before, base_output in zip(half["outputs"], today["outputs"], zero["outputs"], strict=True):
        assert notes_of(output) not in (notes_of(before), notes_of(base_output))
        assert output["new_notes"] == 24 and b"style_strength=0.5 base_model=base" in base64.b64decode(
            output["midi"]
        )
    assert b"style_strength" not in base64.b64decode(today["outputs"][0]["midi"])


def test_style_mix_processor_gives_the_library_blend_scores_through_prefix_changes(style_and_base):
    """The handler's processor equals the library's `StyleMixture` (uncached, whole sequences) while its
    cache follows appended tokens, a replaced last note (a knn pick) and a slid window."""
    from gigapiano.generation.style_mix import StyleMixture

    style, base = (GigaPianoForCausalLM.from_pretrained(folder).eval() for folder in style_and_base)
    strength = 1.5  # past the style model: the base weight is negative
    mixture = StyleMixture([base, style], [1 - strength, strength], ["base", "style"])
    processor = handler.StyleMixLogitsProcessor(base, strength)
    generator = torch.Generator().manual_seed(3)
    rows = torch.randint(1, 127, (2, 60), generator=generator)
    rows[:, ::4] = 127
    replaced = rows.clone()
    replaced[1, 41:44] = torch.tensor([5, 6, 70])  # the second row's note at 40 is another candidate's
    prefixes = [rows[:, :n] for n in (20, 21, 22, 30, 44)] + [replaced[:, :n] for n in (45, 46)]
    prefixes += [rows[:, 16:50], rows[:, 16:51]]  # the window slid
    with torch.no_grad():
        for ids in prefixes:
            style_scores = style(ids).logits[:, -1]
            expected = mixture(ids).logits[:, -1]
            assert torch.allclose(processor(ids, style_scores), expected, atol=1e-5), ids.shape
    assert processor.cache.get_seq_length() == 51 - 16  # the last call encoded one new token


# --- knn mode (issue 16): candidates as batch rows on one cache, upstream's anti-copy rule ------------------


def test_anti_copy_rule_is_the_library_rule():
    from gigapiano.generation.anti_copy import AntiCopy

    generator = torch.Generator().manual_seed(0)
    for candidates, threshold, memory in ((4, 0.1, 256), (3, 2.5, 16), (1, 0.1, 8), (2, 0.0, 40)):
        for notes in (1, 2, 9):
            history = torch.randint(1, 4, (2, notes, 4), generator=generator)  # few values: many repeats
            history[..., 0] = 127
            rows = history.repeat_interleave(candidates, dim=0).reshape(2 * candidates, -1).clone()
            rows[:, -3:] = torch.randint(1, 4, (2 * candidates, 3), generator=generator)
            ours = handler.AntiCopyRule(candidates, threshold, memory).choose(rows)
            library = AntiCopy(candidates, threshold, memory).choose(rows)
            assert ours[0].tolist() == library[0].tolist() and ours[1] == library[1]


def test_knn_sampling_on_the_shared_cache_matches_uncached_greedy_decoding(random_tiny_model):
    """One candidate at temperature 0 is plain greedy decoding: the cache cropped after every pick and the
    kept note re-encoded by the next call give the tokens of a model run on the whole sequence each step."""
    prompt = [127, 0, 10, 60, 127, 8, 10, 64]
    grammar = handler.NoteGrammarLogitsProcessor()
    sequence = torch.tensor([prompt])
    with torch.no_grad():
        while sequence.shape[1] < len(prompt) + 4 * 12:
            scores = grammar(sequence, random_tiny_model(sequence).logits[:, -1])
            sequence = torch.cat([sequence, scores.argmax(-1, keepdim=True)], dim=1)
        one = handler.sample_continuation(
            random_tiny_model, prompt, 12, temperature=0, anti_copy=handler.AntiCopyRule(1)
        )
        three = handler.sample_continuation(
            random_tiny_model, prompt, 12, batch_size=2, temperature=0, anti_copy=handler.AntiCopyRule(3)
        )
    assert one == [sequence[0, len(prompt) :].tolist()]
    assert three == one * 2  # greedy candidates are all alike: the first is kept, in every variation


@pytest.mark.parametrize("prompt_notes", [0, 40])
def test_knn_sampling_keeps_every_note_well_formed_past_the_context(random_tiny_model, prompt_notes):
    generator = torch.Generator().manual_seed(prompt_notes)
    notes = torch.randint(1, 127, (prompt_notes, 3), generator=generator).tolist()
    prompt = [token for note in notes for token in (127, *note)] or [127]
    report = {}
    torch.manual_seed(2)
    with torch.no_grad():
        rows = handler.sample_continuation(
            random_tiny_model, prompt, 30, batch_size=2, anti_copy=handler.AntiCopyRule(), report=report
        )
    for row in rows:
        assert (
            len(split_notes(prompt + row)) == prompt_notes + 30
        )  # 120 new tokens: the 64-token window slides
    assert report["knn_notes"] == 60 and 0 <= report["knn_fallbacks"] <= 60


def few_notes_model(favoured: list[int]) -> GigaPianoForCausalLM:
    """Scores that ignore the context and favour `favoured` ids: under the grammar only a few notes exist,
    so plain sampling repeats itself often."""
    model = tiny_model(0)
    with torch.no_grad():
        model.model.norm.weight.zero_()
        model.model.norm.bias.zero_()
        model.model.norm.bias[0] = 1.0
        model.lm_head.weight.zero_()
        model.lm_head.weight[favoured, 0] = 10.0
    return model


def repeated_notes(piece: list[int], memory_notes: int) -> int:
    """Notes equal, in dt, duration and pitch, to one of the `memory_notes` notes before them."""
    notes = [tuple(piece[i + 1 : i + 4]) for i in range(0, len(piece), 4)]
    return sum(notes[i] in notes[max(0, i - memory_notes) : i] for i in range(len(notes)))


@pytest.mark.parametrize(("favoured", "memory_tokens"), [([1, 60, 64], 32), ([1, 60], 8), ([1, 60], 16)])
def test_knn_keeps_a_remembered_note_only_when_it_reports_a_fallback(favoured, memory_tokens):
    """With threshold 0.1 a candidate is refused exactly when it repeats a remembered note; the kept note
    repeats one only when every candidate did, which is a reported fallback (18 or 4 possible notes)."""
    model = few_notes_model(favoured)
    for seed in range(2):
        torch.manual_seed(seed)
        with torch.no_grad():
            plain = handler.sample_continuation(model, [127], 64)[0]
        torch.manual_seed(seed)
        report = {}
        rule = handler.AntiCopyRule(4, 0.1, memory_tokens)
        with torch.no_grad():
            knn = handler.sample_continuation(model, [127], 64, anti_copy=rule, report=report)[0]
        repeats = repeated_notes([127, *knn], memory_tokens // 4)
        assert repeats == report["knn_fallbacks"] < repeated_notes([127, *plain], memory_tokens // 4)
        assert report["knn_notes"] == 64
