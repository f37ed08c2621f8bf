"""Generation outputs: file naming and overwrite protection, provenance, MIDI round trip, WAV, piano roll."""

from __future__ import annotations

import json
import shutil
import wave

import numpy as np
import pytest
import torch

from gigapiano.generation import audio as audio_module
from gigapiano.generation import generate_continuation
from gigapiano.generation.audio import AudioUnavailableError, check_synthesizer, find_soundfont, render_wav
from gigapiano.generation.outputs import (
    check_writable,
    marker_text,
    output_files,
    provenance,
    roll_panel,
    write_json,
    write_midi,
)
from gigapiano.generation.pianoroll import GENERATED_COLOUR, GIVEN_COLOUR, save_pianoroll
from modeling_gigapiano import GigaPianoConfig, GigaPianoForCausalLM

tokenization = pytest.importorskip("tokenization")


@pytest.fixture(scope="module")
def tokenizer():
    return tokenization.GigaPianoTokenizer()


@pytest.fixture(scope="module")
def result():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = GigaPianoForCausalLM(GigaPianoConfig.from_preset("tiny")).eval()
    prompt = [127, 0, 10, 72, 127, 0, 10, 64, 127, 20, 12, 74]
    yield generate_continuation(model, prompt, max_new_notes=6, seed=9, temperature=0.8)
    torch.set_num_threads(threads)


def synth_available() -> str | None:
    """None when WAV rendering can work here, else the reason it cannot."""
    try:
        find_soundfont()
        check_synthesizer()
    except AudioUnavailableError as error:
        return str(error)
    return None


def test_output_names_number_variations_and_add_suffixes(tmp_path):
    (single,) = output_files(tmp_path / "piece", [""], wav=True, pianoroll=False)
    assert single.midi.name == "piece.mid" and single.json.name == "piece.json"
    assert single.wav.name == "piece.wav" and single.png is None
    names = [f.midi.name for f in output_files(tmp_path / "x.midi", ["baroque-1", "baroque-2"])]
    assert names == ["x-baroque-1.midi", "x-baroque-2.midi"]


def test_existing_outputs_are_kept_unless_overwrite(tmp_path):
    existing = tmp_path / "out.mid"
    existing.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="--overwrite"):
        check_writable([tmp_path / "new" / "a.json", existing], overwrite=False)
    check_writable([tmp_path / "new" / "a.json", existing], overwrite=True)
    assert (tmp_path / "new").is_dir() and existing.read_bytes() == b"keep me"
    with pytest.raises(ValueError, match="collide"):
        check_writable([existing, existing], overwrite=True)


def test_midi_round_trips_exactly_and_carries_provenance(tmp_path, tokenizer, result):
    import symusic

    record = provenance(result, 0, model="tiny-test", style=None, velocity=90)
    path = write_midi(tokenizer, result.pieces[0], tmp_path / "x.mid", 90, marker_text(record))
    assert tokenizer.encode_midi(path) == result.pieces[0]  # exact milliseconds: identical ids
    score = symusic.Score(str(path))
    assert [track.program for track in score.tracks] == [0] and not score.tracks[0].is_drum
    markers = " ".join(marker.text for marker in score.markers)
    assert "seed=9" in markers and "mode=continue" in markers and "temperature=0.8" in markers
    assert not list(tmp_path.glob(".*partial*"))


def test_json_sidecar_has_what_reproduces_the_piece(tmp_path, result):
    record = provenance(result, 0, model="tiny-test", style="baroque", velocity="simulated")
    saved = json.loads(write_json(record, tmp_path / "x.json").read_text())
    assert saved["seed"] == 9 and saved["mode"] == "continue" and saved["style"] == "baroque"
    assert saved["settings"]["max_new_notes"] == 6 and saved["settings"]["temperature"] == 0.8
    assert saved["notes"] == 9 and saved["generated_notes"] == 6
    assert saved["versions"]["torch"] == torch.__version__


def test_sidecar_records_the_note_count_the_run_used(result):
    import dataclasses

    unset = dataclasses.replace(result, settings=dataclasses.replace(result.settings, max_new_notes=None))
    record = provenance(unset, 0, model="tiny")
    assert record["settings"]["max_new_notes"] == 256  # what None meant, not null
    assert provenance(result, 0, model="tiny")["settings"]["max_new_notes"] == 6


def test_pianoroll_png_opens_and_shows_both_colours(tmp_path, tokenizer, result):
    from matplotlib import image
    from matplotlib.colors import to_rgb

    panel = roll_panel(tokenizer, result, 0, "test")
    assert len(panel.given) == 3 and len(panel.generated) == 6
    path = save_pianoroll([panel], tmp_path / "roll.png")
    pixels = image.imread(path)[..., :3]
    assert pixels.ndim == 3 and pixels.shape[0] > 100
    for colour in (GIVEN_COLOUR, GENERATED_COLOUR):
        distance = np.abs(pixels - np.array(to_rgb(colour))).sum(axis=-1)
        assert (distance < 0.05).sum() > 20, colour


def test_missing_soundfont_names_the_audio_extra_and_the_debian_package(monkeypatch, tmp_path):
    monkeypatch.setattr(audio_module, "DEBIAN_SOUNDFONTS", (str(tmp_path / "none.sf2"),))
    monkeypatch.setattr(audio_module, "PACKAGED_SOUNDFONTS", (("no_such_package_here", "x.sf2"),))
    with pytest.raises(AudioUnavailableError, match=r"audio\]\".*fluid-soundfont-gm"):
        find_soundfont()
    with pytest.raises(FileNotFoundError, match="missing.sf2"):
        find_soundfont(tmp_path / "missing.sf2")


def read_wav(path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as handle:
        frames = handle.readframes(handle.getnframes())
        return np.frombuffer(frames, dtype="<i2").reshape(-1, handle.getnchannels()), handle.getframerate()


@pytest.mark.skipif(synth_available() is not None, reason=f"no WAV rendering here: {synth_available()}")
def test_wav_plays_the_notes(tmp_path, tokenizer, result):
    notes = tokenizer.ids_to_timed_notes(result.pieces[0])
    path = render_wav(notes, tmp_path / "x.wav", sample_rate=22_050)
    samples, rate = read_wav(path)
    assert rate == 22_050 and samples.shape[1] == 2
    expected_s = max(note.offset_ms for note in notes) / 1000 + audio_module.RELEASE_TAIL_S
    assert abs(len(samples) / rate - expected_s) < 0.05
    assert np.abs(samples).max() > 1000  # audible, not silence


@pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="the fluidsynth program is not installed")
@pytest.mark.skipif(synth_available() is not None, reason=f"no SoundFont here: {synth_available()}")
def test_wav_falls_back_to_the_fluidsynth_program(tmp_path, tokenizer, result, monkeypatch):
    def unavailable(*args, **kwargs):
        raise AudioUnavailableError("pyfluidsynth is not usable (simulated)")

    monkeypatch.setattr(audio_module, "synthesize", unavailable)
    midi = tokenizer.save_midi(result.pieces[0], tmp_path / "x.mid")
    rendered = audio_module.render_audio([], tmp_path / "x.wav", midi_path=midi)
    assert rendered.synthesizer == "fluidsynth-program"
    samples, _ = read_wav(rendered.path)
    assert np.abs(samples).max() > 1000
    with pytest.raises(AudioUnavailableError, match="pyfluidsynth"):  # the program needs the MIDI file
        render_wav([], tmp_path / "y.wav", midi_path=None, synthesizer="fluidsynth")
    assert not (tmp_path / "y.wav").exists()
