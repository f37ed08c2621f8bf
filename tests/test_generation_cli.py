"""`generate.py` end to end on a tiny model folder: the README command, styles, variations, bad input.

Two tests run the script in a subprocess (the README command and a corrupt prompt: what a user sees);
the rest call `generate.main(argv)` in-process, which is the same code without the interpreter start-up.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
FUR_ELISE = REPO / "examples" / "fur_elise.mid"
pytest.importorskip("tokenization")


@pytest.fixture
def cli(monkeypatch):
    """`generate.main` with transformers' logging state restored afterwards; returns (exit code, out, err)."""
    import torch
    from transformers.utils import logging as hf_logging

    import generate

    verbosity, bars_off = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled() is False
    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    def run(capsys, *argv: str) -> tuple[int, str, str]:
        code = generate.main([*argv, "--no_progress"])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    yield run
    torch.set_num_threads(threads)
    hf_logging.set_verbosity(verbosity)
    if not bars_off:
        hf_logging.enable_progress_bar()


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != 0
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": "false"}


def synth_reason() -> str | None:
    """None when WAV rendering can work here, else the library's reason why not."""
    from gigapiano.generation.audio import AudioUnavailableError, check_synthesizer, find_soundfont

    try:
        find_soundfont()
        check_synthesizer()
    except AudioUnavailableError as error:
        return str(error)
    return None


