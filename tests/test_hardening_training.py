"""Training folders after crashes: incomplete checkpoints are skipped, a finished run says so, overwrite
restarts, SIGTERM ends like Ctrl-C (so the last checkpoint stays and re-running resumes), and a real
`train.py` killed with SIGKILL while it writes a checkpoint or its final model resumes in a fresh process."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from gigapiano.training.trainer import (
    TrainingTerminated,
    check_output_dir,
    checkpoint_step,
    final_model_complete,
    safetensors_complete,
    sigterm_as_interrupt,
)

REPO = Path(__file__).resolve().parents[1]


def write_weights(path: Path) -> Path:
    save_file({"weight": torch.arange(64, dtype=torch.float32)}, str(path))
    return path


def checkpoint(run: Path, step: int, max_steps: int = 20, state: str | None = None) -> Path:
    """A checkpoint folder as Trainer leaves it; `state=""` omits trainer_state.json (killed mid-save)."""
    folder = run / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    write_weights(folder / "model.safetensors")
    torch.save({"state": {}}, folder / "optimizer.pt")
    if state is None:
        state = json.dumps({"global_step": step, "max_steps": max_steps})
    if state:
        (folder / "trainer_state.json").write_text(state)
    return folder


def cut_short(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("broken", ["", '{"global_step": 2', json.dumps({"global_step": 7})])
def test_resume_skips_an_incomplete_last_checkpoint(tmp_path, caplog, broken):
    good = checkpoint(tmp_path, 10)
    checkpoint(tmp_path, 20, state=broken)  # killed during the save, or the disk filled up
    with caplog.at_level(logging.WARNING, logger="gigapiano"):
        assert check_output_dir(tmp_path, overwrite=False) == str(good)
    assert "checkpoint-20: incomplete" in caplog.text


def test_a_checkpoint_without_weights_is_incomplete(tmp_path):
    checkpoint(tmp_path, 10)
    (checkpoint(tmp_path, 20) / "model.safetensors").unlink()
    assert check_output_dir(tmp_path, overwrite=False).endswith("checkpoint-10")


@pytest.mark.parametrize("name", ["model.safetensors", "optimizer.pt"])
def test_a_checkpoint_with_a_file_cut_short_is_incomplete_whatever_the_save_order(tmp_path, name):
    """A state file written before the weights (another transformers version) must not make it complete."""
    checkpoint(tmp_path, 10)
    cut_short(checkpoint(tmp_path, 20) / name)
    assert checkpoint_step(tmp_path / "checkpoint-20") is None
    assert check_output_dir(tmp_path, overwrite=False).endswith("checkpoint-10")


def test_safetensors_completeness_reads_only_the_header(tmp_path):
    weights = write_weights(tmp_path / "model.safetensors")
    assert safetensors_complete(weights)
    whole = weights.read_bytes()
    for size in (len(whole) - 1, 40, 8, 3, 0):
        weights.write_bytes(whole[:size])
        assert not safetensors_complete(weights), size
    weights.write_bytes((2**62).to_bytes(8, "little") + b"{}")  # a header length no file holds
    assert not safetensors_complete(weights)


def finish(run: Path) -> None:
    """The final model of a run folder as `run_training` leaves it."""
    (run / "config.json").write_text("{}")
    write_weights(run / "model.safetensors")
    (run / "run_info.json").write_text(json.dumps({"global_step": 20}))


def test_a_finished_run_says_so_and_overwrite_restarts_it(tmp_path):
    checkpoint(tmp_path, 10)
    checkpoint(tmp_path, 20)
    finish(tmp_path)
    with pytest.raises(FileExistsError, match=r"already trained \(20 of 20 steps\).*--overwrite_output_dir"):
        check_output_dir(tmp_path, overwrite=False)
    assert check_output_dir(tmp_path, overwrite=True) is None
    assert not list(tmp_path.glob("checkpoint-*"))


@pytest.mark.parametrize("damage", ["cut weights", "no run_info.json"])
def test_a_final_model_cut_short_is_written_again_from_the_last_checkpoint(tmp_path, caplog, damage):
    checkpoint(tmp_path, 10)
    last = checkpoint(tmp_path, 20)
    finish(tmp_path)
    if damage == "cut weights":
        cut_short(tmp_path / "model.safetensors")
    else:
        (tmp_path / "run_info.json").unlink()
    assert not final_model_complete(tmp_path)
    with caplog.at_level(logging.WARNING, logger="gigapiano"):
        assert check_output_dir(tmp_path, overwrite=False) == str(last)
    assert "incomplete final model" in caplog.text


def test_an_unfinished_run_with_a_final_model_resumes(tmp_path):
    checkpoint(tmp_path, 10)
    (tmp_path / "config.json").write_text("{}")  # e.g. a model saved by an earlier, shorter attempt
    assert check_output_dir(tmp_path, overwrite=False).endswith("checkpoint-10")


def test_sigterm_during_training_is_an_interrupt():
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingTerminated), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) == previous
    assert issubclass(TrainingTerminated, KeyboardInterrupt)  # train.py: one line, exit 130


# ----------------------------------------------------------------------------------------------------------
# A real kill: train.py in a subprocess SIGKILLs itself half-way through writing one file of a save.
# ----------------------------------------------------------------------------------------------------------

#: Runs the script named first with the rest as its arguments, after wrapping the writers of a save's big
#: files (safetensors for weights, torch.save for optimizer / scheduler / RNG states): when the file is
#: $GIGAPIANO_KILL_DURING, half of its bytes are written and the process SIGKILLs itself. No product code
#: knows about it.
KILLING_RUNNER = """
import io, os, runpy, signal, sys
import torch
import transformers.modeling_utils as modeling_utils
from safetensors.torch import save as safetensors_bytes

