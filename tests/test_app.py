"""The demo without a browser: upload checks, one generation per mode, model lookup, the Space folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import app
from gigapiano.generation import split_notes
from gigapiano.hub.demo import (
    MAX_UPLOAD_BYTES,
    DemoInputError,
    ModelCatalog,
    example_prompts,
    read_upload,
    run_demo_generation,
)
from gigapiano.hub.space import SPACE_SOURCES, assemble_space, parse_models
from tokenization import GigaPianoTokenizer

REPO = Path(__file__).resolve().parents[1]
FUR_ELISE = REPO / "examples" / "fur_elise.mid"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models_dir(published_tiny_repo, tmp_path_factory) -> Path:
    """app.py's layout, <models_dir>/gigapiano-<style>/: here the tiny published repo as style "baroque"."""
    root = tmp_path_factory.mktemp("models")
    (root / "gigapiano-baroque").symlink_to(published_tiny_repo, target_is_directory=True)
    (root / "not-a-model").mkdir()
    return root


@pytest.fixture(scope="module")
def catalog(models_dir) -> ModelCatalog:
    return ModelCatalog.from_models_dir(models_dir)


def test_uploads_are_checked_for_type_size_and_content(tmp_path):
    assert read_upload(FUR_ELISE) == FUR_ELISE.read_bytes()
    assert read_upload(None) is None and read_upload("") is None
    text = tmp_path / "notes.txt"
    text.write_text("not music")
    big = tmp_path / "big.mid"
    big.write_bytes(b"MThd" + b"\0" * MAX_UPLOAD_BYTES)
    fake = tmp_path / "fake.midi"
    fake.write_bytes(b"RIFF1234WAVE")
    for path, message in (
        (text, "not a MIDI file: upload a .mid"),
        (big, "the limit is 1 MB"),
        (fake, "MIDI header"),
    ):
        with pytest.raises(DemoInputError, match=message):
            read_upload(path)


def test_catalog_and_model_resolution(models_dir, tmp_path, monkeypatch):
    assert ModelCatalog.from_models_dir(models_dir).styles == ["baroque"]  # "not-a-model" is no gigapiano-*
    spec = ModelCatalog.from_spec("baroque=ns/gigapiano-baroque, romantic=models/x")
    assert spec.sources == {"baroque": "ns/gigapiano-baroque", "romantic": "models/x"}
    with pytest.raises(ValueError, match="STYLE=FOLDER_OR_HUB_ID"):
        ModelCatalog.from_spec("baroque")
    monkeypatch.delenv("GIGAPIANO_MODELS", raising=False)
    monkeypatch.setenv("GIGAPIANO_MODELS_DIR", str(models_dir))
    assert app.resolve_catalog(None, None).styles == ["baroque"]
    with pytest.raises(ValueError, match="No style model found"):
        app.resolve_catalog(None, str(tmp_path))
    assert app.main(["--models_dir", str(tmp_path)]) == 2  # one error line, no server
    with pytest.raises(DemoInputError, match="Unknown style 'jazz'"):
        ModelCatalog.from_models_dir(models_dir).load("jazz")
    assert list(example_prompts()) == ["Für Elise (Beethoven), opening"]


@pytest.mark.parametrize("mode", ["continue", "inpaint", "harmonize", "progression"])
def test_each_mode_writes_a_valid_midi_and_a_piano_roll(catalog, mode, tmp_path):
    result = run_demo_generation(
        catalog, "baroque", mode, FUR_ELISE.read_bytes(), max_new_notes=16, seed=3, output_root=tmp_path
    )
    assert result.pianoroll.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    notes = split_notes(GigaPianoTokenizer().encode_midi(result.midi))
    assert notes and result.settings["seed"] == 3 and result.settings["mode"] == mode
    assert "seed 3" in result.summary and mode in result.summary
    record = json.loads(result.midi.with_suffix(".json").read_text())
    assert record["style"] == "baroque" and record["seed"] == 3
    if result.wav is not None:
        assert result.wav.read_bytes()[:4] == b"RIFF"
    else:
        assert "No audio" in result.summary


def test_improvising_without_a_prompt_and_refusing_bad_settings(catalog, tmp_path):
    result = run_demo_generation(catalog, "baroque", "continue", None, max_new_notes=8, output_root=tmp_path)
    assert len(split_notes(GigaPianoTokenizer().encode_midi(result.midi))) == 8
    assert "improvised without a prompt" in result.summary and isinstance(result.settings["seed"], int)
    bad = [
        (dict(mode="inpaint", prompt=None), "works on a prompt"),
        (dict(temperature=3.0), "Temperature must be between 0 and 2"),
        (dict(max_new_notes=100_000), "Length must be 1..512"),
        (dict(seed=-5), "Seed must be a whole number"),
        (dict(mode="fugue"), "Unknown mode 'fugue'"),
        (dict(prompt=b"MThd\0\0\0\6broken"), "not a usable MIDI file"),
    ]
    for overrides, message in bad:
        kwargs = dict(mode="continue", prompt=FUR_ELISE.read_bytes(), output_root=tmp_path) | overrides
        mode, prompt = kwargs.pop("mode"), kwargs.pop("prompt")
        with pytest.raises(DemoInputError, match=message):
            run_demo_generation(catalog, "baroque", mode, prompt, **kwargs)


def test_space_folder_is_self_contained(published_tiny_repo, tmp_path):
    if os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        pytest.importorskip("gradio", reason="the demo extra (gradio) is not installed")
    space = assemble_space(
        tmp_path / "space", "someone/gigapiano-demo", {"baroque": str(published_tiny_repo)}
    )
    for source in SPACE_SOURCES:
        assert (space.path / source).exists(), source
    front = (space.path / "README.md").read_text().split("---")[1]
    assert "sdk: gradio" in front and "app_file: app.py" in front
    assert "gradio" not in (space.path / "requirements.txt").read_text()  # Spaces install it from sdk_version
    assert "fluid-soundfont-gm" in (space.path / "packages.txt").read_text()
    assert json.loads((space.path / "demo_models.json").read_text()) == {
        "models": {"baroque": str(published_tiny_repo)}
    }
    with pytest.raises(ValueError, match="STYLE=NAMESPACE/NAME"):
        parse_models("baroque")
    # The Space's app imports only what the Space holds: build the UI there, from a bare environment.
    script = (
        "import gigapiano, app\n"
        "catalog = app.resolve_catalog(None, None)\n"
        "demo = app.build_demo(catalog)\n"
        "print(gigapiano.__file__, catalog.styles, type(demo).__name__)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIGAPIANO_")}
    env.update(PYTHONPATH="", HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    command = [sys.executable, "-c", script]
    result = subprocess.run(command, cwd=space.path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    module_file, styles, kind = result.stdout.split()[-3:]
    assert Path(module_file).resolve().is_relative_to(space.path.resolve())
    assert styles == "['baroque']" and kind == "Blocks"