@pytest.mark.slow
def test_readme_command_writes_midi_wav_and_pianoroll(tiny_model_dir, tmp_path):
    import symusic
    from matplotlib import image

    reason = synth_reason()
    output = tmp_path / "x.mid"
    command = [sys.executable, "generate.py", "--model", str(tiny_model_dir),
               "--prompt", "examples/fur_elise.mid", "--output", str(output), "--pianoroll",
               "--max_new_notes", "48", "--seed", "0"]  # fmt: skip
    if reason is None:
        command.append("--wav")
    done = subprocess.run(
        command, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    written = [Path(line) for line in done.stdout.split()]
    assert (
        output in written and output.with_suffix(".png") in written and output.with_suffix(".json") in written
    )

    score = symusic.Score(str(output))
    assert score.note_num() == 53 + 48  # the whole prompt plus the continuation
    pixels = image.imread(output.with_suffix(".png"))
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert json.loads(output.with_suffix(".json").read_text())["seed"] == 0
    if reason is not None:
        pytest.skip(f"MIDI and PNG checked; WAV skipped: {reason}")
    with wave.open(str(output.with_suffix(".wav")), "rb") as handle:
        samples = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2")
    assert samples.size > 44_100 and np.abs(samples).max() > 1000  # plays: seconds of non-silent audio


def test_corrupt_prompt_is_one_line_error_and_nonzero_exit(tiny_model_dir, tmp_path):
    prompt = tmp_path / "broken.mid"
    prompt.write_bytes(b"MThd\x00\x00\x00\x06garbage that is not a MIDI file")
    output = tmp_path / "out.mid"
    done = subprocess.run(
        [sys.executable, "generate.py", "--model", str(tiny_model_dir), "--prompt", str(prompt),
         "--output", str(output)],
        cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert_one_line_error(done.returncode, done.stderr, "broken.mid")
    assert done.stdout == "" and not list(tmp_path.glob("out*"))


def write_score(path: Path, drums: bool = False, notes: int = 4) -> Path:
    import symusic

    score = symusic.Score(480)
    track = symusic.Track(program=0, is_drum=drums)
    for index in range(notes):
        track.notes.append(symusic.Note(index * 240, 200, 36 + index, 90))
    score.tracks.append(track)
    score.dump_midi(str(path))
    return path


@pytest.mark.parametrize("kind", ["empty", "drums", "missing"])
def test_unusable_prompts_are_one_line_errors(cli, capsys, tiny_model_dir, tmp_path, kind):
    prompt = {
        "empty": lambda: write_score(tmp_path / "empty.mid", notes=0),
        "drums": lambda: write_score(tmp_path / "drums.mid", drums=True),
        "missing": lambda: tmp_path / "missing.mid",
    }[kind]()
    code, out, err = cli(
        capsys, "--model", str(tiny_model_dir), "--prompt", str(prompt), "--output", str(tmp_path / "o.mid")
    )
    assert_one_line_error(code, err, prompt.name)
    assert out == "" and not list(tmp_path.glob("o.*"))


def test_style_errors_name_the_fix(cli, capsys, tmp_path):
    code, _, err = cli(capsys, "--style", "grunge", "--models_dir", str(tmp_path))
    assert_one_line_error(code, err, "grunge", "baroque", "--model")
    code, _, err = cli(capsys, "--style", "baroque", "--models_dir", str(tmp_path))
    assert_one_line_error(code, err, str(tmp_path / "gigapiano-baroque"), "--model")
    code, _, err = cli(capsys, "--style", "baroque", "--model", "x")
    assert_one_line_error(code, err, "--model", "--style")
    code, _, err = cli(capsys, "--model", "x", "--mode", "fugue")
    assert_one_line_error(code, err, "fugue")


def test_refuses_to_overwrite_without_flag(cli, capsys, tiny_model_dir, tmp_path):
    output = tmp_path / "x.mid"
    args = ("--model", str(tiny_model_dir), "--max_new_notes", "4", "--seed", "1", "--output", str(output))
    code, out, _ = cli(capsys, *args)
    assert code == 0 and str(output) in out
    before = output.read_bytes()
    code, _, err = cli(capsys, *args, "--seed", "2")
    assert_one_line_error(code, err, "x.mid", "--overwrite")
    assert output.read_bytes() == before
    code, _, _ = cli(capsys, *args, "--seed", "2", "--overwrite")
    assert code == 0 and json.loads(output.with_suffix(".json").read_text())["seed"] == 2


def test_style_all_writes_one_piece_per_shipped_style(cli, capsys, caplog, tiny_model_dir, tmp_path):
    models = tmp_path / "models"
    for style in ("baroque", "romantic", "base"):
        shutil.copytree(tiny_model_dir, models / f"gigapiano-{style}")
    output = tmp_path / "cmp.mid"
    caplog.set_level(logging.INFO, logger="gigapiano.generation.runner")
    code, out, err = cli(
        capsys, "--style", "all", "--models_dir", str(models), "--prompt", str(FUR_ELISE),
        "--output", str(output), "--max_new_notes", "5", "--num_variations", "2", "--seed", "4",
        "--pianoroll",
    )  # fmt: skip
    assert code == 0, err
    written = {Path(line).name for line in out.split()}
    for style in ("baroque", "romantic"):
        for variation in (1, 2):
            stem = f"cmp-{style}-{variation}"
            assert {f"{stem}.mid", f"{stem}.json", f"{stem}.png"} <= written
            record = json.loads((tmp_path / f"{stem}.json").read_text())
            assert record["style"] == style and record["seed"] == 4 and record["variation"] == variation
            assert record["settings"]["max_new_notes"] == 5 and record["generated_notes"] == 5
    assert "cmp-styles.png" in written
    assert not any("base" in name for name in written)  # the base model only with --with_base
    style_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Style ")]
    assert [line.split()[1] for line in style_lines] == ["baroque", "romantic"]
    assert all("seed 4" in line for line in style_lines)  # one seed for every style: a comparison

    code, out, err = cli(
        capsys, "--style", "all", "--with_base", "--models_dir", str(models), "--output",
        str(tmp_path / "all.mid"), "--max_new_notes", "3", "--seed", "4",
    )  # fmt: skip
    assert code == 0, err
    assert {Path(line).name for line in out.split()} >= {
        "all-base.mid",
        "all-baroque.mid",
        "all-romantic.mid",
    }
    record = json.loads((tmp_path / "all-base.json").read_text())
    assert record["style"] == "base" and record["seed"] == 4
    code, _, err = cli(capsys, "--style", "baroque", "--with_base", "--models_dir", str(models))
    assert_one_line_error(code, err, "--with_base", "--style all")


def run_light(*argv: str) -> tuple[int, str, bool]:
    """`generate.main(argv)` in a fresh interpreter: (exit code, stderr, whether torch or transformers got
    imported). What a user typing a quick command waits for is the import, so the check is on what loads."""
    code = (
        "import contextlib, io, sys\n"
        "import generate\n"
        "err = io.StringIO()\n"
        "with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):\n"
        f"    status = generate.main({list(argv)!r})\n"
        "heavy = any(name in sys.modules for name in ('torch', 'transformers', 'numpy'))\n"
        "print(status, heavy)\n"
        "print(err.getvalue(), end='')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    first, _, err = done.stdout.partition("\n")
    status, heavy = first.split()
    return int(status), err, heavy == "True"


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["--style", "baroque", "--no-such-flag"], ["--model", "runs/does-not-exist"],
     ["--model", "./nowhere/model"], ["--style", "baroque", "--mode", "fugue"]],
    ids=["help", "bad-flag", "missing-run-folder", "missing-relative-folder", "bad-choice"],
)  # fmt: skip
def test_quick_answers_import_neither_torch_nor_transformers(argv):
    status, err, heavy = run_light(*argv)
    assert not heavy
    if argv == ["--help"]:
        assert status == 0 and err == ""
    else:
        assert_one_line_error(status, err)
        if "--model" in argv:
            assert "does not exist" in err and argv[1] in err


def test_help_texts_say_what_each_switch_does():
    from gigapiano.cli import DataclassArgumentParser
    from gigapiano.generation.arguments import GenerateArguments

    parser = DataclassArgumentParser([GenerateArguments])
    helps = {option: action.help for action in parser._actions for option in action.option_strings}
    assert helps["--progress"] != helps["--no_progress"] and "Hide" in helps["--no_progress"]
    assert "same seed" in helps["--style"] and "--with_base" in helps["--style"]
    assert "pretty_midi" in helps["--soundfont"] and "sampler" in helps["--synthesizer"]
    assert "FluidSynth)" not in helps["--wav"]


#: Runs generate.py as if neither FluidSynth (library or program), tinysoundfont nor a system SoundFont
#: were installed: what a bare machine with only `pip install -e ".[audio]"` has.
HIDE_SYSTEM_AUDIO = """
import runpy, shutil, sys
sys.path.insert(0, ".")
sys.modules["fluidsynth"] = None
sys.modules["tinysoundfont"] = None
which = shutil.which
shutil.which = lambda name, *a, **k: None if name == "fluidsynth" else which(name, *a, **k)
import gigapiano.generation.audio as audio
audio.DEBIAN_SOUNDFONTS = ()
sys.argv = ["generate.py", *sys.argv[1:]]
runpy.run_path("generate.py", run_name="__main__")
"""


def readme_main_job() -> list[str]:
    """The second command of the README's first code block (the main job), as arguments of generate.py."""
    block = (REPO / "README.md").read_text().split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line.strip()]
    assert len(commands) == 2 and commands[0].startswith("pip install"), commands
    words = commands[1].split()
    assert words[:2] == ["python", "generate.py"], commands[1]
    return words[2:]


