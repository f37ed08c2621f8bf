"""The default-sampling sweep's scoring and report (the sweep itself needs models and MAESTRO)."""

import json
import math

import pytest

from gigapiano.evaluation.sampling_sweep import (
    MATCHED_STATS,
    REPORT_END,
    REPORT_START,
    SamplingSweepArguments,
    distance_to_real,
    main,
    mean_stats,
    recommend,
    write_sweep,
)


def _row(**values):
    return {name: values.get(name, 1.0) for name in MATCHED_STATS}


def test_distance_is_zero_for_identical_statistics_and_grows_with_the_gap():
    real = [_row(in_key_share=0.8), _row(in_key_share=0.9)]
    assert distance_to_real(real, real) == 0.0
    near = [_row(in_key_share=0.85)]
    far = [_row(in_key_share=0.5)]
    assert 0 < distance_to_real(near, real) < distance_to_real(far, real)
    # in_key_share spread is 0.05; |0.5 - 0.85| / 0.05 = 7, the other statistics match: mean 7 / 7 = 1
    assert distance_to_real(far, real) == pytest.approx(7 / len(MATCHED_STATS))


def test_nan_statistics_are_left_out():
    real = [_row(dissonant_chord_pairs=math.nan), _row(dissonant_chord_pairs=0.1)]
    generated = [_row(dissonant_chord_pairs=math.nan)]
    assert math.isfinite(distance_to_real(generated, real))
    assert math.isnan(mean_stats(generated)["dissonant_chord_pairs"])
    assert mean_stats(real)["dissonant_chord_pairs"] == pytest.approx(0.1)


def test_recommend_takes_the_lowest_mean_distance_over_styles():
    results = {
        "baroque": {"a": {"distance": 0.2}, "b": {"distance": 0.4}},
        "romantic": {"a": {"distance": 0.9}, "b": {"distance": 0.5}},
    }
    assert recommend(results) == "b"


def test_recommend_requires_half_the_real_motif_reuse_when_some_setting_has_it():
    def entry(distance: float, reuse: float) -> dict:
        return {"distance": distance, "stats": {"motif_reuse": reuse}}

    real = {style: {"stats": {"motif_reuse": 0.1}} for style in ("baroque", "romantic")}
    results = {
        "baroque": {"off": entry(0.2, 0.01), "memory": entry(0.5, 0.06), "weak": entry(0.3, 0.06)},
        "romantic": {"off": entry(0.3, 0.01), "memory": entry(0.4, 0.05), "weak": entry(0.3, 0.04)},
    }
    assert recommend(results, real) == "memory"  # "weak" falls short for romantic (0.04 < 0.5 x 0.1)
    assert recommend(results) == "off"
    for style in results:
        results[style]["memory"]["stats"]["motif_reuse"] = 0.0
    assert recommend(results, real) == "off"  # nobody reaches the floor: the plain lowest distance


def test_grid_values_are_checked():
    with pytest.raises(ValueError, match="top_ps"):
        SamplingSweepArguments(top_ps=[1.5])
    with pytest.raises(ValueError, match="temperatures"):
        SamplingSweepArguments(temperatures=[0.0])


def test_bad_flag_is_one_line_and_status_2(capsys):
    assert main(["--top_ps", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")


def test_report_block_replaces_an_earlier_one_and_keeps_the_rest(tmp_path):
    stats = {name: 0.5 for name in MATCHED_STATS}
    results = {
        "run": {
            "command": "python -m x",
            "date": "d",
            "wall_seconds": 1.0,
            "threads": 2,
            "arguments": {"seeds": [0]},
        },
        "real": {"baroque": {"n": 3, "pieces": 1, "stats": stats, "style_share": 0.5}},
        "settings": {
            "baroque": {"temperature 1, top_p 1": {"stats": stats, "style_share": 0.25, "distance": 0.0}}
        },
        "recommended": "temperature 1, top_p 1",
    }
    path = tmp_path / "sampling.md"
    path.write_text("# Title\n\nintro\n\n" + REPORT_START + "\nold\n" + REPORT_END + "\n\nafter\n")
    written = write_sweep(path, results)
    text = path.read_text()
    assert "intro" in text and "after" in text and "old" not in text
    assert text.count(REPORT_START) == 1
    assert "| temperature 1, top_p 1 | 25.0% |" in text
    assert json.loads(written[1].read_text())["recommended"] == "temperature 1, top_p 1"
