"""`handler.py` under hostile requests: every cap is checked before work, and each answer is bounded.

Small-scale versions of the fault-injection findings: a whitespace flood, inf/NaN numbers, too much decoding
work per request, a prompt whose audio would last for hours, and a request that outlives its time budget or
its CPU-time budget.
"""

from __future__ import annotations

import base64
import io
import re
import time
import tracemalloc
import wave
from pathlib import Path

import pytest
import torch

import handler
from modeling_gigapiano import GigaPianoConfig, GigaPianoForCausalLM
from tokenization import GigaPianoTokenizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def endpoint() -> handler.EndpointHandler:
    """An endpoint over a random tiny model, built without a repo folder (the loading is tested elsewhere)."""
    torch.manual_seed(0)
    instance = handler.EndpointHandler.__new__(handler.EndpointHandler)
    instance.path = Path(".")
    instance.model = GigaPianoForCausalLM(GigaPianoConfig.from_preset("tiny")).eval()
    instance.tokenizer = GigaPianoTokenizer()
    instance.soundfont = handler.find_soundfont(Path("."))
    instance.time_limit_s = handler.MAX_GENERATION_SECONDS
    return instance


def midi_base64(ids: list[int], tmp_path: Path) -> str:
    path = GigaPianoTokenizer().save_midi(ids, tmp_path / "prompt.mid")
    return base64.b64encode(path.read_bytes()).decode("ascii")


def test_a_whitespace_flood_is_refused_before_it_is_split_or_copied():
    flood = " " * (handler.MAX_INPUT_CHARS + 1)
    tracemalloc.start()
    try:
        with pytest.raises(handler.EndpointInputError) as caught:
            handler.decode_midi_input(flood)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.status_code == 413
    assert peak < len(flood) // 10  # no split(), no join(): nothing the size of the input was allocated
    # base64 with MIME line breaks within the limit is still accepted
    data = b"MThd" + bytes(1000)
    wrapped = "\r\n".join(base64.encodebytes(data).decode().split())
    assert handler.decode_midi_input(wrapped) == data


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), 1e300])
@pytest.mark.parametrize("name", ["max_new_notes", "num_variations", "seed", "top_k", "temperature"])
def test_non_finite_and_huge_numbers_are_a_400(name, value):
    with pytest.raises(handler.EndpointInputError) as caught:
        handler.parse_parameters({name: value})
    assert caught.value.status_code == 400 and name in str(caught.value)


def test_the_decoding_work_of_one_request_is_capped():
    message = "max_new_notes' x 'num_variations' is 4096"
    with pytest.raises(handler.EndpointInputError, match=message) as caught:
        handler.parse_parameters({"max_new_notes": handler.MAX_NEW_NOTES, "num_variations": 4})
    assert caught.value.status_code == 400
    allowed = handler.parse_parameters({"max_new_notes": 256, "num_variations": 4})
    assert allowed["max_new_notes"] * allowed["num_variations"] == handler.MAX_TOTAL_NEW_NOTES


def test_a_request_past_its_time_budget_returns_whole_notes(endpoint):
    endpoint.time_limit_s = 1.0
    try:
        started = time.monotonic()
        response = endpoint({"parameters": {"max_new_notes": 1024, "audio": False, "seed": 1}})
        elapsed = time.monotonic() - started
    finally:
        endpoint.time_limit_s = handler.MAX_GENERATION_SECONDS
    assert elapsed < 10
    made = response["outputs"][0]["new_notes"]
    assert made < 1024 and response["stopped"].startswith("time limit")
    if made:  # (a starved machine may have made none in the budget)
        ids = GigaPianoTokenizer().encode_midi(base64.b64decode(response["outputs"][0]["midi"]))
        assert len(ids) == 4 * made  # every returned note is whole


@pytest.mark.parametrize("budget", ["time_limit_s", "cpu_limit_s"])
def test_sampling_with_an_exhausted_budget_returns_complete_notes_only(endpoint, budget):
    for context in ([127], [127, 3, 4, 60]):
        rows = handler.sample_continuation(endpoint.model, context, 500, batch_size=2, **{budget: 0.05})
        for row in rows:
            assert (not row or (len(context) + len(row)) % 4 == 0) and len(row) < 2000


def test_a_request_past_its_cpu_budget_returns_whole_notes(endpoint, monkeypatch):
    """The wall-clock budget (120 s) is far away; the CPU-time cap, made small here, stops the request."""
    assert endpoint.cpu_limit_s is None  # the endpoint follows the module constant
    monkeypatch.setattr(handler, "MAX_GENERATION_CPU_SECONDS", 0.5)
    started = time.process_time()
    response = endpoint({"parameters": {"max_new_notes": 1024, "audio": False, "seed": 1}})
    used = time.process_time() - started
    made = response["outputs"][0]["new_notes"]
    assert made < 1024 and response["stopped"] == f"CPU time limit (0.5 s): {made} of 1024 notes"
    assert used >= 0.5  # it ran until the cap, not past a shorter wall-clock limit
    if made:
        ids = GigaPianoTokenizer().encode_midi(base64.b64decode(response["outputs"][0]["midi"]))
        assert len(ids) == 4 * made  # every returned note is whole
    # the same request with a budget it does not reach is not stopped
    monkeypatch.setattr(handler, "MAX_GENERATION_CPU_SECONDS", 600.0)
    full = endpoint({"parameters": {"max_new_notes": 8, "audio": False, "seed": 1}})
    assert "stopped" not in full and full["outputs"][0]["new_notes"] == 8


