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
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder (config, safetensors, model code, tokenizer files) holding a tiny *random* GIGA-Piano.

    TODO(training issue): once the training issue ships a trained tiny model, return its folder here so the
    generation end-to-end tests run on real weights.
    """
    import torch

    from modeling_gigapiano import GigaPianoConfig, GigaPianoForCausalLM
    from tokenization import GigaPianoTokenizer

    folder = tmp_path_factory.mktemp("tiny-gigapiano")
    torch.manual_seed(0)
    GigaPianoForCausalLM(GigaPianoConfig.from_preset("tiny")).save_pretrained(folder)
    GigaPianoTokenizer().save_pretrained(folder)
    return folder
