r"""``BatchNorm2d`` with a fused bfloat16 CPU training path: ``act(bn(x) [+ z])`` in one native kernel.

Training-mode batch norm (Ioffe & Szegedy, ICML 2015) over ``x: [N, C, H, W]``, per channel ``c``:

    y = act( (x - mean_c) / sqrt(var_c + eps) * gamma_c + beta_c  [+ z] ),   act = ReLU or identity,

mean/var over ``N, H, W`` (biased var for the output, unbiased for ``running_var``). In a ResNet every norm is
followed by a ReLU, or by the residual add and a ReLU; under bfloat16 autocast on CPU these memory-bound ops cost
more than the convolutions' own speed-up leaves: ATen's bf16 batch norm takes several times as long as a copy of
its input (``benchmarks/step_profile.py`` times both). The native kernel (``models/csrc/batch_norm_bf16.cpp``,
AVX-512) reads the bf16 activation in place, accumulates in float32/float64, and writes the bf16 result of norm,
add and ReLU in one pass after the statistics pass; its backward does the same for the gradients.

The fused path is taken only when all of these hold, and otherwise the module is exactly ``nn.BatchNorm2d``
followed by ``+ z`` and ``relu``:

* the module is in training mode, affine parameters (if any) are float32, no hooks are registered on it;
* ``x`` (and ``z``) is a bfloat16 CPU tensor in ``channels_last`` layout with more than one value per channel;
* the native kernels are built (:func:`contrastkit.models.native.native_kernels`; they need AVX-512), the fused
  path is switched on (:func:`set_fused_batch_norm`), and no ``torch.compile`` / ``torch.func`` transform is
  tracing.

Rounding matches the unfused chain: the normalised value is rounded to bfloat16 before the residual is added, as
``bn(x) + z`` rounds it. Double backward (``create_graph=True``) recomputes the unfused chain in differentiable ops.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contrastkit.models.activations import relu
from contrastkit.models.native import native_kernels

__all__ = ["BatchNorm2d", "norm_act", "set_fused_batch_norm"]

_fused_enabled = True  # process-wide switch; see set_fused_batch_norm


def set_fused_batch_norm(enabled: bool) -> bool:
    """Switch the fused bf16 batch-norm path on or off for the whole process; returns the old setting.

    Off, every :class:`BatchNorm2d` is ``nn.BatchNorm2d`` followed by ``+ z`` and ReLU (``benchmarks/throughput.py
    --no-fused-bn`` measures what the kernel buys).
    """
    global _fused_enabled
    previous, _fused_enabled = _fused_enabled, bool(enabled)
    return previous


def _rows(x: Tensor) -> Tensor:
    """``[N, C, H, W]`` channels_last -> the ``[N * H * W, C]`` view of the same memory."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def _unrows(rows: Tensor, like: Tensor) -> Tensor:
    """Inverse of :func:`_rows`: ``[N * H * W, C]`` -> ``[N, C, H, W]`` channels_last, a view."""
    n, c, h, w = like.shape
    return rows.view(n, h, w, c).permute(0, 3, 1, 2)


def _unfused(x: Tensor, weight: Tensor, bias: Tensor, residual: Tensor | None, eps: float, act: bool) -> Tensor:
    """The differentiable reference of the fused op (batch statistics, no running-stat update)."""
    out = F.batch_norm(x, None, None, weight, bias, True, 0.0, eps)
    if residual is not None:
        out = out + residual
    return torch.relu(out) if act else out


