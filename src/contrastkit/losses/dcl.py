r"""Decoupled contrastive loss (Yeh et al. 2022, "Decoupled Contrastive Learning", ECCV; the form used by
GLCNet).

Same layout as NT-Xent (``u = normalize(cat(z1, z2))`` [2B, d], positive = the other view), but the positive
is left out of the denominator, with ONE log over all 2B - 2 negatives of both views::

    loss_i = -s_{i p(i)} + log sum_{k not in {i, p(i)}} exp(s_ik)        L = (1/2B) sum_i loss_i

Since the NT-Xent denominator additionally holds ``exp(s_{i p(i)}) > 0``, ``dcl < nt_xent`` for the same
inputs. The loss can be negative. Note: an alternative formulation adds two separate log-sum-exps (same-view
and cross-view negatives, ``log A + log B``); this is the single ``log(A + B)`` of the paper, also the form of
GLCNet (Li et al., IEEE TGRS 2022).
"""

from __future__ import annotations

from torch import Tensor

from contrastkit.losses._module import BatchContrastiveLoss
from contrastkit.losses._two_view import check_views, two_view_losses
from contrastkit.losses.info_nce import Reduction, check_options, reduce_anchor_losses

__all__ = ["DCLLoss", "dcl"]


def dcl(
    z1: Tensor,
    z2: Tensor,
    temperature: float = 0.5,
    *,
    gather_distributed: bool = False,
    chunk_size: int | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Decoupled contrastive loss of two views ``z1, z2`` [B, d] (raw embeddings; L2-normalised inside).

    Arguments and return value as :func:`~contrastkit.losses.nt_xent` (default tau 0.5, GLCNet's value).
    """
    check_views(z1, z2, gather_distributed)
    check_options(temperature, chunk_size, reduction)
    loss, valid = two_view_losses(z1, z2, temperature, gather_distributed, chunk_size, "negatives")
    return reduce_anchor_losses(loss, valid, reduction, mean_over_ranks=gather_distributed)


class DCLLoss(BatchContrastiveLoss):
    """Module form of :func:`dcl`: ``DCLLoss(temperature=0.5)(z1, z2)``."""

    default_temperature = 0.5

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        return dcl(z1, z2, self.temperature, **self.options())  # type: ignore[arg-type]
