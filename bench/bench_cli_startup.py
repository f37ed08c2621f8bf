"""Check: how fast the command-line scripts answer when there is nothing to compute.

Times, each in a fresh interpreter: `generate.py --help`, a flag error, a `--model` folder that does not
exist, `train.py --help`, and `train.py` offline (HF_HUB_OFFLINE=1) with no MAESTRO copy, which must fail
in one line naming --maestro_dir. Reports the median wall time and the median CPU time (user + system) of
the child processes; on a shared, busy machine the CPU time is the figure to read, since the wall time also
counts the time spent waiting for a core. With `--check`, exits with status 1 when a median wall time
exceeds its limit (1.5 s for generate.py's quick answers, 30 s for the offline failure; train.py's help,
which needs transformers' TrainingArguments and so torch, is reported without a limit).

    python bench/bench_cli_startup.py [--repeats 5] [--check]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

#: (name, arguments after `python`, limit in seconds, what the output must show, whether it is an error)
CASES: tuple[tuple[str, tuple[str, ...], float | None, str, bool], ...] = (
    ("generate.py --help", ("generate.py", "--help"), 1.5, "--no_progress", False),
    ("generate.py --no_such_flag", ("generate.py", "--style", "baroque", "--no_such_flag"), 1.5,
     "--no_such_flag", True),
    ("generate.py --model runs/missing", ("generate.py", "--model", "runs/missing"), 1.5, "does not exist",
     True),
    # train.py's flags include transformers' TrainingArguments, so its help needs torch and transformers:
    # reported, not held to a limit
    ("train.py --help", ("train.py", "--help"), None, "--trainable_share", False),
    ("train.py offline, no data", ("train.py", "--style", "baroque", "--base_model", "scratch:tiny"), 30.0,
     "--maestro_dir", True),
)  # fmt: skip


def run_once(arguments: tuple[str, ...], scratch: Path) -> tuple[float, float, int, str]:
    """(wall seconds, CPU seconds of the child, exit status, stdout + stderr)."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "GIGAPIANO_CACHE": str(scratch / "empty-cache"),
        "PYTHONPATH": str(REPO_ROOT),
    }
    if arguments[0] == "train.py" and "--help" not in arguments:
        arguments += ("--output_dir", str(scratch / "run"), "--report_to", "none")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *arguments], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode, done.stdout + done.stderr


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3, help="Runs per case (the median is reported).")
    parser.add_argument("--check", action="store_true", help="Exit with 1 when a limit is exceeded.")
    args = parser.parse_args()
    failures = []
    print("| command | median wall s | median CPU s | limit s | exit | answer |")
    print("|---|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name, arguments, limit, expected, is_error in CASES:
            runs = [run_once(arguments, Path(folder)) for _ in range(args.repeats)]
            wall = statistics.median(run[0] for run in runs)
            cpu = statistics.median(run[1] for run in runs)
            status, output = runs[-1][2], runs[-1][3]
            error_lines = [line for line in output.splitlines() if line.startswith("error:")]
            answer = error_lines[0] if error_lines else output.strip().splitlines()[0]
            answer = answer if len(answer) <= 90 else answer[:87] + "..."
            shown = "-" if limit is None else f"{limit:g}"
            print(f"| `{name}` | {wall:.2f} | {cpu:.2f} | {shown} | {status} | {answer} |")
            if expected not in output or (status != 0) != is_error or (is_error and len(error_lines) != 1):
                failures.append(f"{name}: unexpected answer (exit {status}): {output[-500:]}")
            if limit is not None and wall > limit:
                failures.append(f"{name}: median wall time {wall:.2f} s exceeds {limit:g} s")
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
