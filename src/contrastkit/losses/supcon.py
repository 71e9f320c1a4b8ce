r"""Supervised contrastive loss, "L_out" of Khosla et al., NeurIPS 2020, "Supervised Contrastive Learning" (eq. 2).

``features`` [N, d] hold all views concatenated (e.g. ``cat(view1, view2)``) and ``labels`` [N] the labels
repeated accordingly. With ``u = normalize(features)`` and ``s_ij = <u_i, u_j> / tau``, anchor ``i`` has the
positives ``P(i) = {p != i : y_p = y_i}`` and the contrast set ``A(i) = {a != i}``::

    loss_i = -(tau / tau_base) * (1/|P(i)|) sum_{p in P(i)} log( exp(s_ip) / sum_{a in A(i)} exp(s_ia) )
    L = mean of loss_i over the anchors with |P(i)| >= 1

Anchors without a positive (a class with a single sample in the batch) are left out of the mean instead of
producing NaN (``1/|P(i)|`` with ``|P(i)| = 0``); if no anchor has a positive the loss is 0 (with a graph).
``reduction="none"`` returns the per-anchor losses with 0 for those anchors, so the all-anchor convention of
Khosla et al. (mean over ALL anchors, positive-less ones adding 0) is ``supcon(..., reduction="none").mean()``.
``base_temperature=None`` means ``tau_base = tau`` (scale 1, eq. 2 as written); Khosla et al. (NeurIPS 2020)
default to ``tau = tau_base = 0.07``. With all labels distinct over two views, supcon equals :func:`nt_xent`
exactly.

Under ``gather_distributed`` the local anchors are contrasted with the features of all ranks (labels gathered
alongside, without gradient); the mean is normalised by the GLOBAL number of anchors with a positive, so that
DDP's averaging gives exactly the global-batch mean even when ranks have different numbers of valid anchors.
"""

from __future__ import annotations

from torch import Tensor

from contrastkit import distributed as _dist
from contrastkit._checks import check_labels, check_positive, check_tensor
from contrastkit.losses._module import BatchContrastiveLoss
from contrastkit.losses._two_view import gather_keys
from contrastkit.losses.fused import DEFAULT_BLOCK, label_contrastive_losses
from contrastkit.losses.info_nce import Reduction, check_options, reduce_anchor_losses

__all__ = ["SupConLoss", "supcon"]


def supcon(
    features: Tensor,
    labels: Tensor,
    temperature: float = 0.1,
    base_temperature: float | None = None,
    *,
    gather_distributed: bool = False,
    chunk_size: int | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Supervised contrastive loss (L_out) of ``features`` [N, d] with integer ``labels`` [N].

    Args:
        features: [N, d] raw embeddings of all views concatenated (L2-normalised inside).
        labels: [N] integer class ids, repeated per view to match ``features``.
        temperature: tau > 0.
        base_temperature: tau_base > 0; the loss is scaled by tau / tau_base. None = tau (no scaling).
        gather_distributed: contrast local anchors with the features (and labels) of all DDP ranks.
        chunk_size: anchor rows per block (memory O(chunk_size * N) in forward and backward).
        reduction: ``"mean"`` over anchors with a positive, ``"sum"``, or ``"none"`` ([N], 0 without
        positive).

    Returns:
        Scalar loss (or [N] for ``reduction="none"``).
    """
    check_tensor("features", features, 2, min_rows=1, floating=True)
    if isinstance(labels, Tensor) and labels.ndim == 1 and labels.shape[0] != features.shape[0]:
        raise ValueError(
            f"labels has {labels.shape[0]} entries but features has {features.shape[0]} rows; "
            "for several views concatenate them along dim 0 and repeat the labels (labels.repeat(n_views))"
        )
    check_labels("labels", labels, features.shape[0])
    check_options(temperature, chunk_size, reduction)
    scale = 1.0
    if base_temperature is not None:
        check_positive("base_temperature", base_temperature)
        scale = temperature / base_temperature

    local_labels = labels.to(features.device)
    block = chunk_size or DEFAULT_BLOCK
    if gather_distributed and _dist.world_size() > 1:
        keys, offset = gather_keys(features, True)
        loss, valid = label_contrastive_losses(features, keys, local_labels, _dist.gather_no_grad(local_labels),
                                               temperature, self_offset=offset, block=block)  # fmt: skip
    else:
        loss, valid = label_contrastive_losses(features, None, local_labels, None, temperature, self_offset=0,
                                               block=block)  # fmt: skip
    return reduce_anchor_losses(loss * scale, valid, reduction, mean_over_ranks=gather_distributed)


class SupConLoss(BatchContrastiveLoss):
    """Module form of :func:`supcon`: ``SupConLoss(temperature=0.1)(features, labels)``."""

    def __init__(
        self,
        temperature: float = 0.1,
        base_temperature: float | None = None,
        *,
        gather_distributed: bool = False,
        chunk_size: int | None = None,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(temperature, gather_distributed=gather_distributed, chunk_size=chunk_size, reduction=reduction)
        if base_temperature is not None:
            check_positive("base_temperature", base_temperature)
        self.base_temperature = base_temperature

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        return supcon(features, labels, self.temperature, self.base_temperature, **self.options())  # type: ignore[arg-type]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, base_temperature={self.base_temperature}"
