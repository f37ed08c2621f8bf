"""The style evaluation: held-out check, bootstrap, n-gram baseline, invariant classifier features, prompts,
memorisation, model loading, continuations and the command end to end (tiny data and models, seconds)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from gigapiano.evaluation import (
    CopyIndex,
    HeldOutLeakError,
    LabelledWindows,
    NoteNgram,
    check_held_out,
    estimate_key,
    paired_bootstrap,
    piece_bootstrap,
    scale_tempo,
    score_classifier,
    style_features,
    train_style_classifier,
    transpose,
)
from gigapiano.evaluation.__main__ import main
from gigapiano.evaluation.continuations import SamplingSetup, continue_prompts
from gigapiano.evaluation.invariant_features import STYLE_FEATURE_NAMES
from gigapiano.evaluation.models import adapter_base, check_model_folders, load_evaluation_model
from gigapiano.evaluation.musicstats import continuation_stats
from gigapiano.evaluation.prompts import excerpt_starts, prompts_from_test_pieces
from gigapiano.evaluation.report import BEGIN_MARKER, END_MARKER, write_report
from gigapiano.evaluation.validation import ScoredWindows, model_window_losses

STYLES = ("baroque", "romantic", "rachmaninoff")
TIME_FEATURES = 5  # the last entries of the feature vector; all others are pitch features
# Three styles of the shared fake MAESTRO, plus the all-composer base style.
FAKE_STYLE_COMPOSERS = {
    "baroque": ["Johann Sebastian Bach"],
    "romantic": ["Frédéric Chopin"],
    "rachmaninoff": ["Franz Liszt", "Johann Sebastian Bach / Ferruccio Busoni"],
    "maestro": ["*"],
}


def ids(notes) -> list[int]:
    """`(dt, dur, pitch)` notes -> token ids."""
    return [token for note in notes for token in (127, *note)]


def random_piece(seed: int, notes: int = 64, low: int = 40, dt_high: int = 30) -> list[int]:
    """Notes with chords (dt 0), varied rhythm and pitches; dt and dur stay below 64 (doubling is exact)."""
    rng = np.random.default_rng(seed)
    return ids(
        (
            int(rng.choice([0, 0, rng.integers(1, dt_high)])),
            int(rng.integers(1, 40)),
            int(rng.integers(low, low + 30)),
        )
        for _ in range(notes)
    )


# ----------------------------------------------------------------------------------------------------------
# held-out check
# ----------------------------------------------------------------------------------------------------------


def test_held_out_check_raises_when_a_test_composition_is_trained_on():
    groups = {"train/a.midi": 1, "train/b.midi": 2, "test/c.midi": 3, "test/a_again.midi": 1}
    held_out = {"baroque test": ["test/c.midi"]}
    training = {"maestro train split": ["train/a.midi", "train/b.midi"]}
    summary = check_held_out(held_out, training, groups)
    assert (
        summary["passed"] and summary["overlaps"] == [] and summary["held_out_files"] == {"baroque test": 1}
    )
    # another performance of a trained composition (same group), and a file name trained on directly
    leaking = {"baroque test": ["test/c.midi", "test/a_again.midi"], "baroque validation": ["train/b.midi"]}
    with pytest.raises(HeldOutLeakError, match="2 held-out performance") as error:
        check_held_out(leaking, training, groups)
    assert "\n" not in str(error.value) and "test/a_again.midi" in str(error.value)
    recorded = check_held_out(
        leaking, {"models/x/pieces.json": ["unknown.midi", "train/b.midi"]}, groups, "warn"
    )
    assert not recorded["passed"]
    assert recorded["overlaps"] == [
        {"held_out": "baroque validation", "file": "train/b.midi", "source": "models/x/pieces.json",
         "training_file": "train/b.midi"}
    ]  # fmt: skip


# ----------------------------------------------------------------------------------------------------------
# bootstrap
# ----------------------------------------------------------------------------------------------------------


def test_piece_bootstrap_covers_the_estimate_and_is_deterministic():
    rng = np.random.default_rng(0)
    pieces = [f"p{i // 5}" for i in range(60)]  # 12 pieces of 5 items
    values = rng.normal(2.0, 0.5, 60) + np.repeat(rng.normal(0, 0.3, 12), 5)
    tokens = rng.integers(10, 20, 60).astype(float)
    estimate = piece_bootstrap(pieces, values * tokens, tokens, resamples=500, seed=3)
    assert estimate.value == pytest.approx((values * tokens).sum() / tokens.sum())
    assert estimate.low < estimate.value < estimate.high and estimate.pieces == 12
    assert piece_bootstrap(pieces, values * tokens, tokens, resamples=500, seed=3) == estimate
    assert piece_bootstrap(pieces, values * tokens, tokens, resamples=500, seed=4) != estimate
    # a mean of 0/1 hits stays inside [0, 1]; one piece has no spread; no items gives NaN
    hits = piece_bootstrap(pieces, (values > 2).astype(float), resamples=200)
    assert 0 <= hits.low <= hits.value <= hits.high <= 1
    single = piece_bootstrap(["only"] * 4, [1.0, 0.0, 1.0, 1.0])
    assert (single.value, single.low, single.high) == (0.75, 0.75, 0.75)
    assert math.isnan(piece_bootstrap([], []).value)


def test_paired_bootstrap_cancels_shared_piece_effects():
    rng = np.random.default_rng(1)
    pieces = [f"p{i // 4}" for i in range(40)]
    hard = np.repeat(rng.normal(0, 1.0, 10), 4)  # large differences between pieces, shared by both models
    a = hard + 0.2 + rng.normal(0, 0.01, 40)
    b = hard
    paired = paired_bootstrap(pieces, a, b, resamples=500)
    assert paired.value == pytest.approx(0.2, abs=0.01) and paired.excludes_zero
    unpaired_a, unpaired_b = (
        piece_bootstrap(pieces, a, resamples=500),
        piece_bootstrap(pieces, b, resamples=500),
    )
    assert paired.high - paired.low < 0.1 * (unpaired_a.high - unpaired_a.low)
    assert unpaired_a.low < unpaired_b.high  # unpaired intervals overlap although every item differs by 0.2
    with pytest.raises(ValueError, match="one value per item"):
        paired_bootstrap(pieces, a[:-1], b)


# ----------------------------------------------------------------------------------------------------------
# n-gram baseline
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def toy_ngram() -> NoteNgram:
    pieces = [random_piece(seed, 96) for seed in range(12)]
    return NoteNgram.fit(pieces, window_tokens=64)


def test_ngram_distributions_sum_to_one_and_match_the_scored_tokens(toy_ngram):
    window = np.asarray(random_piece(99, 16))
    log_probs = toy_ngram.token_log_probs(window[None, :])
    assert log_probs.shape == (1, 63)
    for position in (1, 2, 3, 4, 17, 30, 63):  # dt, dur, pitch, separator, ...
        distribution = toy_ngram.next_token_distribution(window[:position].tolist())
        assert distribution.shape == (128,) and distribution.sum() == pytest.approx(1.0, abs=1e-9)
        assert (distribution > 0).all()  # add-k: no id is impossible
        assert math.log(distribution[window[position]]) == pytest.approx(log_probs[0, position - 1])
    assert toy_ngram.next_token_distribution(window[:4].tolist())[127] > 0.99  # separators are certain
    nats, tokens = toy_ngram.window_losses(window[None, :])
    assert nats[0] == pytest.approx(-log_probs.sum()) and tokens[0] == 63


def test_ngram_beats_uniform_on_a_repetitive_sequence_and_uses_background_counts():
    motif = [(4, 6, 60), (4, 6, 64), (4, 6, 67), (0, 6, 55), (8, 12, 62)]
    piece = ids(motif * 40)
    model = NoteNgram.fit([piece] * 3, window_tokens=80)
    test = np.asarray(ids(motif * 4))[None, :]
    nats, tokens = model.window_losses(test)
    assert nats[0] / tokens[0] < 0.25 * math.log(128)
    # a style n-gram mixes in its background n-gram as one component, whose data may include the style's
    style = NoteNgram.fit([piece] * 3, window_tokens=80, background=model, background_holds_pieces=True)
    assert style.background is model and style.window_losses(test)[0][0] / tokens[0] < 0.25 * math.log(128)
    with pytest.raises(ValueError, match="No training piece"):
        NoteNgram.fit([piece[:40]], window_tokens=80)


def test_ngram_weights_are_fitted_on_whole_held_out_compositions():
    from gigapiano.evaluation.ngram import _held_out_pieces

    windows = [np.zeros((n, 4)) for n in (5, 5, 3, 3, 3, 8, 2, 2, 4, 1)]
    groups = ["a", "a", "b", "b", "b", "c", "d", "d", "e", "f"]
    held = _held_out_pieces(windows, groups)
    assert held and len(held) < len(windows)
    for group in {groups[i] for i in held}:  # every performance of a held-out composition is held out
        assert {i for i, g in enumerate(groups) if g == group} <= set(held)
    assert _held_out_pieces(windows, groups) == held  # deterministic
    assert _held_out_pieces([np.zeros((4, 4))], None) == [0]


# ----------------------------------------------------------------------------------------------------------
# classifier features and classifier
# ----------------------------------------------------------------------------------------------------------


def test_key_estimate_finds_tonic_and_mode():
    c_major = [60, 62, 64, 65, 67, 69, 71, 72, 60, 64, 67, 60]
    a_minor = [57, 59, 60, 62, 64, 65, 68, 69, 57, 60, 64, 57, 64, 68]
    assert estimate_key(c_major)[:2] == (0, True)
    assert estimate_key(a_minor)[:2] == (9, False)
    assert estimate_key([p + 3 for p in c_major])[:2] == (3, True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_style_features_ignore_key_and_tempo(seed):
    window = random_piece(seed, 64)
    features = style_features(window)
    assert features.shape == (len(STYLE_FEATURE_NAMES),) and np.isfinite(features).all() and features.any()
    assert STYLE_FEATURE_NAMES[-TIME_FEATURES] == "polyphony"
    for shift in (-5, -1, 1, 7):  # exactly the same vector in every key
        assert np.array_equal(style_features(transpose(window, shift)), features)
    doubled = style_features(scale_tempo(window, 2))  # twice as slow: the same up to float rounding
    assert np.allclose(doubled, features, rtol=0, atol=1e-9)
    for factor in (0.67, 1.5):  # re-quantised: chords stay chords, so every pitch feature is identical
        scaled = style_features(scale_tempo(window, factor))
        assert np.array_equal(scaled[:-TIME_FEATURES], features[:-TIME_FEATURES])
        assert np.abs(scaled[-TIME_FEATURES:] - features[-TIME_FEATURES:]).max() < 0.3
    other = style_features(random_piece(seed + 10, 64, dt_high=4))
    assert not np.allclose(other, features)


def _style_pieces(seed: int, low: int, dt: int, count: int = 3) -> list[tuple[str, list[int]]]:
    rng = np.random.default_rng(seed)
    pieces = []
    for k in range(count):
        if dt > 10:  # slow and chordal
            notes = [
                (int(rng.choice([0, dt])), int(rng.integers(8, 20)), int(rng.integers(low, low + 24)))
                for _ in range(64)
            ]
        else:  # fast scalar runs
            start = int(rng.integers(low, low + 12))
            notes = [(int(rng.integers(2, dt + 2)), 2, start + (i % 8) * 2) for i in range(64)]
        pieces.append((f"{seed}-{k}.midi", ids(notes)))
    return pieces


def test_classifier_separates_clear_styles_and_measures_robustness():
    train = LabelledWindows.from_pieces(
        {"chords": _style_pieces(0, 40, 30), "runs": _style_pieces(1, 60, 4)}, 16, 8
    )
    classifier = train_style_classifier(train, seed=0, n_estimators=20)
    test = LabelledWindows.from_pieces(
        {"chords": _style_pieces(2, 45, 30, 2), "runs": _style_pieces(3, 50, 4, 2)}, 16
    )
    assert test.pieces[0] == "2-0.midi" and len(set(test.pieces)) == 4
    scores = score_classifier(classifier, test, resamples=100)
    assert scores["accuracy"]["value"] == 1.0 and scores["confusion"] == [[8, 0], [0, 8]]
    assert scores["counts"] == {"chords": 8, "runs": 8} and scores["windows"] == 16
    for name in ("transpose +1", "transpose -1", "tempo x0.67", "tempo x1.5"):
        assert scores["perturbations"][name]["label_change_rate"]["value"] == 0.0
    with pytest.raises(ValueError, match="at least two styles"):
        train_style_classifier(LabelledWindows.from_pieces({"runs": _style_pieces(1, 60, 4)}, 16))


def test_continuation_statistics():
    prompt = ids([(8, 8, 60), (8, 8, 62), (8, 8, 64), (8, 8, 65), (8, 8, 67)])
    # the prompt's motif (+2 +2 +1), then a chord with a semitone and a tritone, and one note off the piano
    continuation = ids(
        [(8, 8, 62), (8, 8, 64), (8, 8, 66), (8, 8, 67), (8, 16, 72), (0, 16, 71), (0, 16, 66), (8, 8, 110)]
    )
    stats = continuation_stats(prompt, continuation)
    assert stats["pitch_range"] == 110 - 62 and stats["outside_piano"] == 1.0
    assert stats["dissonant_chord_pairs"] == pytest.approx(
        2 / 3
    )  # 72-71 semitone, 72-66 tritone, 71-66 fourth
    assert 0 < stats["motif_reuse"] < 1 and stats["in_key_share"] == pytest.approx(6 / 8)
    assert stats["repeated_4grams"] == 0.0 and stats["notes_per_second"] > 0


# ----------------------------------------------------------------------------------------------------------
# prompts
# ----------------------------------------------------------------------------------------------------------


def test_prompts_are_spread_excerpts_with_their_real_continuation():
    assert excerpt_starts(100, 30, 3) == [0, 35, 70]
    assert excerpt_starts(20, 30, 3) == [0]
    assert excerpt_starts(100, 30, 1) == [0]
    piece = ids([(3, 2, 40 + k % 50) for k in range(100)])
    prompts = prompts_from_test_pieces(
        {"baroque": [("p.midi", piece)], "romantic": [("short.midi", piece[:100])]}, 10, 20, 3
    )
    assert [p.name for p in prompts] == [f"baroque: p.midi @ note {n}" for n in (0, 35, 70)]  # short skipped
    second = prompts[1]
    assert second.style == "baroque" and second.piece == "p.midi"
    assert second.ids[:4] == [127, 0, 2, 40 + 35 % 50]  # first dt reset to 0
    assert second.ids[4:] == piece[4 * 36 : 4 * 45]
    assert second.real_continuation == piece[4 * 45 : 4 * 65]


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
# models, validation windows and continuations
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


@pytest.fixture
def restore_threads():
    """Puts torch's thread count back after a test that sets it (--num_threads is process-wide)."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_model_window_losses_on_a_tiny_model(models_dir):
    model = load_evaluation_model(models_dir / "gigapiano-base", "cpu")
    pieces = [
        ("a.midi", ids([(k % 5, 3, 60 + k % 12) for k in range(40)])),
        ("b.midi", ids([(1, 1, 50)] * 20)),
    ]
    windows = ScoredWindows.from_pieces(pieces, 64, per_piece=None)
    assert windows.windows.shape == (3, 64) and windows.pieces == ["a.midi", "a.midi", "b.midi"]
    assert ScoredWindows.from_pieces(pieces, 64, per_piece=1).pieces == ["a.midi", "b.midi"]
    nats, tokens = model_window_losses(model, windows.windows, batch_size=2)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor(windows.windows[:1])).logits[0, :-1]
    expected = torch.nn.functional.cross_entropy(
        logits, torch.tensor(windows.windows[0, 1:]), reduction="sum"
    )
    assert nats[0] == pytest.approx(float(expected), rel=1e-4) and list(tokens) == [63, 63, 63]
    with pytest.raises(ValueError, match="full window"):
        ScoredWindows.from_pieces([("c.midi", ids([(1, 1, 50)] * 3))], 64, 2)


