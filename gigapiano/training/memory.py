"""Keep freed memory inside the process while training on a CPU (glibc's allocator only).

By default glibc hands large blocks (above its mmap threshold, at most 32 MiB) and the top of its heap back
to the kernel as soon as they are freed. A training step frees and re-allocates the same activation tensors
every step, so the next step faults them in again as fresh zeroed pages. `bench/bench_train.py` measured
0.3 to 8.5 GiB of page faults per step without this, none with it, and (`docs/benchmarks.md`): through the
`Trainer` on the medium preset with 512-token windows 1.04x the tokens per second; in its plain loop with
1024-token windows, where the attention tensors are largest, 2.32x. The price is that the process keeps its
peak memory until it exits, which suits a training run.
"""

from __future__ import annotations

import ctypes
import logging
import sys

logger = logging.getLogger(__name__)

#: glibc's `mallopt` parameter numbers (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Tells glibc not to serve large blocks with mmap and not to trim its heap.

    Returns:
        Whether both settings took effect (False off Linux, or with another C library).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    done = mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, 2**30) == 1
    if done:
        logger.info("Training on the CPU: freed memory stays in the process (no page faults between steps).")
    return done


__all__ = ["keep_freed_memory"]
