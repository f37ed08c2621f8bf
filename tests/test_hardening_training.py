"""Training folders after crashes: incomplete checkpoints are skipped, a finished run says so, overwrite
restarts, SIGTERM ends like Ctrl-C (so the last checkpoint stays and re-running resumes)."""

from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path

import pytest

from gigapiano.training.trainer import TrainingTerminated, check_output_dir, sigterm_as_interrupt


def checkpoint(run: Path, step: int, max_steps: int = 20, state: str | None = None) -> Path:
    """A checkpoint folder as Trainer leaves it; `state=""` omits trainer_state.json (killed mid-save)."""
    folder = run / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    if state is None:
        state = json.dumps({"global_step": step, "max_steps": max_steps})
    if state:
        (folder / "trainer_state.json").write_text(state)
    return folder


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


def test_a_finished_run_says_so_and_overwrite_restarts_it(tmp_path):
    checkpoint(tmp_path, 10)
    checkpoint(tmp_path, 20)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileExistsError, match=r"already trained \(20 of 20 steps\).*--overwrite_output_dir"):
        check_output_dir(tmp_path, overwrite=False)
    assert check_output_dir(tmp_path, overwrite=True) is None
    assert not list(tmp_path.glob("checkpoint-*"))


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
