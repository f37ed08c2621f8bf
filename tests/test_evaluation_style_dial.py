"""The style-dial measurement (`gigapiano.evaluation.style_dial`): loop statistics on hand-made notes, the
tables on tiny inputs, the report, and the evaluation's batched sampler on a `StyleMixture` of tiny random
models (the real run needs MAESTRO and the shipped models: `docs/style_dial.md`)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from gigapiano.evaluation.continuations import SamplingSetup, continue_prompts
from gigapiano.evaluation.style_dial import (
    KNN_STATS,
    REPORT_END,
    REPORT_START,
    StyleDialArguments,
    _sample_calls,
    exact_repeat_share,
    knn_table,
    label_table,
    loop_coverage,
    loop_spans,
    main,
    render_style_dial,
    repetition_stats,
    strength_row,
    strength_table,
    write_style_dial,
)
from gigapiano.generation import AntiCopy, StyleMixture
from gigapiano.generation.grammar import join_notes
from modeling_gigapiano import GigaPianoConfig, GigaPianoForCausalLM

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------- loop statistics


def test_loop_spans_need_the_pattern_three_times_in_a_row():
    assert loop_spans(list("abcabcabcx")) == [(0, 9, 3)]
    assert loop_spans(list("ababa")) == []  # 2.5 times
    assert loop_spans(list("aaab")) == [(0, 3, 1)]
    assert loop_spans(list("abcdefghabcdefghabcdefgh")) == [(0, 24, 8)]
    assert loop_spans(list("abcdefghi" * 3), max_period=8) == []  # period 9 is too long
    assert loop_spans(list("abab"), min_repeats=2) == [(0, 4, 2)]


def test_loop_coverage_is_the_share_inside_any_loop_and_the_longest():
    share, longest = loop_coverage(list("xababab") + list("cccc"))
    assert longest == 6
    assert share == pytest.approx(10 / 11)
    assert loop_coverage(list("abcdefg")) == (0.0, 0)
    share, longest = loop_coverage([])
    assert math.isnan(share) and longest == 0


def test_exact_repeats_look_back_over_prompt_and_continuation_within_memory():
    prompt = join_notes([(0, 5, 60), (3, 5, 62)])
    continuation = join_notes([(3, 5, 62), (3, 5, 64), (3, 5, 62), (3, 6, 62)])
    # (3,5,62) repeats a prompt note, (3,5,64) is new, (3,5,62) again, (3,6,62) differs in duration
    assert exact_repeat_share(prompt, continuation, memory_notes=64) == pytest.approx(2 / 4)
    assert exact_repeat_share(prompt, continuation, memory_notes=1) == pytest.approx(1 / 4)
    assert math.isnan(exact_repeat_share(prompt, []))


def test_a_pitch_loop_with_wobbling_durations_is_no_note_loop():
    notes = [(4, 5 + i % 2, pitch) for i, pitch in enumerate([60, 64, 67] * 4 + [50, 52, 71, 55])]
    stats = repetition_stats(join_notes([(0, 5, 40)]), join_notes(notes))
    assert stats["pitch_loop_share"] == pytest.approx(12 / 16)
    assert stats["longest_pitch_loop"] == 12
    # durations alternate 5, 6: whole notes repeat with period 6, only twice in 12 notes: no note loop
    assert stats["loop_share"] == 0.0
    assert stats["exact_repeat_share"] == pytest.approx(6 / 16)  # notes 7..12 repeat notes 1..6
    assert 0 < stats["pc_entropy"] <= math.log2(12)


def test_a_repeated_whole_note_is_a_note_loop_and_an_exact_repeat():
    stats = repetition_stats(join_notes([(0, 5, 60)]), join_notes([(4, 5, 62)] * 8))
    assert stats["loop_share"] == 1.0 and stats["longest_loop"] == 8
    assert stats["exact_repeat_share"] == pytest.approx(7 / 8)
    assert stats["pc_entropy"] == 0.0


# ---------------------------------------------------------------- tables


def _items(style: str, pieces: list[str], seeds=(0,)):
    return [(style, piece, (index, seed)) for seed in seeds for index, piece in enumerate(pieces)]


def test_strength_table_pairs_items_and_says_whether_the_share_rises():
    pieces = ["p1", "p2", "p3", "p4"]
    items = {
        "base": _items("baroque", pieces) + _items("romantic", pieces),
        "baroque@0.5": _items("baroque", pieces),
        "baroque@1": _items("baroque", pieces),
        "romantic@0.5": _items("romantic", pieces),
        "romantic@1": _items("romantic", pieces),
        "real": _items("baroque", pieces, seeds=(-1,)) + _items("romantic", pieces, seeds=(-1,)),
    }
    b, r = "baroque", "romantic"
    labels = {
        "base": [b, r, r, r] + [r, r, b, b],
        "baroque@0.5": [b, b, r, r],
        "baroque@1": [b, b, b, b],
        "romantic@0.5": [r, b, b, b],
        "romantic@1": [r, r, r, b],
        "real": [b, b, b, r] + [r, r, r, r],
    }
    table = strength_table(labels, items, [b, r], [0.0, 0.5, 1.0], resamples=200, seed=0)
    baroque, romantic = table[b], table[r]
    assert [baroque["shares"][s]["value"] for s in ("0", "0.5", "1")] == [0.25, 0.5, 1.0]
    assert baroque["steps"]["1 - 0.5"]["value"] == pytest.approx(0.5)
    assert baroque["overall"]["1 - 0"]["value"] == pytest.approx(0.75)
    assert baroque["monotonic"] and baroque["continuations"] == 4 and baroque["pieces"] == 4
    assert baroque["real"]["value"] == 0.75
    assert [romantic["shares"][s]["value"] for s in ("0", "0.5", "1")] == [0.5, 0.25, 0.75]
    assert not romantic["monotonic"] and not romantic["separated"]
    assert strength_row(b, 0.0) == "base" and strength_row(b, 1.5) == "baroque@1.5"


def test_strength_table_keeps_only_items_every_strength_has():
    items = {"base": _items("baroque", ["p1", "p2"]), "baroque@1": _items("baroque", ["p1"])}
    labels = {"base": ["romantic", "romantic"], "baroque@1": ["baroque"]}
    table = strength_table(labels, items, ["baroque"], [0.0, 1.0], resamples=100, seed=0)
    assert table["baroque"]["continuations"] == 1
    assert table["baroque"]["shares"]["1"]["value"] == 1.0 and "real" not in table["baroque"]


def test_label_table_gives_the_share_of_every_label_per_prompt_style():
    items = {"base": _items("baroque", ["p1", "p2"]), "blend": _items("baroque", ["p1", "p2"])}
    labels = {"base": ["romantic", "baroque"], "blend": ["baroque", "baroque"]}
    table = label_table(labels, items, ["base", "blend"], ["baroque", "romantic"], resamples=100, seed=0)
    assert table["baroque"]["base"]["romantic"]["value"] == 0.5
    assert table["baroque"]["blend"]["baroque"]["value"] == 1.0
    assert math.isnan(table["romantic"]["blend"]["baroque"]["value"])  # no romantic prompt


def _stats(**values):
    return {name: values.get(name, 0.5) for name in KNN_STATS}


def test_knn_table_pairs_plain_and_knn_continuations_and_skips_nan():
    items = _items("baroque", ["p1", "p2"], seeds=(0, 1))
    stats = {
        "base": [_stats(exact_repeat_share=0.2), _stats(exact_repeat_share=0.4)] * 2,
        "base knn": [_stats(exact_repeat_share=0.0), _stats(exact_repeat_share=math.nan)] * 2,
        "real": [_stats(exact_repeat_share=0.1)] * 2,
    }
    rows = {"base": items, "base knn": items, "real": _items("baroque", ["p1", "p2"], seeds=(-1,))}
    table = knn_table(stats, rows, {"base": ("base", "base knn")}, ["baroque"], KNN_STATS, 100, 0)
    entry = table["baroque"]["base"]
    assert entry["continuations"] == 4
    assert entry["plain"]["exact_repeat_share"]["value"] == pytest.approx(0.3)
    assert entry["knn"]["exact_repeat_share"]["value"] == 0.0
    # paired: only the items where both are defined (p1's): 0.0 - 0.2
    assert entry["knn_minus_plain"]["exact_repeat_share"]["value"] == pytest.approx(-0.2)
    assert entry["knn_minus_plain"]["in_key_share"]["value"] == 0.0
    assert table["baroque"]["real"]["exact_repeat_share"]["value"] == pytest.approx(0.1)


# ---------------------------------------------------------------- report and command line


def _results() -> dict:
    estimate = {"value": 0.5, "low": 0.25, "high": 0.75, "pieces": 2}
    strength = {
        "continuations": 4,
        "pieces": 2,
        "shares": {"0": estimate, "1": estimate},
        "steps": {"1 - 0": estimate},
        "overall": {"1 - 0": estimate},  # one step: no second column
        "monotonic": True,
        "separated": True,
        "real": estimate,
    }
    stats = {name: estimate for name in KNN_STATS}
    clock = {"cpu_s_per_continuation": 1.0}
    return {
        "run": {
            "command": "python -m gigapiano.evaluation.style_dial",
            "date": "d",
            "wall_seconds": 10.0,
            "cpu_seconds": 8.0,
            "threads": 1,
            "git_commit": None,
            "arguments": {"seeds": [0, 1], "prompt_notes": 64, "new_notes": 128, "prompts_per_piece": 1,
                          "temperature": 0.9},
            "style_dial_arguments": {"repeat_memory_notes": 64, "loop_max_period": 8, "loop_min_repeats": 3},
        },
        "styles": ["baroque", "romantic"],
        "strengths": [0.0, 1.0],
        "prompts": {"baroque": 2, "romantic": 2},
        "strength": {"baroque": strength, "romantic": strength},
        "blends": {
            "blend baroque:0.5,romantic:0.5": {"weights": {"base": 0, "baroque": 0.5, "romantic": 0.5}}
        },
        "blend_labels": {
            "baroque": {"base": {"baroque": estimate, "romantic": estimate}},
            "romantic": {"blend baroque:0.5,romantic:0.5": {"baroque": estimate, "romantic": estimate}},
        },
        "knn": {
            "baroque": {"real": stats, "base": {"continuations": 4, "plain": stats, "knn": stats,
                                                "knn_minus_plain": stats}},
            "romantic": {},
        },
        "knn_runs": {
            "base": {"fallback_rate": estimate, "knn_notes": 512, "batched_plain": clock,
                     "plain_sample_notes": clock, "knn_sample_notes": clock,
                     "cpu_ratio_knn_to_plain_sample_notes": 1.9}
        },
        "anti_copy": {"candidates": 4, "threshold": 0.1, "memory_tokens": 256},
        "well_formed": {"base": 1.0},
    }  # fmt: skip


def test_report_block_replaces_an_earlier_one_and_keeps_the_rest(tmp_path):
    path = tmp_path / "style_dial.md"
    path.write_text(f"# Mine\n\nintro\n\n{REPORT_START}\nOLD BLOCK\n{REPORT_END}\n\noutro\n")
    written = write_style_dial(path, _results())
    text = path.read_text()
    assert written == [path, path.with_suffix(".json")]
    assert text.startswith("# Mine\n\nintro") and text.rstrip().endswith("outro") and "OLD BLOCK" not in text
    assert "| baroque | 4 | 50.0 [25.0, 75.0] | 50.0 [25.0, 75.0] |" in text
    assert "monotonic, every step above 0" in text and text.count("| 1 - 0 (points) |") == 1
    assert "| gigapiano-base knn | 4 |" in text and "1.90x" in text
    assert json.loads(path.with_suffix(".json").read_text())["strengths"] == [0.0, 1.0]
    assert render_style_dial(_results()).count(REPORT_START) == 1


def test_arguments_are_checked_with_one_clear_line(capsys):
    with pytest.raises(ValueError, match="style_strength"):
        StyleDialArguments(strengths=[0.0, 2.5])
    with pytest.raises(ValueError, match="base model"):
        StyleDialArguments(blends=["base:0.5,romantic:0.5"])
    with pytest.raises(ValueError, match="knn_candidates"):
        StyleDialArguments(knn_candidates=0)
    dial = StyleDialArguments(strengths=[1.0, 0.0], blends=["none"], knn_models=["none"])
    assert dial.strengths == [0.0, 1.0] and dial.blends == [] and dial.knn_models == []
    assert main(["--strengths", "0", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")


# ---------------------------------------------------------------- the samplers with tiny random models


def _tiny(seed: int) -> GigaPianoForCausalLM:
    torch.manual_seed(seed)
    shape = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64)
    return GigaPianoForCausalLM(GigaPianoConfig(max_position_embeddings=128, **shape)).eval()


PROMPTS = [join_notes([(0, 5, 60), (4, 5, 64), (4, 6, 67)]), join_notes([(0, 8, 50), (0, 8, 57), (9, 4, 62)])]


def test_the_batched_sampler_runs_a_style_mixture_and_its_ends_are_the_members():
    base, style = _tiny(0), _tiny(1)
    setup = SamplingSetup(new_notes=6, seeds=(0, 1))

    def ids(model):
        return [c.ids for c in continue_prompts(model, PROMPTS, setup)]

    assert ids(StyleMixture([base, style], [1.0, 0.0], ["base", "baroque"])) == ids(base)
    assert ids(StyleMixture([base, style], [0.0, 1.0], ["base", "baroque"])) == ids(style)
    for weights in ([0.5, 0.5], [-0.5, 1.5]):
        generated = continue_prompts(
            StyleMixture([base, style], weights, ["base", "baroque"]), PROMPTS, setup
        )
        assert len(generated) == 4 and all(c.well_formed and len(c.ids) == 24 for c in generated)


def test_knn_calls_key_variations_by_seed_and_count_fallbacks():
    from types import SimpleNamespace

    from gigapiano.evaluation.style_dial import _Clock
    from gigapiano.generation import SamplingOptions

    prompts = [SimpleNamespace(ids=ids, piece=f"p{i}") for i, ids in enumerate(PROMPTS)]
    clock = _Clock()
    out, calls = _sample_calls(_tiny(0), prompts, [1, 0], [3, 5], 5, SamplingOptions(0.9), AntiCopy(), clock)
    assert [(c.prompt_index, c.seed) for c in out] == [(1, 3), (1, 5), (0, 3), (0, 5)]
    assert all(c.well_formed and len(c.ids) == 20 for c in out)
    assert [c["knn_notes"] for c in calls] == [10, 10] and all(c["knn_fallbacks"] >= 0 for c in calls)
    assert clock.continuations == 4 and clock.cpu > 0