TARGET = os.path.abspath(os.environ["GIGAPIANO_KILL_DURING"])


def hit(path):
    return isinstance(path, (str, os.PathLike)) and os.path.abspath(path) == TARGET


def write_half_and_die(path, data):
    with open(path, "wb") as handle:
        handle.write(data[: len(data) // 2])
        handle.flush()
    os.kill(os.getpid(), signal.SIGKILL)


real_save_file = modeling_utils.safe_save_file
def save_file(tensors, filename, metadata=None):
    if hit(filename):
        write_half_and_die(filename, safetensors_bytes(tensors, metadata=metadata))
    return real_save_file(tensors, filename, metadata=metadata)
modeling_utils.safe_save_file = save_file

real_torch_save = torch.save
def torch_save(obj, f, *args, **kwargs):
    if hit(f):
        buffer = io.BytesIO()
        real_torch_save(obj, buffer, *args, **kwargs)
        write_half_and_die(f, buffer.getvalue())
    return real_torch_save(obj, f, *args, **kwargs)
torch.save = torch_save

sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[1])))
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""

MAX_STEPS, SAVE_STEPS = 6, 2


def train_argv(maestro_root: Path, run: Path, cache: Path) -> list[str]:
    """A tiny model from scratch on the fake MAESTRO: 6 steps, a checkpoint every 2."""
    return [
        "--style", "baroque", "--pieces", "all", "--maestro_dir", str(maestro_root),
        "--cache_dir", str(cache), "--output_dir", str(run),
        "--base_model", "scratch:tiny", "--window_length", "64", "--window_stride", "32",
        "--validation_fraction", "0.2", "--per_device_train_batch_size", "4",
        "--per_device_eval_batch_size", "8", "--learning_rate", "3e-3",
        "--max_steps", str(MAX_STEPS), "--save_steps", str(SAVE_STEPS), "--logging_steps", "1",
        "--eval_strategy", "no", "--report_to", "none", "--disable_tqdm", "true", "--seed", "7",
        "--log_level", "info",
    ]  # fmt: skip


