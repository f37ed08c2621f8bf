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
