r"""Re-weighted classification losses for long-tailed training sets.

* **Class-balanced loss** (Cui, Jia, Lin, Song & Belongie, CVPR 2019, "Class-Balanced Loss Based on Effective
  Number of Samples", eq. 4-6). Class c with n_c training samples has the *effective number*
  ``E_c = (1 - beta^{n_c}) / (1 - beta)`` and the weight ``w_c = 1 / E_c = (1 - beta) / (1 - beta^{n_c})``,
  normalised so that ``sum_c w_c = C``. For logits [N, C] and targets y [N]::

      CB_n = w_{y_n} * L(logits_n, y_n),     L = CE  or  focal (gamma),     loss = mean_n CB_n

  The mean is over samples, NOT divided by the sum of the batch's weights (as in the experiments of Cui et
  al.: the weighted sum divided by the number of samples with a non-zero weight, here N).
  ``beta = 0`` gives uniform weights (plain CE / focal); ``beta -> 1`` tends to inverse-frequency weights.
* **Inverse-frequency weights** ``w_c = (1 / n_c) / sum_k (1 / n_k) * C`` (also summing to C), for the usual
  weighted CE ``F.cross_entropy(logits, y, weight=w) = sum_n w_{y_n} CE_n / sum_n w_{y_n}`` (PyTorch's
  normalised weighted mean).

Class counts come from the TRAINING split only (never the test split).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from contrastkit.losses.focal import focal_loss

__all__ = [
    "ClassBalancedLoss",
    "class_balanced_loss",
    "class_balanced_weights",
    "inverse_frequency_weights",
]

CB_BASE_LOSSES = ("ce", "focal")


def _counts(class_counts: Sequence[int] | Tensor) -> Tensor:
    """Validated per-class counts as a float64 CPU tensor [C]."""
    if isinstance(class_counts, Tensor):
        values = class_counts.detach().to("cpu").tolist()
    else:
        values = list(class_counts)
    if not values or any(isinstance(n, bool) or not isinstance(n, (int, float)) for n in values):
        raise ValueError(f"class_counts must be a non-empty sequence of per-class sample counts, got {values!r}")
    if any(not math.isfinite(n) or n < 1 for n in values):
        raise ValueError(
            f"class_counts must all be >= 1 (a class without training samples has no weight), got {values!r}; "
            "drop empty classes first"
        )
    return torch.tensor(values, dtype=torch.float64)


def class_balanced_weights(class_counts: Sequence[int] | Tensor, beta: float = 0.999) -> Tensor:
    """Cui et al.'s weights ``w_c = (1 - beta) / (1 - beta^{n_c})`` normalised to ``sum_c w_c = C``.

    Args:
        class_counts: [C] training samples per class (each >= 1).
        beta: in [0, 1); Cui et al. use 0.9, 0.99, 0.999, 0.9999.

    Returns:
        float64 tensor [C] (CPU). ``1 - beta^n`` is computed as ``-expm1(n * log(beta))`` with
        ``log(beta) = log1p(beta - 1)`` (accurate for beta near 1).
    """
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 <= beta < 1:
        raise ValueError(f"beta must be a number in [0, 1), got {beta!r} (Cui et al. use 0.99 - 0.9999)")
    n = _counts(class_counts)
    if beta == 0:
        return torch.ones_like(n)
    inverse_effective = (1.0 - beta) / -torch.expm1(n * math.log1p(beta - 1.0))
    return inverse_effective / inverse_effective.sum() * n.numel()


def inverse_frequency_weights(class_counts: Sequence[int] | Tensor) -> Tensor:
    """``w_c = (1 / n_c) / sum_k (1 / n_k) * C`` (float64 [C], sums to C), for ``F.cross_entropy(weight=w)``."""
    inv = 1.0 / _counts(class_counts)
    return inv / inv.sum() * inv.numel()


def class_balanced_loss(
    logits: Tensor,
    targets: Tensor,
    class_counts: Sequence[int] | Tensor,
    beta: float = 0.999,
    *,
    base_loss: str = "ce",
    gamma: float = 2.0,
    reduction: str = "mean",
) -> Tensor:
    """Class-balanced loss of ``logits`` [N, C] and integer ``targets`` [N] (formula: module docstring).

    Args:
        class_counts: [C] training samples per class.
        beta: effective-number hyper-parameter in [0, 1).
        base_loss: ``"ce"`` (softmax cross-entropy) or ``"focal"`` (softmax focal loss with ``gamma``).
        reduction: ``"mean"`` over samples, ``"sum"`` or ``"none"`` ([N]).
    """
    if base_loss not in CB_BASE_LOSSES:
        raise ValueError(f"base_loss must be one of {CB_BASE_LOSSES}, got {base_loss!r}")
    weights = class_balanced_weights(class_counts, beta)
    if isinstance(logits, Tensor) and logits.ndim == 2 and weights.numel() != logits.shape[1]:
        raise ValueError(f"class_counts has {weights.numel()} classes but logits have {logits.shape[1]} columns")
    alpha = weights.to(device=logits.device, dtype=torch.float32)
    return focal_loss(logits, targets, gamma if base_loss == "focal" else 0.0, alpha, reduction=reduction)


class ClassBalancedLoss(nn.Module):
    """Module form of :func:`class_balanced_loss`; the weights [C] are a buffer (they follow ``.to(device)``)."""

    weights: Tensor

    def __init__(
        self,
        class_counts: Sequence[int] | Tensor,
        beta: float = 0.999,
        *,
        base_loss: str = "ce",
        gamma: float = 2.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        if base_loss not in CB_BASE_LOSSES:
            raise ValueError(f"base_loss must be one of {CB_BASE_LOSSES}, got {base_loss!r}")
        self.register_buffer("weights", class_balanced_weights(class_counts, beta).float())
        self.beta = beta
        self.base_loss = base_loss
        self.gamma = gamma if base_loss == "focal" else 0.0
        self.reduction = reduction

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        if isinstance(logits, Tensor) and logits.ndim == 2 and self.weights.numel() != logits.shape[1]:
            raise ValueError(f"this loss has {self.weights.numel()} class weights but logits have {logits.shape[1]}")
        return focal_loss(logits, targets, self.gamma, self.weights, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, base_loss={self.base_loss!r}, gamma={self.gamma}, reduction={self.reduction!r}"
