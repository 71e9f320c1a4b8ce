r"""Classification losses by name, for the supervised baselines and SuperCon's stage 2.

``build_classification_loss(name, class_counts)`` returns a module ``(logits [B, K], targets [B]) -> scalar``
(``n_c`` the TRAINING count of class c):

* ``"ce"``: ``mean_n CE_n``;
* ``"weighted_ce"``: ``sum_n w_{y_n} CE_n / sum_n w_{y_n}``, inverse-frequency ``w_c ∝ 1 / n_c`` (sum C),
  PyTorch's ``F.cross_entropy(weight=w)``;
* ``"focal"``: ``mean_n -(1 - p_t)^gamma log p_t`` (Lin et al., ICCV 2017);
* ``"class_balanced"``: ``mean_n w_{y_n} CE_n``, ``w_c ∝ (1 - beta) / (1 - beta^{n_c})`` (sum C; Cui et al.,
  CVPR 2019).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from contrastkit.losses.class_balanced import ClassBalancedLoss, inverse_frequency_weights
from contrastkit.losses.focal import FocalLoss

__all__ = ["CLASSIFICATION_LOSSES", "build_classification_loss"]

CLASSIFICATION_LOSSES = ("ce", "weighted_ce", "focal", "class_balanced")


class _WeightedCrossEntropy(nn.Module):
    """``F.cross_entropy(logits, y, weight=w)`` with the weights [K] as a buffer."""

    weight: Tensor

    def __init__(self, weight: Tensor) -> None:
        super().__init__()
        self.register_buffer("weight", weight.float())

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(logits.float(), targets, weight=self.weight)


class _CrossEntropy(nn.Module):
    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(logits.float(), targets)


def build_classification_loss(
    name: str,
    class_counts: Sequence[int] | Tensor | None = None,
    *,
    focal_gamma: float = 2.0,
    cb_beta: float = 0.999,
) -> nn.Module:
    """The loss module ``(logits [B, K], targets [B]) -> scalar`` called ``name`` (see the module docstring).

    ``class_counts`` [K] (training samples per class) is required for ``"weighted_ce"`` and
    ``"class_balanced"``.
    """
    if name not in CLASSIFICATION_LOSSES:
        raise ValueError(f"loss must be one of {CLASSIFICATION_LOSSES}, got {name!r}")
    if name in ("weighted_ce", "class_balanced") and class_counts is None:
        raise ValueError(f"loss={name!r} needs class_counts (training samples per class, from the training split)")
    if name == "ce":
        return _CrossEntropy()
    if name == "focal":
        return FocalLoss(gamma=focal_gamma)
    if name == "weighted_ce":
        return _WeightedCrossEntropy(inverse_frequency_weights(class_counts))  # type: ignore[arg-type]
    return ClassBalancedLoss(class_counts, cb_beta)  # type: ignore[arg-type]
