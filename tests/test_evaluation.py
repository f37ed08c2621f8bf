"""The style evaluation: memorisation check, prompts, classifier, model loading and the command end to end."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from gigapiano.evaluation import CopyIndex, StyleClassifier, load_or_train_classifier, train_style_classifier
from gigapiano.evaluation.__main__ import main
from gigapiano.evaluation.models import adapter_base, check_model_folders, load_evaluation_model
from gigapiano.evaluation.prompts import excerpt_starts, prompts_from_test_pieces
from gigapiano.evaluation.report import BEGIN_MARKER, END_MARKER, write_report
from gigapiano.evaluation.validation import validation_metrics

STYLES = ("baroque", "romantic", "rachmaninoff")
# Three styles of the shared fake MAESTRO (at least three pieces each, so every split gets a piece).
FAKE_STYLE_COMPOSERS = {
    "baroque": ["Johann Sebastian Bach"],
    "romantic": ["Frédéric Chopin"],
    "rachmaninoff": ["Franz Liszt", "Johann Sebastian Bach / Ferruccio Busoni"],
}


def ids(notes) -> list[int]:
    """`(dt, dur, pitch)` notes -> token ids."""
    return [token for note in notes for token in (127, *note)]


# ----------------------------------------------------------------------------------------------------------
# memorisation
# ----------------------------------------------------------------------------------------------------------


def test_longest_copied_run_is_found_with_its_source():
    piece_a = [(4, 4, 60 + k) for k in range(20)]
    piece_b = [(2, 8, 50 + (k * 7) % 12) for k in range(30)]
    index = CopyIndex([ids(piece_a), ids(piece_b)], names=["a.midi", "b.midi"])
    # 3 new notes, then notes 10..16 of piece b (7 notes), then a note b has elsewhere but not next.
    query = [(0, 1, 100), (1, 1, 101), (5, 5, 30), *piece_b[10:17], (9, 9, 9)]
    run = index.longest_copied_run(ids(query))
    assert (run.length, run.query_start, run.source, run.source_start) == (7, 3, "b.midi", 10)
    assert index.num_notes == 50
    # A run never crosses from one training piece into the next.
    across = index.longest_copied_run(ids(piece_a[-3:] + piece_b[:5]))
    assert across.length == 5 and across.source == "b.midi"
    assert index.longest_copied_run(ids([(1, 1, 1)])).length == 0
    assert index.longest_copied_run([]).length == 0


def test_copy_key_decides_whether_durations_count():
    piece = [(4, 4, 60), (4, 4, 62), (4, 4, 64), (4, 4, 65)]
    query = ids([(4, 9, 60), (4, 9, 62), (4, 9, 64)])  # same pitches and timing, other durations
    assert CopyIndex([ids(piece)]).longest_copied_run(query).length == 0
    assert CopyIndex([ids(piece)], key="dt_pitch").longest_copied_run(query).length == 3
    with pytest.raises(ValueError, match="copy key"):
        CopyIndex([ids(piece)], key="pitch")


def test_copy_index_agrees_with_brute_force():
    rng = random.Random(3)

    def brute(query, corpus):
        best = 0
        for piece in corpus:
            for i in range(len(query)):
                for j in range(len(piece)):
                    length = 0
                    while (
                        i + length < len(query)
                        and j + length < len(piece)
                        and query[i + length] == piece[j + length]
                    ):
                        length += 1
                    best = max(best, length)
        return best

    def note():
        return (rng.randint(0, 1), 1, rng.randint(60, 61))  # a tiny alphabet: many partial matches

    for _ in range(40):
        corpus = [[note() for _ in range(rng.randint(0, 25))] for _ in range(rng.randint(1, 3))]
        query = [note() for _ in range(rng.randint(1, 15))]
        assert CopyIndex([ids(p) for p in corpus]).longest_copied_run(ids(query)).length == brute(
            query, corpus
        )


# ----------------------------------------------------------------------------------------------------------
# prompts
# ----------------------------------------------------------------------------------------------------------


def test_prompts_are_spread_excerpts_with_their_real_continuation():
    assert excerpt_starts(100, 30, 3) == [0, 35, 70]
    assert excerpt_starts(20, 30, 3) == [0]
    assert excerpt_starts(100, 30, 1) == [0]
    piece = ids([(3, 2, 40 + k % 50) for k in range(100)])
    prompts = prompts_from_test_pieces(
        {"baroque": [("p.midi", piece)], "romantic": [("short.midi", piece[:40])]}, 10, 20, 3
    )
    assert [p.name for p in prompts] == [
        f"baroque: p.midi @ note {n}" for n in (0, 35, 70)
    ]  # short.midi skipped
    second = prompts[1]
    assert second.style == "baroque" and second.ids[:4] == [127, 0, 2, 40 + 35 % 50]  # first dt reset to 0
    assert second.ids[4:] == piece[4 * 36 : 4 * 45]
    assert second.real_continuation == piece[4 * 45 : 4 * 65]


# ----------------------------------------------------------------------------------------------------------
# classifier
# ----------------------------------------------------------------------------------------------------------


def _style_pieces(seed: int, low: int, dt: int, count: int = 3) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [
        ids(
            [
                (int(rng.integers(0, dt)), int(rng.integers(1, 9)), int(rng.integers(low, low + 15)))
                for _ in range(64)
            ]
        )
        for _ in range(count)
    ]


@pytest.fixture(scope="module")
def toy_classifier() -> StyleClassifier:
    train = {"low": _style_pieces(0, 30, 40), "high": _style_pieces(1, 80, 4)}
    return train_style_classifier(train, window_notes=(16,), seed=0, n_estimators=20)


def test_classifier_separates_clear_styles_and_survives_save_load(toy_classifier, tmp_path):
    test = {"low": _style_pieces(2, 30, 40, 2), "high": _style_pieces(3, 80, 4, 2)}
    windows = {style: [p[: 4 * 16] for p in pieces] for style, pieces in test.items()}
    scores = toy_classifier.score(windows, 16)
    assert scores.accuracy == 1.0 and scores.confusion == [[2, 0], [0, 2]]
    path = toy_classifier.save(tmp_path / "classifier.joblib")
    loaded = StyleClassifier.load(path)
    flat = windows["low"] + windows["high"]
    assert loaded.predict(flat) == toy_classifier.predict(flat) == ["low", "low", "high", "high"]
    assert np.allclose(loaded.predict_proba(flat), toy_classifier.predict_proba(flat))
    with pytest.raises(ValueError, match="not among"):
        toy_classifier.score({"jazz": flat}, 16)


def test_classifier_is_cached_by_fingerprint(tmp_path):
    train = {"low": _style_pieces(0, 30, 40), "high": _style_pieces(1, 80, 4)}
    first = load_or_train_classifier(train, (16,), 0, tmp_path)
    files = list(tmp_path.glob("*.joblib"))
    assert len(files) == 1 and first.fingerprint in files[0].name
    again = load_or_train_classifier(train, (16,), 0, tmp_path)
    assert again.fingerprint == first.fingerprint and len(list(tmp_path.glob("*.joblib"))) == 1
    load_or_train_classifier(train, (16,), 1, tmp_path)  # another seed: another classifier
    assert len(list(tmp_path.glob("*.joblib"))) == 2


# ----------------------------------------------------------------------------------------------------------
# models
# ----------------------------------------------------------------------------------------------------------


def _save_tiny(folder: Path, seed: int) -> Path:
    from modeling_gigapiano import GigaPianoConfig, GigaPianoForCausalLM
    from tokenization import GigaPianoTokenizer

    torch.manual_seed(seed)
    GigaPianoForCausalLM(GigaPianoConfig.from_preset("tiny")).save_pretrained(folder)
    GigaPianoTokenizer().save_pretrained(folder)
    return folder


def _save_lora(folder: Path, base: Path, recorded_base: str) -> Path:
    from peft import LoraConfig, get_peft_model

    from modeling_gigapiano import GigaPianoForCausalLM

    torch.manual_seed(7)
    model = get_peft_model(
        GigaPianoForCausalLM.from_pretrained(base),
        LoraConfig(r=2, lora_alpha=4, target_modules=["qkv_proj", "out_proj"], init_lora_weights=False),
    )
    model.peft_config["default"].base_model_name_or_path = recorded_base
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    """base, baroque and romantic as tiny full models; rachmaninoff as a LoRA adapter whose recorded base
    path no longer exists (as after moving the models folder)."""
    root = tmp_path_factory.mktemp("models")
    for seed, name in enumerate(("base", "baroque", "romantic")):
        _save_tiny(root / f"gigapiano-{name}", seed)
    _save_lora(root / "gigapiano-rachmaninoff", root / "gigapiano-base", "/elsewhere/runs/gigapiano-base")
    return root


def test_missing_model_folders_are_named_in_one_error(models_dir, tmp_path):
    assert set(check_model_folders(models_dir, ["base", *STYLES])) == {"base", *STYLES}
    with pytest.raises(FileNotFoundError, match="gigapiano-gothic") as error:
        check_model_folders(models_dir, ["base", "gothic"])
    assert "\n" not in str(error.value)


def test_moved_lora_adapter_finds_its_base_and_merges(models_dir):
    adapter = models_dir / "gigapiano-rachmaninoff"
    assert adapter_base(adapter) == models_dir / "gigapiano-base"
    assert adapter_base(models_dir / "gigapiano-baroque") is None
    merged = load_evaluation_model(adapter, "cpu")
    base = load_evaluation_model(models_dir / "gigapiano-base", "cpu")
    probe = torch.tensor([ids([(1, 2, 60), (0, 3, 64)])])
    assert not hasattr(merged, "peft_config")  # merged into a plain model
    assert not torch.allclose(merged(input_ids=probe).logits, base(input_ids=probe).logits)


def test_fp16_weights_are_evaluated_in_float32(tmp_path):
    from modeling_gigapiano import GigaPianoConfig, GigaPianoForCausalLM

    GigaPianoForCausalLM(GigaPianoConfig.from_preset("tiny")).half().save_pretrained(tmp_path / "fp16")
    assert load_evaluation_model(tmp_path / "fp16", "cpu").dtype == torch.float32


def test_validation_metrics_on_a_tiny_model(models_dir):
    model = load_evaluation_model(models_dir / "gigapiano-base", "cpu")
    pieces = [ids([(k % 5, 3, 60 + k % 12) for k in range(40)]), ids([(1, 1, 50)] * 20)]
    result = validation_metrics(model, pieces, batch_size=2)
    assert result["num_windows"] == 3  # 16-note windows: two from the 40-note piece, one from the other
    assert result["num_tokens"] == 3 * 63
    assert result["perplexity"] == pytest.approx(np.exp(result["loss"]))
    assert 0.0 <= result["accuracy"] <= 1.0 and result["loss"] > 0
    assert validation_metrics(model, pieces, max_windows=1)["num_windows"] == 1
    with pytest.raises(ValueError, match="full window"):
        validation_metrics(model, [ids([(1, 1, 50)] * 3)])


# ----------------------------------------------------------------------------------------------------------
# the command
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture
def restore_threads():
    """Puts torch's thread count back after a test that sets it (--num_threads is process-wide)."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def styles_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("styles")
    for name, composers in FAKE_STYLE_COMPOSERS.items():
        listed = "\n".join(f'  - "{composer}"' for composer in composers)
        (folder / f"{name}.yaml").write_text(
            f'name: {name}\ndisplay_name: "{name}"\ncomposers:\n{listed}\npieces: all\n', encoding="utf-8"
        )
    return folder


