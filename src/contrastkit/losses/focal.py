r"""Multi-class (softmax) focal loss, Lin et al. 2017, "Focal Loss for Dense Object Detection" (eq. 5).

For logits [N, C] and targets y [N], with ``p_t = softmax(logits)[n, y_n]``::

    FL_n = -alpha_{y_n} * (1 - p_t)^gamma * log p_t                  L = mean_n FL_n (or sum / none)

``alpha`` is None (all 1), a float (one weight for every class) or a tensor [C] of per-class weights. The mean
is over samples (as in the paper), NOT normalised by the sum of the weights like
``F.cross_entropy(weight=...)``; the two coincide when ``alpha`` is None or a constant 1. With ``gamma = 0``
and ``alpha = None`` this is exactly ``F.cross_entropy``. The sigmoid (binary / multi-label) form of the focal
loss is a different loss, not this.
Numerics: ``log p_t`` from ``log_softmax``; ``1 - p_t = -expm1(log p_t)``, clamped to the smallest normal
number so that the gradient stays finite as ``p_t -> 1`` for any gamma.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contrastkit._checks import check_labels, check_tensor
from contrastkit.losses.info_nce import REDUCTIONS

__all__ = ["FocalLoss", "focal_loss"]



def _check_focal_options(gamma: float, alpha: float | Tensor | None, reduction: str) -> None:
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not math.isfinite(gamma) or gamma < 0:
        raise ValueError(f"gamma must be a finite number >= 0, got {gamma!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if alpha is None:
        return
    if isinstance(alpha, Tensor):
        if alpha.ndim != 1 or not alpha.is_floating_point() or not torch.isfinite(alpha).all() or (alpha < 0).any():
            raise ValueError(f"alpha must be a 1-D float tensor [C] of finite weights >= 0, got {tuple(alpha.shape)}")
    elif isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be None, a number >= 0 or a tensor [C] of class weights, got {alpha!r}")


def focal_loss(
    logits: Tensor,
    targets: Tensor,
    gamma: float = 2.0,
    alpha: float | Tensor | None = None,
    *,
    reduction: str = "mean",
) -> Tensor:
    """Softmax focal loss of ``logits`` [N, C] against integer ``targets`` [N] (formula: module docstring).

    Returns a scalar, or [N] for ``reduction="none"``.
    """
    check_tensor("logits", logits, 2, min_rows=1, floating=True)
    check_labels("targets", targets, logits.shape[0], num_classes=logits.shape[1])
    _check_focal_options(gamma, alpha, reduction)
    targets = targets.to(logits.device)
    log_probs = F.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=1)
    log_pt = log_probs.gather(1, targets[:, None]).squeeze(1)
    loss = -log_pt
    if gamma != 0:
        tiny = torch.finfo(log_pt.dtype).tiny
        loss = loss * (-torch.expm1(log_pt)).clamp(min=tiny) ** gamma
    if isinstance(alpha, Tensor):
        if alpha.shape[0] != logits.shape[1]:
            raise ValueError(f"alpha has {alpha.shape[0]} class weights but logits have {logits.shape[1]} classes")
        loss = loss * alpha.to(device=loss.device, dtype=loss.dtype)[targets]
    elif alpha is not None:
        loss = loss * float(alpha)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


class FocalLoss(nn.Module):
    """Module form of :func:`focal_loss`: ``FocalLoss(gamma=2.0, alpha=None)(logits, targets)``.

    A tensor ``alpha`` is stored as a buffer, so it follows ``.to(device)``.
    """

    alpha: Tensor | None

    def __init__(self, gamma: float = 2.0, alpha: float | Tensor | None = None, *, reduction: str = "mean") -> None:
        super().__init__()
        _check_focal_options(gamma, alpha, reduction)
        self.gamma = gamma
        self.reduction = reduction
        self.alpha_scalar: float | None = None
        if isinstance(alpha, Tensor):
            self.register_buffer("alpha", alpha.detach().clone())
        else:
            self.alpha = None
            self.alpha_scalar = None if alpha is None else float(alpha)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        alpha = self.alpha if self.alpha is not None else self.alpha_scalar
        return focal_loss(logits, targets, self.gamma, alpha, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, reduction={self.reduction!r}"
