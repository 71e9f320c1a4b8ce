"""Batch normalisation over the global batch of all ranks, on any device and backend (gloo on CPU included).

``torch.nn.SyncBatchNorm`` only runs on accelerators; this one computes the statistics with two differentiable
all-reduces per layer (``[sum x, count]``, then the centred ``sum (x - mean)^2``), so two CPU processes holding
half the batch each normalise exactly as one process holding the whole batch (Ioffe & Szegedy 2015, over the
global batch):

    mean_c = (sum_r sum_i x_ric) / n,   var_c = (sum_r sum_i (x_ric - mean_c)^2) / n,
    y = (x - mean_c) / sqrt(var_c + eps) * gamma_c + beta_c,   n = number of values per channel on all ranks.

The all-reduce's backward sums the gradients over ranks, so gradients equal the single-process ones after DDP's
averaging. Outside a process group (or in eval mode) it is ordinary batch normalisation.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from contrastkit import distributed


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm for ``[B, C]`` or ``[B, C, *]`` inputs whose training statistics span every rank's batch."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"GlobalBatchNorm expects [B, C, ...] inputs, got shape {tuple(input.shape)}")

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        if not (self.training and distributed.world_size() > 1):
            return super().forward(input)
        channels = input.shape[1]
        dims = [0, *range(2, input.dim())]
        x = input.to(torch.promote_types(input.dtype, torch.float32))
        # two passes (mean, then centred second moment), each one all-reduce: stable where E[x^2] - E[x]^2 is not
        first = distributed.all_reduce_with_grad(torch.cat([x.sum(dims), x.new_tensor([input.numel() / channels])]))
        total = first[-1]
        mean = first[:channels] / total
        shape = [1, channels] + [1] * (input.dim() - 2)
        centred = x - mean.view(shape)
        var = distributed.all_reduce_with_grad((centred * centred).sum(dims)) / total
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                unbiased = var * (total / (total - 1).clamp(min=1.0))
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        y = centred * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(input.dtype)


def convert_to_global_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm1d/2d/3d`` in ``module`` by :class:`GlobalBatchNorm`, keeping weights and stats.

    A sub-module with ``local_batch_norm = True`` keeps its batch norms: MoCo's key encoder, whose shuffle-BN needs
    the statistics of each process's own shuffled rows (He et al., CVPR 2020).
    """
    if getattr(module, "local_batch_norm", False):
        return module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        like = next(iter([*module.parameters(), *module.buffers()]), None)
        factory = (
            {} if like is None else {"device": like.device, "dtype": like.dtype if like.is_floating_point() else None}
        )
        new = GlobalBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats, **factory
        )
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        return new
    for name, child in module.named_children():
        setattr(module, name, convert_to_global_batchnorm(child))
    return module


__all__ = ["GlobalBatchNorm", "convert_to_global_batchnorm"]
