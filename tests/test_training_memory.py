"""Freed memory stays in a CPU training process (glibc), so a step does not fault its tensors in again."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from gigapiano.training.memory import keep_freed_memory

PROBE = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    from gigapiano.training.memory import keep_freed_memory
    kept = keep_freed_memory() if sys.argv[1] == "keep" else False
    np.ones(16 << 20).sum()  # 128 MiB once, so that the heap has grown when memory is kept
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        np.ones(16 << 20).sum()  # 128 MiB allocated and freed, as a training step does with activations
    print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def _faults(mode: str) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_kept_memory_is_not_faulted_in_again():
    default_kept, default_faults = _faults("default")
    kept, kept_faults = _faults("keep")
    if kept != "True":
        pytest.skip("this C library has no mallopt (not glibc)")
    assert default_kept == "False"
    # by default every 128 MiB block is mapped afresh and faulted in (4 KiB or huge pages, so the count
    # varies); kept memory is reused without faults
    assert default_faults >= 10 * 64  # at least one fault per 2 MiB huge page of every block
    assert kept_faults < default_faults / 10


def test_off_linux_nothing_is_changed(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert keep_freed_memory() is False
