"""Shared pytest fixtures."""

from __future__ import annotations

import csv
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

# ----------------------------------------------------------------------------------------------------------
# Data fixtures (gigapiano.data tests): a tiny fake MAESTRO folder written by the tests themselves.
# ----------------------------------------------------------------------------------------------------------

#: The shared folder next to the repository (real MAESTRO subset and upstream references), if present.
SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"

MAESTRO_COLUMNS = (
    "canonical_composer",
    "canonical_title",
    "split",
    "year",
    "midi_filename",
    "audio_filename",
    "duration",
)

#: (composer, title, MAESTRO split, year, number of notes) of the fake catalogue. Bach's "Partita No. 2"
#: is performed twice (same composition, two files); one row is an arrangement credited "Bach / Busoni".
FAKE_MAESTRO_ROWS: tuple[tuple[str, str, str, int, int], ...] = (
    ("Johann Sebastian Bach", "Prelude and Fugue in C Major, BWV 846", "train", 2004, 90),
    ("Johann Sebastian Bach", "Partita No. 2 in C Minor, BWV 826", "train", 2006, 70),
    ("Johann Sebastian Bach", "Partita No. 2 in C minor, BWV 826", "validation", 2011, 80),
    ("Johann Sebastian Bach", "French Suite No. 5, BWV 816", "test", 2013, 60),
    ("Johann Sebastian Bach", "Toccata in E Minor, BWV 914", "train", 2015, 75),
    ("Johann Sebastian Bach", "English Suite No. 3, BWV 808", "train", 2017, 65),
    ("Johann Sebastian Bach / Ferruccio Busoni", "Chaconne in D Minor", "train", 2018, 50),
    ("Frédéric Chopin", "Ballade No. 1 in G Minor, Op. 23", "train", 2004, 85),
    ("Frédéric Chopin", "Nocturne in E-flat Major, Op. 9 No. 2", "validation", 2008, 55),
    ("Frédéric Chopin", "Étude Op. 10 No. 4", "test", 2009, 60),
    ("Frédéric Chopin", "Scherzo No. 2, Op. 31", "train", 2014, 95),
    ("Franz Liszt", "Mephisto Waltz No. 1", "train", 2015, 70),
    ("Franz Liszt", "La Campanella", "test", 2018, 60),
)


def write_test_midi(path: Path, n_notes: int, seed: int = 0, ticks_per_beat: int = 480) -> Path:
    """Writes a small piano MIDI file (one track, 120 bpm) with chords, runs and varied durations."""
    import mido

    rng = random.Random(seed)
    notes, onset = [], 0
    for _ in range(n_notes):
        onset += rng.choice((0, 0, 60, 120, 240, 480))
        notes.append((onset, rng.randint(60, 600), rng.randint(36, 96), rng.randint(40, 110)))
    events = []
    for start, duration, pitch, velocity in notes:
        events.append((start, 1, mido.Message("note_on", note=pitch, velocity=velocity)))
        events.append((start + duration, 0, mido.Message("note_off", note=pitch, velocity=0)))
    events.sort(key=lambda event: (event[0], event[1]))
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500_000, time=0)])
    previous = 0
    for tick, _, message in events:
        track.append(message.copy(time=tick - previous))
        previous = tick
    midi = mido.MidiFile(ticks_per_beat=ticks_per_beat)
    midi.tracks.append(track)
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.save(str(path))
    return path