def test_command_writes_a_report_with_every_section(
    fake_maestro_root, models_dir, styles_dir, tmp_path, capsys
):
    output = tmp_path / "docs" / "evaluation.md"
    output.parent.mkdir()
    output.write_text(
        f"# Evaluation\n\nHand-written method.\n\n{BEGIN_MARKER}\nold numbers\n{END_MARKER}\n\nTail.\n"
    )
    argv = [
        "--maestro_dir", str(fake_maestro_root), "--models_dir", str(models_dir), "--output", str(output),
        "--styles_dir", str(styles_dir), "--cache_dir", str(tmp_path / "cache"), "--samples", "2",
        "--prompt_notes", "8", "--new_notes", "8", "--classifier_window_notes", "16", "--seed", "5",
        "--progress", "false", "--log_level", "warning", "--num_threads", "1",  # tiny ops: 1 is fastest
    ]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [
        str(output),
        str(output.with_suffix(".json")),
        *(str(tmp_path / "docs" / f"evaluation_{n}.png") for n in ("hits", "overlap")),
    ]
    text = output.read_text()
    assert text.startswith("# Evaluation\n\nHand-written method.") and text.rstrip().endswith("Tail.")
    assert "old numbers" not in text and text.count(BEGIN_MARKER) == 1
    for heading in (
        "Does style fine-tuning work?", "Style classifier", "Validation loss, accuracy and perplexity",
        "Style-hit matrix", "Feature distances", "Well-formedness", "Memorisation",
    ):  # fmt: skip
        assert f"### {heading}" in text
    assert "--new_notes 8" in text and "evaluation_hits.png" in text
    assert "Real continuations classified as the style of their own piece: baroque" in text
    for png in printed[2:]:
        assert Path(png).read_bytes()[:4] == b"\x89PNG"

    results = json.loads(output.with_suffix(".json").read_text())
    prompts = results["prompts"]
    assert prompts[-1]["name"] == "file: fur_elise.mid" and prompts[-1]["style"] is None
    assert {p["style"] for p in prompts[:-1]} == set(STYLES)
    assert set(results["validation"]) == {"base", *STYLES}
    assert all(results["validation"][m][s]["num_windows"] > 0 for m in results["validation"] for s in STYLES)
    assert list(results["hits"]) == ["real", "base", *STYLES]
    for rates in results["hits"].values():
        assert sum(rates.values()) == pytest.approx(1.0)
    assert results["well_formed"] == {name: 1.0 for name in ("base", *STYLES)}
    assert set(results["verdicts"]) == set(STYLES)
    runs = results["memorization"]["base"]["runs"]
    assert len(runs) == 2 * len(prompts) and all(0 <= run <= 8 for run in runs)
    assert results["classifier"][0]["window_notes"] == 16 and results["classifier"][1]["window_notes"] == 8
    assert 0.0 <= results["distances"]["base"]["baroque"]["overlap_mean"] <= 1.0

    # The classifier alone, reusing the cached forest: one line per window length.
    assert main([*argv, "--classifier_only"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["test windows of 16 notes", "test windows of 8 notes"]


def test_command_errors_are_one_line(fake_maestro_root, models_dir, tmp_path, capsys):
    assert main(["--maestro_dir", str(fake_maestro_root), "--models_dir", str(tmp_path / "none")]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: Missing model folder(s)")
    assert main(["--models_dir", str(models_dir), "--samples", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --samples must be at least 1, got 0."


def test_write_report_creates_or_appends_without_losing_text(tmp_path):
    block = f"{BEGIN_MARKER}\nnumbers\n{END_MARKER}\n"
    fresh = write_report(tmp_path / "new.md", block)
    assert fresh.read_text() == f"# Style evaluation\n\n{block}"
    existing = tmp_path / "old.md"
    existing.write_text("# Notes\n\nkeep me\n")
    assert write_report(existing, block).read_text() == f"# Notes\n\nkeep me\n\n{block}"