def test_batched_continuations_are_valid_and_seeded(models_dir, restore_threads):
    torch.set_num_threads(1)  # tiny batches: one thread is fastest, and immune to a busy CPU
    model = load_evaluation_model(models_dir / "gigapiano-base", "cpu")
    prompts = [random_piece(seed, 4) for seed in range(3)]
    setup = SamplingSetup(new_notes=6, seeds=(4, 5), batch_size=2)
    first = continue_prompts(model, prompts, setup)
    assert [(c.prompt_index, c.seed) for c in first] == [(i, s) for s in (4, 5) for i in range(3)]
    assert all(c.well_formed and len(c.ids) == 24 for c in first)
    assert [c.ids for c in continue_prompts(model, prompts, setup)] == [c.ids for c in first]
    pitches = [c.ids[k] for c in first for k in range(3, 24, 4)]
    assert all(1 <= p <= 126 for p in pitches)


# ----------------------------------------------------------------------------------------------------------
# the command
# ----------------------------------------------------------------------------------------------------------


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
    fake_maestro_root, models_dir, styles_dir, tmp_path, capsys, restore_threads
):
    output = tmp_path / "docs" / "evaluation.md"
    output.parent.mkdir()
    output.write_text(
        f"# Evaluation\n\nHand-written method.\n\n{BEGIN_MARKER}\nold numbers\n{END_MARKER}\n\nTail.\n"
    )
    argv = [
        "--maestro_dir", str(fake_maestro_root), "--models_dir", str(models_dir), "--output", str(output),
        "--styles_dir", str(styles_dir), "--cache_dir", str(tmp_path / "cache"), "--seeds", "5", "6",
        "--prompt_notes", "4", "--new_notes", "8", "--prompts_per_piece", "2", "--bootstrap_resamples", "50",
        "--classifier_train_windows", "40", "--progress", "false", "--log_level", "warning",
        "--num_threads", "1",
    ]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out.split()
    gallery = [str(tmp_path / "docs" / f"evaluation_gallery_{s}.png") for s in STYLES]
    assert printed == [str(output), str(output.with_suffix(".json")), *gallery]
    for png in gallery:
        assert Path(png).read_bytes()[:4] == b"\x89PNG"
    text = output.read_text()
    assert text.startswith("# Evaluation\n\nHand-written method.") and text.rstrip().endswith("Tail.")
    assert "old numbers" not in text and text.count(BEGIN_MARKER) == 1
    for heading in (
        "Done-when checks", "Validation loss and style of the continuations", "Held-out check",
        "Style classifier", "Musical statistics of the continuations", "Gallery",
    ):  # fmt: skip
        assert f"### {heading}" in text
    assert "--new_notes 8" in text and "evaluation_gallery_baroque.png" in text
    assert text.count("**PASS**") + text.count("**FAIL**") == 3 * 3 + 1

    results = json.loads(output.with_suffix(".json").read_text())
    assert {p["style"] for p in results["prompts"]} == set(STYLES)
    assert results["held_out"]["passed"] and results["held_out"]["models_without_pieces_json"]
    assert results["loss_split"]["rachmaninoff"] == "test"  # the fake Liszt has no validation performance
    for style in STYLES:
        validation = results["validation"][style]
        for row in ("ngram_base", "ngram_style", "base", "style"):
            assert validation[row]["low"] <= validation[row]["value"] <= validation[row]["high"]
        assert validation["ngram_style"]["value"] < math.log(128)
        hits = results["hits"][style]
        assert hits["continuations"] == 2 * sum(p["style"] == style for p in results["prompts"])
        assert set(results["statistics"][style]) == {"real", "base", style}
        assert results["statistics"][style]["base"]["outside_piano_total"] == 0
    assert results["well_formed"] == {name: 1.0 for name in ("base", *STYLES)}
    assert {c["check"] for c in results["checks"]} == {"a", "b", "c"}
    assert set(results["classifier"]["perturbations"]) == {
        "transpose +1",
        "transpose -1",
        "tempo x0.67",
        "tempo x1.5",
    }

    assert "second_opinion" not in results and "### Second opinion" not in text

    # A second opinion: the sequence network's shares beside the forest's, deciding no check.
    assert main([*argv, "--second_opinion"]) == 0
    capsys.readouterr()
    second = json.loads(output.with_suffix(".json").read_text())
    assert "### Second opinion: a sequence network" in output.read_text()
    assert set(second["second_opinion"]["hits"]) == set(STYLES) and second["checks"] == results["checks"]
    assert set(second["second_opinion"]["labels"]) == {"real", "base", *STYLES}
    assert second["second_opinion"]["classifier"]["best_epoch"] >= 1

    # The classifier alone: one line with its accuracy and label change rates.
    assert main([*argv, "--classifier_only"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("test windows of 8 notes: accuracy") and "tempo x1.5" in line


def test_command_errors_are_one_line(fake_maestro_root, models_dir, tmp_path, capsys):
    assert main(["--maestro_dir", str(fake_maestro_root), "--models_dir", str(tmp_path / "none")]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: Missing model folder(s)")
    assert main(["--models_dir", str(models_dir), "--seeds", "1", "1"]) == 2
    assert (
        capsys.readouterr().err.strip()
        == "error: --seeds needs at least one seed and no repeats, got [1, 1]."
    )


def test_write_report_creates_or_appends_without_losing_text(tmp_path):
    block = f"{BEGIN_MARKER}\nnumbers\n{END_MARKER}\n"
    fresh = write_report(tmp_path / "new.md", block)
    assert fresh.read_text() == f"# Style evaluation\n\n{block}"
    existing = tmp_path / "old.md"
    existing.write_text("# Notes\n\nkeep me\n")
    assert write_report(existing, block).read_text() == f"# Notes\n\nkeep me\n\n{block}"
