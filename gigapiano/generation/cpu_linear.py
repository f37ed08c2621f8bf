"""Packed CPU weights for the fixed-width forwards of note-by-note decoding.

Inpainting feeds the model the same number of rows at every step: the sampled pitch plus the next note's
known separator, dt and duration, so 4 rows per variation. MKL's fp32 GEMM has a cliff there: on the
2-core development CPU (MKL 2024.2, AVX-512, one thread) the 16 x 1024 model's linear layers take about
twice as long for 4 rows as for 1, although both are bound by reading the weights. MKL's packed GEMM
(each weight reordered once for a fixed row count; the kernel PyTorch's own CPU compiler uses for frozen
linear layers) brings 4, 8 and 12 rows back to about 1.35x-1.8x faster than the plain call, and is no
faster for other counts, so only those are packed. Any other input (a prefill, a different row count,
autograd) goes through the ordinary `F.linear`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

# Row counts for which MKL's packed fp32 GEMM measured faster than the plain one (see the module docstring).
PACKED_ROW_COUNTS = (4, 8, 12)


def packing_available(model: nn.Module) -> bool:
    """True when the model runs in fp32 on the CPU and this torch build has MKL's packed linear ops."""
    parameter = next(model.parameters(), None)
    return (
        parameter is not None
        and parameter.device.type == "cpu"
        and parameter.dtype == torch.float32
        and torch.backends.mkl.is_available()
        and hasattr(torch.ops.mkl, "_mkl_linear")
        and hasattr(torch.ops.mkl, "_mkl_reorder_linear_weight")
    )


class _PackedForward:
    """Replacement `forward` of one `nn.Linear`: packed GEMM for `rows` rows, `F.linear` otherwise."""

    def __init__(self, linear: nn.Linear, rows: int) -> None:
        self.linear = linear
        self.rows = rows
        self.packed = torch.ops.mkl._mkl_reorder_linear_weight(linear.weight.detach(), rows)

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        weight, bias = self.linear.weight, self.linear.bias
        if (
            hidden.numel() != self.rows * weight.shape[1]
            or torch.is_grad_enabled()
            or hidden.dtype != weight.dtype
        ):
            return F.linear(hidden, weight, bias)
        flat = hidden.reshape(self.rows, weight.shape[1]).contiguous()
        out = torch.ops.mkl._mkl_linear(flat, self.packed, weight, bias, self.rows)
        return out.view(*hidden.shape[:-1], weight.shape[0])


@contextmanager
def packed_linears(model: nn.Module, rows: int) -> Iterator[bool]:
    """Within the block, every plain `nn.Linear` of `model` uses a weight packed for `rows` input rows.

    Yields whether packing is active (False where it would not help or is unavailable). The original
    forwards are restored on exit, also after an error; the weights themselves are never modified.
    """
    if rows not in PACKED_ROW_COUNTS or not packing_available(model):
        yield False
        return
    linears = [module for module in model.modules() if type(module) is nn.Linear]
    try:
        for linear in linears:
            linear.forward = _PackedForward(linear, rows)
        logger.debug("packed %d linear layers for %d-row forwards", len(linears), rows)
        yield True
    finally:
        for linear in linears:
            linear.__dict__.pop("forward", None)


__all__ = ["PACKED_ROW_COUNTS", "packed_linears", "packing_available"]