def write_fake_maestro(
    folder: Path, rows: Sequence[tuple[str, str, str, int, int]] = FAKE_MAESTRO_ROWS, write_files: bool = True
) -> Path:
    """Writes ``folder/maestro-v3.0.0/`` in MAESTRO's layout (CSV + year folders) and returns the root."""
    root = folder / "maestro-v3.0.0"
    root.mkdir(parents=True, exist_ok=True)
    with (root / "maestro-v3.0.0.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(MAESTRO_COLUMNS)
        for index, (composer, title, split, year, n_notes) in enumerate(rows):
            stem = f"{year}/MIDI-Fake_{index:03d}_R1_{year}_wav--{index % 7 + 1}"
            writer.writerow((composer, title, split, year, f"{stem}.midi", f"{stem}.wav", 60.0 + index))
            if write_files:
                write_test_midi(root / f"{stem}.midi", n_notes, seed=index)
    return root


@pytest.fixture(scope="session")
def fake_maestro_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only fake MAESTRO root shared by the data tests (do not modify it; copy it first)."""
    return write_fake_maestro(tmp_path_factory.mktemp("fake-maestro"))


@pytest.fixture
def make_fake_maestro(tmp_path: Path) -> Callable[..., Path]:
    """Factory writing a fresh fake MAESTRO under ``tmp_path``: ``make(rows=..., write_files=...)``."""

    def make(
        rows: Sequence[tuple[str, str, str, int, int]] = FAKE_MAESTRO_ROWS, write_files: bool = True
    ) -> Path:
        return write_fake_maestro(tmp_path / "maestro-copy", rows, write_files)

    return make


@pytest.fixture
def shared_dir() -> Path:
    """The real ``../shared`` folder; skips the test when it is absent."""
    if not (SHARED_DIR / "maestro-subset").is_dir():
        pytest.skip(f"needs the shared MAESTRO subset at {SHARED_DIR} (absent on this machine)")
    return SHARED_DIR


# ----------------------------------------------------------------------------------------------------------
# Generation fixtures: a tiny GIGA-Piano saved the way a trained model folder is.
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_model_dir(trained_tiny_run: Path) -> Path:
    """A trained tiny model folder (config, safetensors, model code, tokenizer files): `trained_tiny_run`."""
    return trained_tiny_run


# ----------------------------------------------------------------------------------------------------------
# Trained-run fixtures (Hub, handler and demo tests): real train.py run folders of a tiny GIGA-Piano.
# ----------------------------------------------------------------------------------------------------------


def _train_tiny_run(maestro_root: Path, output_dir: Path, *extra: str) -> Path:
    """Runs train.py's library entry point on the fake MAESTRO (style baroque, all Bach pieces), 1 thread."""
    import torch

    from gigapiano.training import parse_training_args, run_training

    argv = [
        "--style", "baroque", "--pieces", "all",
        "--maestro_dir", str(maestro_root),
        "--cache_dir", str(output_dir.parent / "data-cache"),
        "--output_dir", str(output_dir),
        "--window_length", "64", "--window_stride", "32",
        "--validation_fraction", "0.2",
        "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "8",
        "--learning_rate", "3e-3",
        "--logging_steps", "1", "--eval_strategy", "no", "--save_steps", "1000",
        "--report_to", "none", "--disable_tqdm", "true",
        "--dropout", "0", "--seed", "7",
        *extra,
    ]  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run_training(*parse_training_args(argv)).output_dir
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def trained_tiny_run(fake_maestro_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished `train.py` run folder (do not modify it; copy it first): a tiny GIGA-Piano (64-token
    context) trained from scratch for 40 steps on the fake MAESTRO's Bach pieces as style "baroque", with
    weights, tokenizer, code files and every record (all_results.json, run_info.json, pieces.json,
    style.yaml, trainer_state.json, loss_curves.png, README.md draft). About 15 s on one CPU thread."""
    output = tmp_path_factory.mktemp("trained-tiny") / "gigapiano-tiny"
    return _train_tiny_run(fake_maestro_root, output, "--base_model", "scratch:tiny", "--max_steps", "40")


@pytest.fixture(scope="session")
def trained_tiny_lora_run(
    trained_tiny_run: Path, fake_maestro_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A finished LoRA run folder (adapter_config.json + adapter_model.safetensors, records) trained for 4
    steps on top of `trained_tiny_run`, whose absolute path its adapter_config.json records as the base."""
    output = tmp_path_factory.mktemp("trained-tiny-lora") / "gigapiano-tiny-lora"
    return _train_tiny_run(
        fake_maestro_root, output, "--base_model", str(trained_tiny_run), "--lora", "--lora_rank", "4",
        "--learning_rate", "1e-2", "--max_steps", "4",
    )  # fmt: skip


#: Hub ids the published test repos are assembled for (nothing is uploaded; see tests/test_hub_upload.py).
TINY_REPO_ID = "gigapiano-test/gigapiano-tiny"
TINY_LORA_REPO_ID = "gigapiano-test/gigapiano-tiny-lora"


@pytest.fixture(scope="session")
def published_tiny_repo(trained_tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Hub repo folder `publish.py --dry_run` writes for `trained_tiny_run` (repo id `TINY_REPO_ID`)."""
    from gigapiano.hub.repo_folder import assemble_model_repo

    output = tmp_path_factory.mktemp("published") / "gigapiano-tiny"
    return assemble_model_repo(trained_tiny_run, output, TINY_REPO_ID).path


@pytest.fixture(scope="session")
def published_tiny_lora_repo(trained_tiny_lora_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repo folder of `trained_tiny_lora_run`: an adapter whose base is the Hub id `TINY_REPO_ID`."""
    from gigapiano.hub.repo_folder import assemble_model_repo

    output = tmp_path_factory.mktemp("published-lora") / "gigapiano-tiny-lora"
    folder = assemble_model_repo(trained_tiny_lora_run, output, TINY_LORA_REPO_ID, base_repo_id=TINY_REPO_ID)
    return folder.path


#: Prepended to every `run_isolated` script: importing the project's own packages fails, so the script
#: proves that a published folder works with only what a stranger installs from PyPI.
BLOCK_PROJECT_IMPORTS = """
import importlib.abc, sys
class _BlockProjectImports(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("gigapiano", "tokenization", "modeling_gigapiano"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: Hub users lack the project)")
        return None
sys.meta_path.insert(0, _BlockProjectImports())
"""


@pytest.fixture
def run_isolated(tmp_path: Path) -> Callable[..., object]:
    """Runs a Python script in a fresh process like a Hub user's: offline (`HF_HUB_OFFLINE=1`), without the
    project on the path and with its packages unimportable, one CPU thread, a private module cache.

    Call as ``run_isolated(script, cwd=None, env=None, timeout=300) -> subprocess.CompletedProcess``.
    """
    import os
    import subprocess
    import sys

    def run(script: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300):
        full_env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "PYTHONPATH": "",
            "OMP_NUM_THREADS": "1",
            "HF_MODULES_CACHE": str(tmp_path / "hf-modules"),
            "TRANSFORMERS_VERBOSITY": "error",
            "TOKENIZERS_PARALLELISM": "false",
            **(env or {}),
        }
        return subprocess.run(
            [sys.executable, "-c", BLOCK_PROJECT_IMPORTS + script],
            cwd=cwd or tmp_path,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module: on a shared 2-core machine, two threads make tiny-model decoding ~40x
    slower. Modules opt in with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