class _FusedBatchNormAct(torch.autograd.Function):
    """``act(bn_train(x) [+ z])`` on bf16 channels_last CPU tensors; returns ``(y, mean, biased_var)``."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: Tensor, weight: Tensor, bias: Tensor, residual: Tensor | None, eps: float, act: bool
    ) -> tuple[Tensor, Tensor, Tensor]:
        z = None if residual is None else _rows(residual)
        y, mean, invstd, var = torch.ops.contrastkit_bf16.batch_norm_forward(_rows(x), weight, bias, z, eps, act)
        y = _unrows(y, x)
        ctx.eps, ctx.act, ctx.has_residual = eps, act, residual is not None
        ctx.save_for_backward(x, weight, bias, residual, y, mean, invstd)
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, grad_y: Tensor, _grad_mean: Tensor, _grad_var: Tensor
    ) -> tuple[Tensor | None, ...]:
        x, weight, bias, residual, y, mean, invstd = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: differentiate the unfused chain instead
            candidates = (x, weight, bias, residual)
            wanted = [i for i, t in enumerate(candidates) if t is not None and t.requires_grad]
            with torch.enable_grad():
                out = _unfused(x, weight, bias, residual, ctx.eps, ctx.act)
            grads = torch.autograd.grad(out, [candidates[i] for i in wanted], grad_y, create_graph=True)
            result: list[Tensor | None] = [None] * 6
            for i, grad in zip(wanted, grads, strict=True):
                result[i] = grad
            return tuple(result)
        dy = grad_y.contiguous(memory_format=torch.channels_last)
        residual_grad = ctx.has_residual and ctx.needs_input_grad[3]
        dx, dweight, dbias, dz = torch.ops.contrastkit_bf16.batch_norm_backward(
            _rows(dy), _rows(x), _rows(y), weight, bias, mean, invstd, ctx.act, ctx.has_residual, residual_grad
        )
        return _unrows(dx, x), dweight, dbias, _unrows(dz, x) if residual_grad else None, None, None


def _tracing(x: Tensor) -> bool:
    if torch.compiler.is_compiling():
        return True
    peek = getattr(torch._C._functorch, "peek_interpreter_stack", None)
    return peek is not None and peek() is not None


class BatchNorm2d(nn.BatchNorm2d):
    """Drop-in ``nn.BatchNorm2d`` (same parameters, buffers and state dict) with a fused bf16 CPU training path.

    ``forward(x)`` is the norm alone; :meth:`forward_act` is ``act(norm(x) [+ residual])``, fused when the
    module docstring's conditions hold.
    """

    def forward(self, input: Tensor) -> Tensor:
        """``[N, C, H, W] -> [N, C, H, W]``; bn only."""
        if self._fused(input, None):
            return self._forward_fused(input, None, False)
        return super().forward(input)

    def forward_act(self, input: Tensor, residual: Tensor | None = None, act: bool = True) -> Tensor:
        """``act(bn(input) [+ residual])``, ReLU when ``act``; shapes ``[N, C, H, W]``; see :func:`norm_act`."""
        return norm_act(self, input, residual, act)

    def _fused(self, x: Tensor, residual: Tensor | None) -> bool:
        """Whether the fused kernel applies (the module docstring's conditions); the cheapest tests first."""
        return (
            x.dtype == torch.bfloat16
            and x.device.type == "cpu"
            and self.training
            and _fused_enabled
            and x.dim() == 4
            and x.shape[0] * x.shape[2] * x.shape[3] > 1
            and (self.weight is None or (self.weight.dtype == torch.float32 and self.bias.dtype == torch.float32))
            and not _tracing(x)  # before the layout queries, which vmap does not answer
            and x.is_contiguous(memory_format=torch.channels_last)
            and (
                residual is None
                or (
                    residual.dtype == torch.bfloat16
                    and residual.shape == x.shape
                    and residual.is_contiguous(memory_format=torch.channels_last)
                )
            )
            and not (self._forward_hooks or self._forward_pre_hooks)
            and not (nn.modules.module._global_forward_hooks or nn.modules.module._global_forward_pre_hooks)
            and native_kernels()
        )

    def _forward_fused(self, x: Tensor, residual: Tensor | None, act: bool) -> Tensor:
        channels = x.shape[1]
        weight = self.weight if self.weight is not None else x.new_ones(channels, dtype=torch.float32)
        bias = self.bias if self.bias is not None else x.new_zeros(channels, dtype=torch.float32)
        y, mean, var = _FusedBatchNormAct.apply(x, weight, bias, residual, self.eps, act)
        if self.track_running_stats:  # training mode is a condition of the fused path
            self.num_batches_tracked.add_(1)  # type: ignore[union-attr,operator]
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            count = x.numel() // channels
            with torch.no_grad():
                self.running_mean.mul_(1 - factor).add_(mean, alpha=factor)  # type: ignore[union-attr]
                self.running_var.mul_(1 - factor).add_(var, alpha=factor * count / (count - 1))  # type: ignore[union-attr]
        return y


def norm_act(norm: nn.Module, x: Tensor, residual: Tensor | None = None, act: bool = True) -> Tensor:
    """``act(norm(x) [+ residual])`` for any norm module; one fused kernel when ``norm`` is a contrastkit
    :class:`BatchNorm2d` and the module docstring's conditions hold, else the three ops one after the other."""
    if isinstance(norm, BatchNorm2d) and norm._fused(x, residual):
        return norm._forward_fused(x, residual, act)
    out = norm(x)
    if residual is not None:
        out = out + residual
    return relu(out, inplace=True) if act else out
