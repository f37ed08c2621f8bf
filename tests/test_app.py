"""The demo without a browser: upload checks, one generation per mode, style strength and blends, model
lookup, the Space folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

import app
from gigapiano.generation import GenerationSettings, generate_continuation, load_prompt, split_notes
from gigapiano.hub import demo
from gigapiano.hub.demo import (
    MAX_LOADED_MODELS,
    MAX_UPLOAD_BYTES,
    DemoInputError,
    ModelCatalog,
    demo_style_blend,
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


@pytest.fixture(scope="module")
def blend_models_dir(published_tiny_repo, tmp_path_factory) -> Path:
    """A base and two styles: the tiny published model as `base`, and two copies whose output layers got
    different noise as `baroque` and `romantic`, so the three models sample differently."""
    import torch

    from gigapiano.generation.resolve import load_model

    root = tmp_path_factory.mktemp("blend-models")
    (root / "gigapiano-base").symlink_to(published_tiny_repo, target_is_directory=True)
    for seed, style in enumerate(("baroque", "romantic")):
        folder = root / f"gigapiano-{style}"
        shutil.copytree(published_tiny_repo, folder)
        model = load_model(folder, device="cpu")
        head = model.get_output_embeddings().weight
        with torch.no_grad():
            head.add_(torch.randn(head.shape, generator=torch.Generator().manual_seed(seed)) * head.std())
        model.save_pretrained(folder)
    return root


@pytest.fixture
def blend_catalog(blend_models_dir) -> ModelCatalog:
    return ModelCatalog.from_models_dir(blend_models_dir)


def midi_notes(path: Path) -> list:
    return split_notes(GigaPianoTokenizer().encode_midi(path))


def midi_marker(path: Path) -> str:
    import symusic

    return " ".join(marker.text for marker in symusic.Score(str(path)).markers)


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


@pytest.mark.parametrize("mode", ["continue", "knn", "inpaint", "harmonize", "progression"])
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
    assert result.settings["motif_memory"] == 40.0  # the library's default
    prompt = FUR_ELISE.read_bytes()
    plain = run_demo_generation(
        catalog, "baroque", "continue", prompt, max_new_notes=8, motif_memory=0, output_root=tmp_path
    )
    assert plain.settings["motif_memory"] == 0.0
    bad = [
        (dict(mode="inpaint", prompt=None), "works on a prompt"),
        (dict(temperature=3.0), "Temperature must be between 0 and 2"),
        (dict(max_new_notes=100_000), "Length must be 1..512"),
        (dict(seed=-5), "Seed must be a whole number"),
        (dict(motif_memory=-1.0), "Motif memory must be between 0 and 200"),
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


def test_style_strength_0_is_the_base_model_and_1_the_style_model(blend_catalog, blend_models_dir, tmp_path):
    generate = partial(
        run_demo_generation,
        blend_catalog,
        mode="continue",
        prompt=FUR_ELISE.read_bytes(),
        max_new_notes=12,
        seed=5,
        output_root=tmp_path,
        temperature=0.9,  # fixed, so the seeded draws below do not hinge on the library's default
    )
    base = generate("base")
    weakest = generate("baroque", style_strength=0)
    plain = generate("baroque", style_strength=1)
    strong = generate("baroque", style_strength=1.5)

    assert midi_notes(weakest.midi) == midi_notes(base.midi)  # strength 0 runs the base model itself
    # strength 1 is the style model: what the library samples from that folder with the same seed
    tokenizer = GigaPianoTokenizer()
    model = demo.load_model(blend_models_dir / "gigapiano-baroque", device="cpu")
    settings = GenerationSettings(max_new_notes=12, seed=5, temperature=plain.settings["temperature"])
    direct = generate_continuation(model, load_prompt(FUR_ELISE.read_bytes(), tokenizer), settings)
    tokenizer.save_midi(direct.pieces[0], tmp_path / "direct.mid")
    assert midi_notes(plain.midi) == midi_notes(tmp_path / "direct.mid")
    assert midi_notes(plain.midi) != midi_notes(base.midi)  # the models do differ
    assert midi_notes(strong.midi) not in (midi_notes(plain.midi), midi_notes(base.midi))

    # what was used is in the summary, the JSON and the MIDI's marker (as generate.py records a blend)
    assert weakest.record["model_weights"] == {"base": 1.0, "baroque": 0.0}
    assert weakest.record["model"].endswith("gigapiano-base") and "Style strength 0;" in weakest.summary
    assert "style_strength" not in plain.record and "strength" not in plain.summary  # the plain style model
    assert strong.record["model_weights"] == {"base": -0.5, "baroque": 1.5}
    assert strong.record["style"] == "baroque@1.5" and strong.record["style_strength"] == 1.5
    assert "Style strength 1.5; model weights: base -0.5, baroque 1.5." in strong.summary
    assert json.loads(strong.midi.with_suffix(".json").read_text())["model_weights"] == {
        "base": -0.5,
        "baroque": 1.5,
    }
    assert "style=baroque@1.5 style_strength=1.5" in midi_marker(strong.midi)
    assert strong.midi.name == "gigapiano-baroque-strength1.5-continue-seed5.mid"


def test_blending_two_styles(blend_catalog, tmp_path):
    generate = partial(
        run_demo_generation, blend_catalog, mode="continue", prompt=FUR_ELISE.read_bytes(), max_new_notes=12,
        seed=7, output_root=tmp_path,
    )  # fmt: skip
    mix = generate("baroque", blend_with="romantic", blend_share=0.5)
    assert mix.record["model_weights"] == {"base": 0.0, "baroque": 0.5, "romantic": 0.5}
    assert mix.record["style"] == "baroque:0.5,romantic:0.5" and "base" not in mix.record["model"]
    assert "**baroque + romantic**" in mix.summary and "romantic 0.5" in mix.summary
    assert "style=baroque:0.5,romantic:0.5" in midi_marker(mix.midi)
    # the blend written as on the command line is the same blend
    assert midi_notes(generate("baroque:0.5,romantic:0.5").midi) == midi_notes(mix.midi)
    # a share of 1 is the second style's own model
    assert midi_notes(generate("baroque", blend_with="romantic", blend_share=1).midi) == midi_notes(
        generate("romantic").midi
    )
    # base and two styles at once: three models, all kept
    pushed = generate("baroque", blend_with="romantic", blend_share=0.25, style_strength=1.6)
    assert pushed.record["model_weights"] == {"base": -0.6, "baroque": 1.2, "romantic": 0.4}
    assert len(split_notes(GigaPianoTokenizer().encode_midi(pushed.midi))) == 53 + 12
    assert sorted(blend_catalog._loaded) == ["baroque", "base", "romantic"]


def test_knn_mode_reports_the_anti_copy_filter(blend_catalog, tmp_path):
    result = run_demo_generation(
        blend_catalog, "baroque", "knn", FUR_ELISE.read_bytes(), max_new_notes=16, seed=2, style_strength=0.5,
        output_root=tmp_path,
    )  # fmt: skip
    knn = result.record["knn"]
    assert knn["notes"] == 16 and 0 <= knn["fallbacks"] <= 16
    assert result.settings["mode"] == "knn" and result.settings["knn_candidates"] == 4
    assert f"the first was kept: {knn['fallbacks']} of 16 notes)" in result.summary
    assert "first of 4 samples that repeats none of the last 64 notes" in result.summary
    assert result.record["model_weights"] == {"base": 0.5, "baroque": 0.5}  # knn works on a blend too
    assert "mode=knn" in midi_marker(result.midi)


def test_bad_strengths_and_blends_are_clear_errors(blend_catalog, catalog, published_tiny_repo, tmp_path):
    bad = [
        (dict(style_strength=2.5), "Style strength must be between 0 and 2, got 2.5"),
        (dict(style_strength=float("nan")), "Style strength must be between 0 and 2"),
        (dict(style="jazz", style_strength=0.5), "Unknown style 'jazz'; choose one of baroque, romantic"),
        (dict(blend_with="jazz"), "Unknown style 'jazz'"),
        (dict(style="baroque:1.5,romantic:1"), "add up to 2.5; at most 2 is allowed .*the style strength"),
        (dict(blend_with="romantic", style_strength=2.1), "Style strength must be between 0 and 2"),
        (dict(style="baroque:1.2,romantic:0.4", style_strength=1.5), "add up to 2.4"),
        (dict(style="baroque:lots"), "Style weight 'lots' of baroque is not a number"),
        (dict(style="baroque:-1"), "must be a number > 0"),
        (dict(blend_with="baroque"), "Style baroque appears twice"),
        (dict(blend_with="romantic", blend_share=1.5), "blend share must be between 0 and 1"),
        (dict(style="base", style_strength=0.5), "The base model has no style"),
        (dict(style="base", blend_with="romantic"), "The base model has no style"),
        (dict(blend_with="base"), "The base model is not a style weight"),
    ]
    for overrides, message in bad:
        kwargs = dict(style="baroque", prompt=FUR_ELISE.read_bytes(), output_root=tmp_path) | overrides
        with pytest.raises(DemoInputError, match=message):
            run_demo_generation(
                blend_catalog, kwargs.pop("style"), "continue", kwargs.pop("prompt"), **kwargs
            )
    assert not blend_catalog._loaded  # refused before any model loaded

    # a demo without a base model: strength 1 only (its style models, and blends of weight 1 in all)
    with pytest.raises(
        DemoInputError, match=r"does not offer \(start it with base=<model> in --models\): use strength 1"
    ):
        run_demo_generation(catalog, "baroque", "continue", None, style_strength=0.5, output_root=tmp_path)
    three = ModelCatalog(dict.fromkeys(("base", "a", "b", "c"), str(published_tiny_repo)))
    with pytest.raises(DemoInputError, match="at most 2 styles; 3 were given"):
        demo_style_blend(three, "a:0.3,b:0.3,c:0.3")
    assert demo_style_blend(three, "a") is None and not demo_style_blend(three, "a", 1, "b", 0).is_blend


def test_the_model_cache_never_holds_more_than_its_bound(monkeypatch, published_tiny_repo):
    held: list[int] = []
    catalog = ModelCatalog(dict.fromkeys(("base", "a", "b", "c", "d"), str(published_tiny_repo)))

    def fake_load(source, **kwargs):
        held.append(len(catalog._loaded))  # models still in memory while one more loads
        return object()

    monkeypatch.setattr(demo, "load_model", fake_load)
    monkeypatch.setattr(demo, "load_tokenizer", lambda source, trust=False: None)
    for style in ("base", "a", "b", "c", "a", "d", "base"):
        catalog.load(style)
    assert MAX_LOADED_MODELS == 3 and max(held) == MAX_LOADED_MODELS - 1
    assert list(catalog._loaded) == ["a", "d", "base"]  # least recently used dropped first
