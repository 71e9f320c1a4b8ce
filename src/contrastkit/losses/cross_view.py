r"""Cross-view InfoNCE, the loss of DirectCLR (Jing et al., ICLR 2022, "Understanding Dimensional Collapse in
Contrastive Self-supervised Learning"; also CLIP-style symmetric contrast, Radford et al., ICML 2021).

Anchors are the B embeddings of view 1, keys the B embeddings of view 2; the positive of anchor i is key i and
the negatives are the other B - 1 keys of the OTHER view only (no same-view negatives, unlike NT-Xent's 2B -
2). With ``S_ij = <u1_i, u2_j> / tau`` (``u = normalize(z)`` when ``normalize``)::

    L_12 = (1/B) sum_i [ -S_ii + log sum_j exp(S_ij) ]          (= CE(S, arange(B)))
    L    = (L_12 + L_21) / 2 if symmetric else L_12              (L_21 uses S^T)

DirectCLR uses tau = 0.1 and the symmetric form; its toy tasks use the un-normalised variant
(``normalize=False``). Closed form: B orthonormal identical pairs give ``-1/tau + log(e^{1/tau} + B - 1)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from contrastkit import distributed as _dist
from contrastkit._checks import check_same_shape, check_tensor
from contrastkit.losses._module import BatchContrastiveLoss
from contrastkit.losses._two_view import gather_keys
from contrastkit.losses.fused import DEFAULT_BLOCK, cross_view_mean_loss, label_contrastive_losses
from contrastkit.losses.info_nce import check_options, reduce_anchor_losses

__all__ = ["CrossViewInfoNCELoss", "cross_view_info_nce"]


def _one_direction(
    anchors: Tensor,
    keys_local: Tensor,
    temperature: float,
    normalize: bool,
    gather_distributed: bool,
    chunk_size: int | None,
) -> Tensor:
    keys, offset = gather_keys(keys_local, gather_distributed)
    if keys.shape[0] < 2:
        raise ValueError("cross_view_info_nce needs at least 2 samples (one pair has no negatives), got 1")
    # labels: the global sample id, so the positive of anchor i is key offset + i and every other key is a negative
    labels = torch.arange(anchors.shape[0], device=anchors.device) + offset
    key_labels = torch.arange(keys.shape[0], device=anchors.device)
    loss, valid = label_contrastive_losses(anchors, keys, labels, key_labels, temperature, self_offset=None,
                                           normalize=normalize, block=chunk_size or DEFAULT_BLOCK,
                                           partners=labels)  # fmt: skip
    return reduce_anchor_losses(loss, valid, "mean", mean_over_ranks=gather_distributed)


def cross_view_info_nce(
    z1: Tensor,
    z2: Tensor,
    temperature: float = 0.1,
    *,
    symmetric: bool = True,
    normalize: bool = True,
    gather_distributed: bool = False,
    chunk_size: int | None = None,
) -> Tensor:
    """Cross-view InfoNCE of ``z1, z2`` [B, d] (row i of both = the same sample); scalar loss.

    Args:
        z1, z2: [B, d] raw embeddings of the two views, B >= 2 (globally, under ``gather_distributed``).
        temperature: tau > 0 (DirectCLR: 0.1).
        symmetric: average the z1 -> z2 and z2 -> z1 directions (DirectCLR) instead of z1 -> z2 only.
        normalize: L2-normalise the embeddings (cosine similarity); False = raw dot products.
        gather_distributed: local anchors against the other view's keys from all DDP ranks (exact gradients).
        chunk_size: anchor rows per block (memory O(chunk_size * B)).
    """
    check_tensor("z1", z1, 2, min_rows=1, floating=True)
    check_tensor("z2", z2, 2, min_rows=1, floating=True)
    check_same_shape("z1", z1, "z2", z2)
    check_options(temperature, chunk_size, "mean")
    if symmetric and not (gather_distributed and _dist.world_size() > 1):  # both directions from one pass
        if z1.shape[0] < 2:
            raise ValueError("cross_view_info_nce needs at least 2 samples (one pair has no negatives), got 1")
        return cross_view_mean_loss(z1, z2, temperature, normalize=normalize, block=chunk_size or DEFAULT_BLOCK)
    loss = _one_direction(z1, z2, temperature, normalize, gather_distributed, chunk_size)
    if symmetric:
        loss = 0.5 * (loss + _one_direction(z2, z1, temperature, normalize, gather_distributed, chunk_size))
    return loss


class CrossViewInfoNCELoss(BatchContrastiveLoss):
    """Module form of :func:`cross_view_info_nce`: ``CrossViewInfoNCELoss(temperature=0.1)(z1, z2)``."""

    def __init__(
        self,
        temperature: float = 0.1,
        *,
        symmetric: bool = True,
        normalize: bool = True,
        gather_distributed: bool = False,
        chunk_size: int | None = None,
    ) -> None:
        super().__init__(temperature, gather_distributed=gather_distributed, chunk_size=chunk_size)
        self.symmetric = symmetric
        self.normalize = normalize

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        return cross_view_info_nce(
            z1,
            z2,
            self.temperature,
            symmetric=self.symmetric,
            normalize=self.normalize,
            gather_distributed=self.gather_distributed,
            chunk_size=self.chunk_size,
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, symmetric={self.symmetric}, normalize={self.normalize}"