def test_the_cpu_budget_is_a_constructor_argument_and_a_documented_constant():
    import inspect

    signature = inspect.signature(handler.EndpointHandler.__init__)
    assert signature.parameters["cpu_limit_s"].default is None
    limits = (Path(__file__).resolve().parents[1] / "docs" / "limits.md").read_text()
    assert f"{handler.MAX_GENERATION_CPU_SECONDS:g} s of CPU (`MAX_GENERATION_CPU_SECONDS`" in limits


def test_the_audio_of_an_hours_long_prompt_is_cut_to_the_cap(endpoint, tmp_path):
    """Scaled-down version of the 8000-notes-2-s-apart request: 400 notes 2 s apart span 806 s."""
    if endpoint.soundfont is None:
        pytest.skip("no General MIDI SoundFont installed")
    prompt = [token for index in range(400) for token in (127, 126, 8, 40 + index % 40)]
    request = {"inputs": midi_base64(prompt, tmp_path), "parameters": {"max_new_notes": 2, "seed": 0}}
    started = time.monotonic()
    response = endpoint(request)
    assert time.monotonic() - started < 30
    assert response["audio"] == f"rendered (the first {handler.MAX_AUDIO_SECONDS:g} s)"
    with wave.open(io.BytesIO(base64.b64decode(response["outputs"][0]["wav"]))) as wav:
        seconds = wav.getnframes() / wav.getframerate()
    assert handler.MAX_AUDIO_SECONDS - 5 < seconds <= handler.MAX_AUDIO_SECONDS + 4 + handler.RELEASE_TAIL_S
    assert response["outputs"][0]["notes"] == 402  # the MIDI keeps every note


def test_cut_to_seconds_keeps_whole_notes():
    piece = [127, 0, 5, 60, 127, 100, 5, 62, 127, 100, 5, 64]  # onsets 0, 1.6 s, 3.2 s
    assert handler.cut_to_seconds(piece, 2.0) == (piece[:8], True)
    assert handler.cut_to_seconds(piece, 3.2) == (piece, False)


