"""bench/bench_train.py --quick on the tiny preset: every row of the table is there with positive numbers."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_train_quick_prints_the_full_table(tmp_path):
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_DATASETS_CACHE": str(tmp_path),
    }
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "bench_train.py"),
            "--quick",
            "--presets",
            "tiny",
            "--threads",
            "1",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=570,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    tiny_rows = [line for line in out.splitlines() if line.startswith("| tiny @ 64")]
    rows = [line for line in tiny_rows if "MiB)" not in line]  # the throughput table
    keys = [tuple(cell.strip() for cell in row.strip("|").split("|")[1:5]) for row in rows]
    expected = [
        ("old", "plain", "fused SDPA", "fp32"),
        ("old (baseline)", "plain", "fused SDPA", "bf16"),
        ("new", "plain", "explicit", "fp32"),
        ("new", "plain", "explicit", "bf16"),
        ("new + dropout 0.1", "plain", "explicit", "bf16"),
    ]
    trainer = [("Trainer (base_medium_512.yaml)", ""), ("plain, between Trainer steps", "")]
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":  # a child with tuned malloc
        expected.append(("new", "plain, malloc keeps memory", "explicit", "bf16"))
        trainer += [(loop, ", malloc keeps memory") for loop, _ in trainer]
    expected += [("new", loop + suffix, "explicit", "bf16") for loop, suffix in trainer]
    assert keys == expected
    for row in rows:
        tokens_per_s, gflops, ratio = (cell.strip() for cell in row.strip("|").split("|")[5:8])
        assert float(tokens_per_s.replace(",", "")) > 0 and float(gflops) > 0
        assert float(ratio.rstrip("x")) > 0
    assert "1.00x" in rows[1]
    assert re.search(r"Trainer overhead .*: [\d.]+x\.", out), out
    losses = re.findall(r"^\| 0 \| ([\w .+]+) \| [\d. /]+ \| ([\d.]+) \| ([\d.]+) \|$", out, re.MULTILINE)
    assert [recipe for recipe, _, _ in losses] == ["old", "new", "new + dropout 0.1"], out
    assert all(0 < float(held) < 10 for _, _, held in losses)
    assert re.search(r"- new minus old, held-out loss: [-+][\d.]+ nats .*: (not worse|worse)\.", out), out
    assert len(tiny_rows) == 2 * len(expected)  # and the CPU-time table
    assert "largest relative difference" in out


def test_real_loss_check_batches_come_from_the_export(tmp_path):
    """`--loss_data`: training windows are note-aligned slices of the TRAIN tokens; held-out windows are the
    first tokens of validation windows; a missing export is a one-line error."""
    import numpy as np
    import torch

    sys.path.insert(0, str(REPO / "bench"))
    try:
        import bench_train
    finally:
        sys.path.remove(str(REPO / "bench"))
    notes = np.arange(400) % 100 + 1
    train_tokens = np.stack([np.full(400, 127), notes % 50, notes % 60 + 1, notes], axis=1).reshape(-1)
    validation = train_tokens[: 10 * 64].reshape(10, 64)
    np.savez(
        tmp_path / "maestro.npz",
        train_tokens=train_tokens.astype(np.uint8),
        train_offsets=np.array([0, 800, train_tokens.size]),
        validation_windows=validation.astype(np.uint8),
    )
    case = bench_train.Case("tiny", 32, 4)
    train, held_out = bench_train.real_batches(case, tmp_path, count=3, seed=1, held_out=8)
    assert [tuple(b.shape) for b in train] == [(4, 32)] * 3
    for batch in train:
        assert torch.all(batch[:, ::4] == 127)  # every window starts at a note
        for row in batch:  # a slice of the training tokens inside one performance (offsets 0, 800, 1600)
            starts = [
                start
                for start in range(0, train_tokens.size - 31, 4)
                if np.array_equal(train_tokens[start : start + 32], row.numpy())
                and start // 800 == (start + 31) // 800
            ]
            assert starts, row
    stacked = torch.cat(held_out)
    assert stacked.shape == (8, 32)
    assert torch.equal(stacked[0], torch.from_numpy(validation[0, :32]).long())
    with pytest.raises(SystemExit, match="maestro.npz is missing"):
        bench_train.real_batches(case, tmp_path / "nowhere", count=1, seed=0)


def test_isolated_rounds_time_each_recipe_in_its_own_process(tmp_path):
    """`--isolated 1`: one old and one new process, their tokens/s and the ratio, then the summary line."""
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_train.py"), "--presets", "tiny", "--isolated", "1"]
        + ["--steps", "1", "--warmup", "1", "--threads", "1"],
        cwd=tmp_path,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    row = re.search(r"^\| 1 \| ([\d,]+) \| ([\d,]+) \| ([\d.]+)x \|$", result.stdout, re.MULTILINE)
    assert row, result.stdout
    old, new, ratio = (float(value.replace(",", "")) for value in row.groups())
    assert old > 0 and new > 0 and abs(ratio - new / old) < 0.01
    assert "new / old over 1 rounds: median" in result.stdout
