"""The sequence style classifier (the check on the forest's ceiling) and its report, on synthetic windows."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gigapiano.evaluation.arguments import GigaPianoEvaluationArguments
from gigapiano.evaluation.classifier import LabelledWindows, score_classifier
from gigapiano.evaluation.classifier_check import (
    REPORT_START,
    ClassifierCheckArguments,
    main,
    run_classifier_check,
    write_classifier_check,
)
from gigapiano.evaluation.invariant_features import scale_tempo, transpose
from gigapiano.evaluation.sequence_classifier import (
    balanced_accuracy,
    encode_window,
    train_sequence_classifier,
)


def ids(notes) -> list[int]:
    return [token for note in notes for token in (127, *note)]


def random_window(seed: int, notes: int = 64) -> list[int]:
    """Chords, varied rhythm and pitches; dt and dur below 64 so that doubling the tempo is exact."""
    rng = np.random.default_rng(seed)
    return ids(
        (int(rng.choice([0, 0, rng.integers(1, 30)])), int(rng.integers(1, 40)), int(rng.integers(40, 70)))
        for _ in range(notes)
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_encoding_ignores_key_exactly_and_tempo_up_to_rounding(seed):
    window = random_window(seed)
    categories, values = encode_window(window, 64)
    assert categories.shape == values.shape == (64, 3) and categories.dtype == np.int64
    assert (categories[:, 0] < 24).all() and values[:, 0].any() and np.isfinite(values).all()
    for shift in (-5, 1, 7):  # bit for bit the same in every key
        moved_categories, moved_values = encode_window(transpose(window, shift), 64)
        assert np.array_equal(moved_categories, categories) and np.array_equal(moved_values, values)
    slower_categories, slower_values = encode_window(scale_tempo(window, 2), 64)  # exact doubling
    assert np.array_equal(slower_categories, categories) and np.allclose(slower_values, values, atol=1e-6)
    rounded_categories, rounded_values = encode_window(scale_tempo(window, 1.5), 64)
    assert np.array_equal(rounded_categories, categories)  # chords stay chords: no pitch input moves
    assert np.array_equal(rounded_values[:, 0], values[:, 0]) and np.abs(rounded_values - values).max() < 0.5
    other_categories, _ = encode_window(random_window(seed + 10), 64)
    assert not np.array_equal(other_categories, categories)


def test_short_and_empty_windows_are_padded_with_zeros():
    categories, values = encode_window(random_window(0, 10), 32)
    assert categories[:10].any() and not categories[10:].any() and not values[10:].any()
    empty_categories, empty_values = encode_window([], 32)
    assert not empty_categories.any() and not empty_values.any()


def _style_pieces(seed: int, chordal: bool, count: int = 3) -> list[tuple[str, list[int]]]:
    rng = np.random.default_rng(seed)
    pieces = []
    for k in range(count):
        if chordal:  # slow chords with leaps
            notes = [
                (int(rng.choice([0, 30])), int(rng.integers(8, 20)), int(rng.integers(40, 64)))
                for _ in range(96)
            ]
        else:  # fast stepwise runs
            start = int(rng.integers(50, 62))
            notes = [(int(rng.integers(2, 6)), 2, start + (i % 8) * 2) for i in range(96)]
        pieces.append((f"{seed}-{k}.midi", ids(notes)))
    return pieces


def _windows(seed: int, count: int, stride: int | None = None) -> LabelledWindows:
    pieces = {"chords": _style_pieces(seed, True, count), "runs": _style_pieces(seed + 1, False, count)}
    return LabelledWindows.from_pieces(pieces, 16, stride)


def test_network_learns_clear_styles_and_keeps_its_best_validation_epoch():
    classifier = train_sequence_classifier(
        _windows(0, 4, 4), _windows(10, 2), epochs=2, batch_size=16, progress=False
    )
    assert classifier.styles == ["chords", "runs"] and classifier.window_notes == 16
    assert [h["epoch"] for h in classifier.history] == [1, 2] and 1 <= classifier.best_epoch <= 2
    best = max(h["validation"] for h in classifier.history)
    assert classifier.history[classifier.best_epoch - 1]["validation"] == best
    test = _windows(20, 2)
    assert balanced_accuracy(classifier.predict(test.windows), test.styles) == 1.0
    probabilities = classifier.predict_proba(test.windows)
    assert probabilities.shape == (len(test.windows), 2) and np.allclose(probabilities.sum(1), 1, atol=1e-5)
    scores = score_classifier(classifier, test, resamples=50)  # the forest's scorer takes it as it is
    assert scores["accuracy"]["value"] == 1.0
    assert scores["perturbations"]["transpose +1"]["label_change_rate"]["value"] == 0.0
    assert classifier.predict([]) == [] and not classifier.net.training


def test_network_training_refuses_one_style_or_no_validation():
    one = LabelledWindows.from_pieces({"runs": _style_pieces(1, False)}, 16)
    with pytest.raises(ValueError, match="at least two styles"):
        train_sequence_classifier(one, _windows(10, 1), progress=False)
    with pytest.raises(ValueError, match="validation windows"):
        train_sequence_classifier(_windows(0, 2), LabelledWindows([], [], []), progress=False)


def test_balanced_accuracy_weights_each_style_equally():
    assert balanced_accuracy(["a", "a", "a", "b"], ["a", "a", "a", "a"]) == 0.75
    assert balanced_accuracy(["a", "b", "b", "b"], ["a", "b", "b", "a"]) == pytest.approx(0.75)


def test_check_runs_on_a_small_maestro_like_folder_and_writes_its_report(tmp_path, monkeypatch):
    """The whole check on synthetic performances: both classifiers, both splits, the markdown and JSON."""
    from gigapiano.evaluation import classifier_check as module
    from gigapiano.evaluation.data import EvaluationData

    def fake_data(styles, base_style, *args):
        splits = {
            style: {
                split: _style_pieces(seed + 100 * i, style == "baroque", 2)
                for i, split in enumerate(("train", "validation", "test"))
            }
            for seed, style in enumerate(styles)
        }
        return EvaluationData(splits, base_style, [], {})

    monkeypatch.setattr("gigapiano.evaluation.data.load_evaluation_data", fake_data)
    torch.manual_seed(0)
    args = GigaPianoEvaluationArguments(
        styles=["baroque", "romantic"], new_notes=16, bootstrap_resamples=50, progress=False, num_threads=1
    )
    results = run_classifier_check(args, ClassifierCheckArguments(epochs=1, stride_notes=4), "cmd")
    assert set(results["scores"]) == {"forest", "network"}
    assert set(results["scores"]["network"]) == {"validation", "test"}
    assert results["train_windows"]["network"]["baroque"] > results["train_windows"]["forest"]["baroque"] > 0
    path = tmp_path / "check.md"
    written = write_classifier_check(path, results)
    text = path.read_text()
    assert written == [path, path.with_suffix(".json")] and text.count(REPORT_START) == 1
    assert "| sequence network | test |" in text and "| forest (79 features) | validation |" in text
    write_classifier_check(path, results)  # rewriting replaces the block
    assert path.read_text().count(REPORT_START) == 1
    assert json.loads(path.with_suffix(".json").read_text())["network_best_epoch"] == 1
    assert module.COMMAND_DEFAULTS["output"] == "docs/classifier_check.md"


def test_bad_flags_give_one_line(capsys):
    with pytest.raises(ValueError, match="at least 1"):
        ClassifierCheckArguments(epochs=0)
    for argv in (["--epochs", "many"], ["--stride_notes", "0"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:")