class NoModelWork:
    """Stands in for a model: any use (generate, config, device, a forward) fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"model work ({name}) before the request was refused")


@pytest.fixture
def modelless_endpoint(monkeypatch) -> handler.EndpointHandler:
    """An endpoint whose model and tokenizer must not be touched, with no base model known."""
    monkeypatch.delenv(handler.BASE_MODEL_ENV, raising=False)
    instance = handler.EndpointHandler.__new__(handler.EndpointHandler)
    instance.path = Path("does-not-exist")
    instance.model = instance.tokenizer = NoModelWork()
    instance.soundfont = None
    instance.time_limit_s = handler.MAX_GENERATION_SECONDS
    return instance


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"style_strength": -1}, "'style_strength' must be in 0..2"),
        ({"style_strength": 3}, "'style_strength' must be in 0..2"),
        ({"style_strength": float("nan")}, "'style_strength' must be a number"),
        ({"style_strength": float("inf")}, "'style_strength' must be a number"),
        ({"style_strength": "abc"}, "'style_strength' must be a number"),
        ({"style_strength": None}, "'style_strength' must not be null"),
        ({"mode": "beam"}, "'mode' must be one of continue, knn"),
        ({"mode": ["knn"]}, "'mode' must be one of continue, knn"),
        ({"mode": "knn", "knn_candidates": 0}, "'knn_candidates' must be in 1..8"),
        ({"mode": "knn", "knn_candidates": 99}, "'knn_candidates' must be in 1..8"),
        ({"mode": "knn", "knn_candidates": 2.5}, "'knn_candidates' must be an integer"),
        ({"mode": "knn", "knn_threshold": -0.1}, "'knn_threshold' must be >= 0"),
        ({"mode": "knn", "knn_threshold": float("inf")}, "'knn_threshold' must be a number"),
        ({"mode": "knn", "knn_threshold": float("nan")}, "'knn_threshold' must be a number"),
        ({"mode": "knn", "knn_memory_tokens": 3}, "'knn_memory_tokens' must be in 4..1024"),
        ({"mode": "knn", "knn_memory_tokens": 4096}, "'knn_memory_tokens' must be in 4..1024"),
        ({"knn_candidates": 2}, 'knn_candidates only apply to "mode": "knn"'),
        ({"max_new_notes": None}, "'max_new_notes' must not be null"),
        # the decoding work counts every candidate row, and both models of a mix
        (
            {"mode": "knn", "max_new_notes": 512},
            "'max_new_notes' x 'num_variations' x 'knn_candidates' is 2048; the limit is 1024",
        ),
        (
            {"mode": "knn", "max_new_notes": 64, "num_variations": 4, "knn_candidates": 8},
            "'knn_candidates' is 2048",
        ),
        ({"max_new_notes": 1024, "style_strength": 0.5}, "x 2 models (a style_strength other than 0 and 1"),
        ({"mode": "knn", "max_new_notes": 256, "style_strength": 1.5}, "is 2048; the limit is 1024"),
    ],
)
def test_bad_knn_and_style_parameters_are_a_400_before_any_model_work(
    modelless_endpoint, parameters, message
):
    with pytest.raises(handler.EndpointInputError, match=re.escape(message)) as caught:
        modelless_endpoint({"inputs": None, "parameters": parameters})
    assert caught.value.status_code == 400 and "\n" not in str(caught.value)


def test_the_work_bound_still_admits_the_largest_requests():
    assert handler.parse_parameters({"mode": "knn", "max_new_notes": 256})["knn_candidates"] == 4
    assert handler.parse_parameters({"mode": "knn", "max_new_notes": 128, "knn_candidates": 8})
    assert handler.parse_parameters({"max_new_notes": 512, "style_strength": 0.5})
    for strength in (0, 1):  # one model runs: the base alone, or this model alone
        assert handler.parse_parameters({"max_new_notes": 1024, "style_strength": strength})
    plain = handler.parse_parameters({})
    assert plain["mode"] == "continue" and not set(handler.KNN_PARAMETERS) & set(
        plain
    )  # recorded in knn only


@pytest.mark.parametrize("strength", [0, 0.5, 2])
def test_style_strength_without_a_base_model_is_a_422_before_any_model_work(modelless_endpoint, strength):
    with pytest.raises(handler.EndpointInputError, match="needs the base model") as caught:
        modelless_endpoint({"inputs": None, "parameters": {"style_strength": strength}})
    assert caught.value.status_code == 422 and handler.BASE_MODEL_ENV in str(caught.value)


def test_the_base_model_comes_from_the_environment_else_from_the_repo(tmp_path, monkeypatch):
    endpoint = handler.EndpointHandler.__new__(handler.EndpointHandler)
    endpoint.path = tmp_path
    monkeypatch.delenv(handler.BASE_MODEL_ENV, raising=False)
    assert endpoint.base_model_source() is None
    (tmp_path / handler.BASE_MODEL_FILE).write_text('{"base_model": "someone/gigapiano-base"}')
    assert endpoint.base_model_source() == "someone/gigapiano-base"
    monkeypatch.setenv(handler.BASE_MODEL_ENV, " /models/base ")
    assert endpoint.base_model_source() == "/models/base"
    monkeypatch.delenv(handler.BASE_MODEL_ENV)
    (tmp_path / handler.BASE_MODEL_FILE).write_text("[1, 2]")  # not an object: no base
    assert endpoint.base_model_source() is None


def test_a_base_model_that_is_missing_or_does_not_fit_is_a_422(endpoint, tmp_path, monkeypatch):
    cases = {
        str(tmp_path / "missing"): "is neither a folder nor a Hub id",
        str(tmp_path): "did not load",  # a folder without a model
    }
    other = GigaPianoForCausalLM(
        GigaPianoConfig.from_preset("tiny", max_position_embeddings=128, relative_attention_length=128)
    )
    other.save_pretrained(tmp_path / "other-context")
    cases[str(tmp_path / "other-context")] = (
        "cannot be mixed with this one (max_position_embeddings 128 vs 64)"
    )
    for source, message in cases.items():
        monkeypatch.setenv(handler.BASE_MODEL_ENV, source)
        with pytest.raises(handler.EndpointInputError, match=re.escape(message)) as caught:
            endpoint({"parameters": {"max_new_notes": 2, "style_strength": 0.5, "audio": False}})
        assert caught.value.status_code == 422 and "\n" not in str(caught.value)
    assert endpoint.base is None


def test_knn_responses_report_notes_and_fallbacks_and_record_the_settings(endpoint, tmp_path):
    prompt = [token for index in range(6) for token in (127, 10, 8, 60 + index)]
    parameters = {"max_new_notes": 16, "seed": 4, "audio": False, "mode": "knn", "num_variations": 2}
    request = {"inputs": midi_base64(prompt, tmp_path), "parameters": {**parameters, "knn_memory_tokens": 64}}
    response = endpoint(request)
    assert response["knn"]["notes"] == 32 and 0 <= response["knn"]["fallbacks"] <= 32
    assert {k: response["parameters"][k] for k in handler.KNN_PARAMETERS} == {
        "knn_candidates": 4,
        "knn_threshold": 0.1,
        "knn_memory_tokens": 64,
    }
    assert endpoint(request)["outputs"] == response["outputs"]  # same seed, same music
    for output in response["outputs"]:
        midi = base64.b64decode(output["midi"])
        assert output["new_notes"] == 16 and output["notes"] == 22
        assert b"mode=knn knn_candidates=4 knn_threshold=0.1 knn_memory_tokens=64" in midi
    plain = endpoint({"inputs": request["inputs"], "parameters": {"max_new_notes": 16, "audio": False}})
    assert "knn" not in plain and b"mode=" not in base64.b64decode(plain["outputs"][0]["midi"])
