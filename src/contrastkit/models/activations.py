r"""ReLU with a fast, exact bfloat16 path on CPU.

``relu(x) = max(x, 0)``. On CPU, ATen's bfloat16 ``clamp_min_`` (what ``nn.ReLU`` runs) is slow: it takes over
twice as long as a plain copy of the tensor. A bfloat16 value is a
sign bit followed by exponent and mantissa, so read as a signed 16-bit integer it is negative exactly when the
float is negative (or -0.0, or a NaN with the sign bit set). Hence, bit for bit,

    relu_bf16(x) = view_bf16( max(view_int16(x), 0) )
    relu_bf16'(x) * g = view_bf16( threshold_backward(view_int16(g), view_int16(relu(x)), 0) )

which run as integer kernels (``benchmarks/step_profile.py`` on a 2-core AVX-512 CPU, [512, 16, 28, 28]
channels_last, ``docs/results/step_profile.json``: forward 0.39 ms vs 1.06 ms, backward 0.76 ms vs 1.02 ms).
The results equal ``torch.relu`` as values for every finite and infinite input (bit for bit except that -0.0
comes out as +0.0, which ATen keeps), and the gradients are bit-identical. The one real difference: a NaN whose
sign bit is set becomes 0 instead of staying NaN (a NaN with the sign bit clear stays NaN), so a diverging network
still shows non-finite losses through its other NaNs. ``set_fast_path(False)`` switches the fast path off.

The fast path is taken only for bfloat16 CPU tensors outside ``torch.compile`` tracing; everything else (float32,
CUDA, compiled graphs) is ``torch.relu``. Double backward (``create_graph=True``) is supported: the backward is then
computed with differentiable float ops.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["ReLU", "relu", "set_fast_path"]

_fast_path_enabled = True  # process-wide switch; see set_fast_path


def set_fast_path(enabled: bool) -> bool:
    """Switch the bfloat16 fast path on or off for the whole process (off: ATen's ReLU); returns the old setting.

    For benchmarks that measure what the fast path buys (``benchmarks/throughput.py --no-fast-relu``).
    """
    global _fast_path_enabled
    previous, _fast_path_enabled = _fast_path_enabled, bool(enabled)
    return previous


def _fast_path(x: Tensor) -> bool:
    return (
        _fast_path_enabled
        and x.dtype == torch.bfloat16
        and x.device.type == "cpu"
        and not torch.compiler.is_compiling()
    )


class _BF16ReLU(torch.autograd.Function):
    """``relu`` on bfloat16 through the int16 bit pattern (see the module docstring)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, inplace: bool) -> Tensor:  # type: ignore[override]
        bits = x.view(torch.int16)
        if inplace:
            bits.clamp_min_(0)
            return x
        return bits.clamp_min(0).view(torch.bfloat16)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, bool], output: Tensor) -> None:
        x, inplace = inputs
        if inplace:
            ctx.mark_dirty(x)
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        (output,) = ctx.saved_tensors
        if torch.is_grad_enabled() or grad.dtype != torch.bfloat16:  # create_graph=True: stay differentiable
            return grad * (output > 0).to(grad.dtype), None
        bits = torch.ops.aten.threshold_backward(grad.view(torch.int16), output.view(torch.int16), 0)
        return bits.view(torch.bfloat16), None


def relu(x: Tensor, inplace: bool = False) -> Tensor:
    """``max(x, 0)`` elementwise; the exact int16 fast path for bfloat16 CPU tensors, else ``torch.relu``."""
    if _fast_path(x):
        return _BF16ReLU.apply(x, inplace)
    return torch.relu_(x) if inplace else torch.relu(x)


class ReLU(nn.ReLU):
    """Drop-in ``nn.ReLU`` (same state, same repr) whose bfloat16 CPU path is :func:`relu`'s exact fast one."""

    def forward(self, input: Tensor) -> Tensor:
        return relu(input, self.inplace)
