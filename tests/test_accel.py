"""Precision and memory-format switches."""

from __future__ import annotations

import pytest
import torch

from contrastkit import accel


def test_resolve_precision() -> None:
    assert accel.resolve_precision("32", "cpu") == "32"
    assert accel.resolve_precision("bf16", "cpu") == "bf16"
    assert accel.resolve_precision("auto", "cpu") == ("bf16" if accel.bf16_fast("cpu") else "32")
    with pytest.raises(ValueError, match="precision must be one of"):
        accel.resolve_precision("fp8", "cpu")


def test_autocast_switches_matmul_dtype() -> None:
    a = torch.randn(4, 4)
    with accel.autocast("cpu", "bf16"):
        assert (a @ a).dtype == torch.bfloat16
    with accel.autocast("cpu", "32"):
        assert (a @ a).dtype == torch.float32


def test_channels_last_converts_conv_weights() -> None:
    conv = accel.channels_last(torch.nn.Conv2d(3, 8, 3))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not accel.channels_last(torch.nn.Conv2d(3, 8, 3), enabled=False).weight.is_contiguous(
        memory_format=torch.channels_last
    )
