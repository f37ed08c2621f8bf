"""Generation under hostile input: caps checked before any work, outputs checked before generating, and no
code from a model folder run unless trust is given."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from gigapiano.generation import GenerationSettings, generate_continuation
from gigapiano.generation.outputs import check_writable, output_files
from gigapiano.generation.resolve import load_model, load_tokenizer
from gigapiano.generation.settings import MAX_NEW_NOTES, MAX_SECONDS, MAX_VARIATIONS
from modeling_gigapiano import GigaPianoConfig, GigaPianoForCausalLM
from tokenization import GigaPianoTokenizer

REPO = Path(__file__).resolve().parents[1]
MODEL_CODE = ("configuration_gigapiano.py", "modeling_gigapiano.py")
TOKENIZER_CODE = ("tokenization_gigapiano.py", "gigapiano_midi.py", "gigapiano_notes.py")


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-model")
    torch.manual_seed(0)
    GigaPianoForCausalLM(GigaPianoConfig.from_preset("tiny")).save_pretrained(folder)
    GigaPianoTokenizer().save_pretrained(folder)
    return folder


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_new_notes", MAX_NEW_NOTES + 1),
        ("max_new_notes", 10**12),
        ("seconds", MAX_SECONDS * 2),
        ("seconds", float("inf")),
        ("seconds", float("nan")),
        ("num_variations", MAX_VARIATIONS + 1),
        ("num_variations", 10**9),
    ],
)
def test_settings_refuse_unbounded_work(field, value):
    with pytest.raises(ValueError, match=field):
        GenerationSettings(**{field: value})


def test_seconds_never_ask_for_more_notes_than_the_cap():
    assert GenerationSettings(seconds=MAX_SECONDS).note_budget() <= MAX_NEW_NOTES


def test_inpainting_a_huge_source_is_refused_before_sampling():
    model = GigaPianoForCausalLM(GigaPianoConfig.from_preset("tiny")).eval()
    source = [127, 1, 4, 60] * (MAX_NEW_NOTES + 1)
    with pytest.raises(ValueError, match="the limit is 16384"):
        generate_continuation(model, source, mode="inpaint", seed=0)


def test_outputs_are_checked_before_generation(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder"):
        output_files(folder, [""])
    with pytest.raises(IsADirectoryError, match="is a folder"):
        output_files(f"{tmp_path}/not-yet/", [""])
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(PermissionError, match="Cannot write output files into"):
        check_writable(output_files(blocker / "piece.mid", [""])[0].all(), overwrite=False)
    check_writable(output_files(folder / "piece.mid", [""])[0].all(), overwrite=False)
    assert not list(folder.iterdir())  # the write probe leaves nothing behind


def test_cli_answers_hostile_flags_with_one_line_in_bounded_time_and_memory(tiny_folder, tmp_path):
    """In a fresh process: each case must end with exit 1 and one `error:` line, within 30 s and 1.5 GB."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cases = {
        "notes": ["--max_new_notes", "1000000000"],
        "seconds": ["--seconds", "1e12"],
        "variations": ["--num_variations", "100000000"],
        "output_folder": ["--output", str(tmp_path)],
        "unwritable": ["--output", str(blocker / "x.mid")],
    }
    script = textwrap.dedent(
        f"""
        import contextlib, io, json, resource, sys, time
        import generate
        import gigapiano.generation.runner
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        report = {{}}
        for name, flags in {cases!r}.items():
            err = io.StringIO()
            started = time.monotonic()
            with contextlib.redirect_stderr(err):
                code = generate.main(["--model", {str(tiny_folder)!r}, "--seed", "0", *flags])
            report[name] = [code, err.getvalue(), time.monotonic() - started]
        report["extra_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
        print(json.dumps(report))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report.pop("extra_kib") < 1.5 * 2**20
    for name, (code, stderr, seconds) in report.items():
        lines = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert code == 1 and len(lines) == 1 and "Traceback" not in stderr, (name, stderr)
        assert seconds < 30, name


def copy_with_marker(source: Path, target: Path, marker: Path, model_type: str | None = None) -> None:
    """A copy of a model folder whose bundled .py files leave a trace in `marker` when they are imported."""
    target.mkdir()
    for path in source.iterdir():
        if path.suffix == ".py":
            code = path.read_text() + f"\nopen({str(marker)!r}, 'a').write({path.name!r} + '\\n')\n"
            (target / path.name).write_text(code)
        else:
            (target / path.name).write_bytes(path.read_bytes())
    if model_type is not None:
        config = json.loads((target / "config.json").read_text())
        (target / "config.json").write_text(json.dumps({**config, "model_type": model_type}))


def test_bundled_code_of_a_gigapiano_folder_runs_only_with_trust(tiny_folder, tmp_path):
    folder, marker = tmp_path / "model", tmp_path / "ran.txt"
    copy_with_marker(tiny_folder, folder, marker)
    model, tokenizer = load_model(folder, device="cpu"), load_tokenizer(folder)
    assert type(model) is GigaPianoForCausalLM and type(tokenizer) is GigaPianoTokenizer
    assert not marker.exists()
    # With trust the folder's tokenizer code runs; for the model, transformers keeps the class the project
    # registered for the gigapiano type.
    assert type(load_model(folder, device="cpu", trust_remote_code=True)) is GigaPianoForCausalLM
    load_tokenizer(folder, trust_remote_code=True)
    assert "tokenization_gigapiano.py" in marker.read_text().split()


def test_a_folder_with_foreign_code_needs_trust_and_says_so(tiny_folder, tmp_path):
    folder, marker = tmp_path / "foreign", tmp_path / "ran.txt"
    copy_with_marker(tiny_folder, folder, marker, model_type="not-gigapiano")
    with pytest.raises(ValueError, match="runs only with --trust_remote_code"):
        load_model(folder, device="cpu")
    assert not marker.exists()
    load_model(folder, device="cpu", trust_remote_code=True)
    assert "modeling_gigapiano.py" in marker.read_text().split()


@pytest.mark.parametrize("folder", sorted((REPO / "models").glob("gigapiano-*")), ids=lambda p: p.name)
def test_shipped_model_folders_carry_the_current_code(folder):
    """A shipped folder's .py files are what `trust_remote_code` runs off-project: copies of the source."""
    expected = {name: REPO / "modeling_gigapiano" / name for name in MODEL_CODE}
    if (folder / "tokenizer_config.json").is_file():
        expected |= {name: REPO / "tokenization" / name for name in TOKENIZER_CODE}
    stale = [name for name, source in expected.items() if (folder / name).read_text() != source.read_text()]
    assert not stale, f"{folder.name}: {stale} differ from the source; copy them again from the project"