def train_cli(
    maestro_root: Path, run: Path, cache: Path, kill_during: Path | None = None
) -> subprocess.CompletedProcess:
    """`train.py` in a fresh process (offline, one thread); with `kill_during`, the process is SIGKILLed
    half-way through writing that file."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    command = [sys.executable, str(REPO / "train.py"), *train_argv(maestro_root, run, cache)]
    if kill_during is not None:
        env["GIGAPIANO_KILL_DURING"] = str(kill_during)
        command = [sys.executable, "-c", KILLING_RUNNER, *command[1:]]
    return subprocess.run(command, cwd=run.parent, env=env, capture_output=True, text=True, timeout=300)


def logged_steps(run: Path) -> list[int]:
    history = json.loads((run / "trainer_state.json").read_text())["log_history"]
    return [entry["step"] for entry in history if "loss" in entry]


@pytest.fixture(scope="module")
def data_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data-cache")


@pytest.fixture(scope="module")
def straight_run(fake_maestro_root: Path, data_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same run, never killed (in this process, on one thread like the subprocesses; it also builds the
    data cache they share)."""
    from gigapiano.training import parse_training_args, run_training

    run = tmp_path_factory.mktemp("straight") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_training(*parse_training_args(train_argv(fake_maestro_root, run, data_cache)))
    finally:
        torch.set_num_threads(threads)
    return run


@pytest.mark.slow
@pytest.mark.parametrize("name", ["model.safetensors", "optimizer.pt"])
def test_a_run_killed_while_writing_a_checkpoint_resumes_from_the_last_complete_one(
    fake_maestro_root, data_cache, straight_run, tmp_path, name
):
    run = tmp_path / "run"
    killed = train_cli(fake_maestro_root, run, data_cache, kill_during=run / "checkpoint-4" / name)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert checkpoint_step(run / "checkpoint-2") == 2  # the earlier save is complete
    assert checkpoint_step(run / "checkpoint-4") is None and (run / "checkpoint-4" / name).stat().st_size
    assert not (run / "config.json").exists()

    resumed = train_cli(fake_maestro_root, run, data_cache)  # the same command again, in a fresh process
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Skipping {run / 'checkpoint-4'}: incomplete" in resumed.stderr
    assert f"Resuming from {run / 'checkpoint-2'}." in resumed.stderr
    assert logged_steps(run) == list(range(1, MAX_STEPS + 1))
    assert checkpoint_step(run / "checkpoint-4") == 4 and final_model_complete(run)
    got, expected = load_file(run / "model.safetensors"), load_file(straight_run / "model.safetensors")
    assert got.keys() == expected.keys()
    for key in expected:  # the killed-and-resumed run ends where the uninterrupted one does
        torch.testing.assert_close(got[key], expected[key], atol=1e-6, rtol=0, msg=key)


@pytest.mark.slow
def test_a_run_killed_while_writing_its_final_model_writes_it_again_without_training(
    fake_maestro_root, data_cache, tmp_path
):
    run = tmp_path / "run"
    killed = train_cli(fake_maestro_root, run, data_cache, kill_during=run / "model.safetensors")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert checkpoint_step(run / f"checkpoint-{MAX_STEPS}") == MAX_STEPS
    assert (run / "config.json").exists() and not final_model_complete(run)

    resumed = train_cli(fake_maestro_root, run, data_cache)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "holds an incomplete final model" in resumed.stderr and "(no training)" in resumed.stderr
    state = json.loads((run / "trainer_state.json").read_text())
    assert state["global_step"] == MAX_STEPS  # Trainer's own resume would have taken a 7th step of 6
    final, last = (
        load_file(run / "model.safetensors"),
        load_file(run / f"checkpoint-{MAX_STEPS}" / "model.safetensors"),
    )
    assert final.keys() == last.keys() and all(torch.equal(final[key], last[key]) for key in last)
    assert final_model_complete(run) and (run / "README.md").is_file()
    with pytest.raises(
        FileExistsError, match=re.escape(f"already trained ({MAX_STEPS} of {MAX_STEPS} steps)")
    ):
        check_output_dir(run, overwrite=False)
