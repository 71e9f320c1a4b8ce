"""Speed switches that are safe on any device: bfloat16 autocast and channels_last where the hardware has them.

On CPUs with AVX-512 BF16 (or AMX) oneDNN runs bfloat16 convolutions and GEMMs several times faster than float32;
elsewhere bfloat16 is emulated and slower, so ``resolve_precision("auto", device)`` only picks it when supported.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch
from torch import nn

Precision = Literal["auto", "32", "bf16"]
_PRECISIONS = ("auto", "32", "bf16")


def bf16_fast(device: torch.device | str) -> bool:
    """Whether bfloat16 matmuls/convolutions run natively (not emulated) on ``device``."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def resolve_precision(precision: str, device: torch.device | str) -> Literal["32", "bf16"]:
    """Map ``"auto"`` to ``"bf16"`` where it is fast on ``device``, else ``"32"``; validate the others."""
    if precision not in _PRECISIONS:
        raise ValueError(f"precision must be one of {_PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bf16" if bf16_fast(device) else "32"
    return "bf16" if precision == "bf16" else "32"


@contextlib.contextmanager
def autocast(device: torch.device | str, precision: str) -> Iterator[None]:
    """``torch.autocast`` in bfloat16 when ``precision`` resolves to ``"bf16"``, else a no-op context."""
    device = torch.device(device)
    if resolve_precision(precision, device) == "bf16":
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


def channels_last(module: nn.Module, enabled: bool = True) -> nn.Module:
    """Convert the module's 4-D weights to channels_last (NHWC) memory format in place; returns the module."""
    return module.to(memory_format=torch.channels_last) if enabled else module
