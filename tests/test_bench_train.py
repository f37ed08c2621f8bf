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