@pytest.mark.slow
def test_readme_main_job_without_system_audio_writes_midi_wav_png(tmp_path):
    """The README's main job with FluidSynth and the system SoundFonts hidden (16 notes instead of 256 to
    stay quick; everything else as written)."""
    pytest.importorskip("pretty_midi", reason="the audio extra (pretty_midi) is not installed")
    argv = readme_main_job()
    style = argv[argv.index("--style") + 1]
    if not (REPO / "models" / f"gigapiano-{style}" / "config.json").is_file():
        pytest.skip(f"the shipped {style} model is absent")
    output = tmp_path / Path(argv[argv.index("--output") + 1]).name
    argv[argv.index("--output") + 1] = str(output)
    done = subprocess.run(
        [sys.executable, "-c", HIDE_SYSTEM_AUDIO, *argv, "--max_new_notes", "16", "--no_progress"],
        cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    for suffix in (".mid", ".json", ".wav", ".png"):
        assert output.with_suffix(suffix).is_file(), suffix
    with wave.open(str(output.with_suffix(".wav")), "rb") as handle:
        samples = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2")
    assert samples.size > 44_100 and np.abs(samples).max() > 1000  # seconds of audible sound
    record = json.loads(output.with_suffix(".json").read_text())
    assert record["wav"]["synthesizer"] == "gigapiano-sampler"
    soundfont = Path(record["wav"]["soundfont"])
    assert soundfont.name == "TimGM6mb.sf2" and soundfont.parent.name == "pretty_midi"
    assert record["settings"]["max_new_notes"] == 16 and record["generated_notes"] == 16


@pytest.mark.parametrize("mode", ["inpaint", "harmonize", "progression"])
def test_controlled_modes_from_the_command_line(cli, capsys, tiny_model_dir, tmp_path, mode):
    from tokenization import GigaPianoTokenizer

    output = tmp_path / f"{mode}.mid"
    code, _, err = cli(
        capsys, "--model", str(tiny_model_dir), "--prompt", str(FUR_ELISE), "--mode", mode,
        "--output", str(output), "--max_new_notes", "8", "--seed", "3", "--velocity", "simulated",
    )  # fmt: skip
    assert code == 0, err
    tokenizer = GigaPianoTokenizer()
    notes = tokenizer.ids_to_notes(tokenizer.encode_midi(output))
    source = tokenizer.ids_to_notes(tokenizer.encode_midi(FUR_ELISE))
    if mode == "inpaint":
        assert [(n.dt, n.dur) for n in notes] == [(n.dt, n.dur) for n in source[:8]]
    elif mode == "progression":
        assert [n.dt for n in notes[len(source) :]] == [16] * 8  # default step 256 ms
    else:
        assert len(notes) == 8 * 3  # 8 melody notes, 2 chord notes under each
