r"""NT-Xent, the SimCLR loss (Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual
Representations", eq. 1).

For two views ``z1, z2`` [B, d] of B samples, let ``u = normalize(cat(z1, z2))`` [2B, d] and
``s_ij = <u_i, u_j> / tau``. Anchor ``i`` has one positive ``p(i)`` (the other view of the same sample) and
the 2B - 2 other embeddings of both views as negatives; the self-pair is excluded::

    loss_i = -log( exp(s_{i p(i)}) / sum_{k != i} exp(s_ik) )        L = (1/2B) sum_i loss_i

The denominator holds the positive and the 2B - 2 negatives (Chen et al., ICML 2020, eq. 1; default tau
0.5). Under ``gather_distributed`` the local 2B anchors are contrasted with the keys of all ranks and the mean
is taken so that DDP's gradient averaging reproduces the single-process global-batch gradient exactly
(``contrastkit.distributed``).
"""

from __future__ import annotations

from torch import Tensor

from contrastkit.losses._module import BatchContrastiveLoss
from contrastkit.losses._two_view import check_views, two_view_losses
from contrastkit.losses.info_nce import Reduction, check_options, reduce_anchor_losses

__all__ = ["NTXentLoss", "grace_loss", "nt_xent"]


def nt_xent(
    z1: Tensor,
    z2: Tensor,
    temperature: float = 0.5,
    *,
    gather_distributed: bool = False,
    chunk_size: int | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """SimCLR NT-Xent loss of two views ``z1, z2`` [B, d] (raw embeddings; L2-normalised inside).

    Args:
        z1, z2: [B, d] embeddings of view 1 and view 2; row i of both is the same sample. B >= 2.
        temperature: tau > 0 (default 0.5, as in SimCLR, Chen et al., ICML 2020).
        gather_distributed: contrast the local anchors with the embeddings of all DDP ranks (exact gradients).
        chunk_size: anchor rows per block, bounding memory to O(chunk_size * 2B) in forward and backward.
        reduction: ``"mean"`` (over the 2B local anchors, globally normalised under DDP), ``"sum"`` or
            ``"none"`` ([2B]: rows of z1 first, then z2).

    Returns:
        Scalar loss (or [2B] for ``reduction="none"``).
    """
    check_views(z1, z2, gather_distributed)
    check_options(temperature, chunk_size, reduction)
    loss, valid = two_view_losses(z1, z2, temperature, gather_distributed, chunk_size, "all")
    return reduce_anchor_losses(loss, valid, reduction, mean_over_ranks=gather_distributed)


class NTXentLoss(BatchContrastiveLoss):
    """Module form of :func:`nt_xent`: ``NTXentLoss(temperature=0.5)(z1, z2)``."""

    default_temperature = 0.5

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        return nt_xent(z1, z2, self.temperature, **self.options())  # type: ignore[arg-type]


def grace_loss(z1: Tensor, z2: Tensor, temperature: float = 0.5, *, chunk_size: int | None = None) -> Tensor:
    r"""GRACE's node-level InfoNCE (Zhu et al. 2020, "Deep Graph Contrastive Representation Learning"; the loss
    ARIEL, Feng et al., WWW 2022, builds on) of two views ``z1, z2`` [n, d] of the same n nodes (projections).

    With ``theta`` the cosine similarity, for node i of view 1 (``u_i``) and its other view ``v_i``::

        l(u_i, v_i) = -log( e^{theta(u_i, v_i)/tau}
                            / (sum_k e^{theta(u_i, v_k)/tau} + sum_{k != i} e^{theta(u_i, u_k)/tau}) )
        L = (1/n) sum_i (l(u_i, v_i) + l(v_i, u_i)) / 2

    the positive, n - 1 inter-view and n - 1 intra-view negatives: NT-Xent over the 2n views, computed on the same
    fused, blocked path (:mod:`contrastkit.losses.fused`): no n x n matrix exists, so a 100k-node graph fits, and
    ``chunk_size`` sets the block. Returns the scalar L.
    """
    return nt_xent(z1, z2, temperature, chunk_size=chunk_size)
