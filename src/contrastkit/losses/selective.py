r"""Selective contrastive coding: the pure-torch loss pieces of HCSC and PCL.

HCSC (Guo et al., "HCSC: Hierarchical Contrastive Selective Coding", CVPR 2022) drops likely false negatives
from the MoCo queue (ICSC) and from the prototype negatives (PCSC); PCL (Li et al., "Prototypical Contrastive
Learning of Unsupervised Representations", ICLR 2021) supplies the prototype loss with per-prototype
temperatures ``phi`` and the negative prototype set shared by the batch. At one hierarchy level::

    keep_ij = clamp(1 - softmax_c(n_j . c / phi_c)[own(i)], low, high)     keep probability of negative j
    m_ij    ~ Bernoulli(keep_ij)
    loss_i  = -s_i+ + log( exp(s_i+) + sum_j f(s_ij, m_ij) )                CE with target 0

ICSC: ``n_j`` are queue keys, ``c`` the level's prototypes, ``own(i)`` the query's prototype, clamp [0, 0.999].
PCSC: ``n_j`` are the negative prototypes, ``c`` the prototypes one level up, ``own(i)`` the parent of the
query's prototype, clamp [1e-4, 0.999]; the top level keeps every negative. With ``mask_fill="zero"`` (the
official code multiplies the similarity by the mask) ``f(s, 0) = exp(0) = 1``: a dropped negative stays in the
denominator with logit 0. With ``"neg_inf"`` ``f(s, 0) = 0``: it leaves the denominator. ``f(s, 1) = exp(s)``.

The code sums the instance loss over levels and averages the prototype loss (:func:`reduce_levels`). Everything
is built on the masked InfoNCE core on logits (:func:`~contrastkit.losses.info_nce.logits_anchor_losses`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from contrastkit._checks import check_tensor
from contrastkit.losses.info_nce import REDUCTIONS, Reduction, logits_anchor_losses, reduce_anchor_losses

__all__ = [
    "LEVEL_REDUCTIONS",
    "MASK_FILLS",
    "instance_keep_probability",
    "negative_prototype_ids",
    "prototype_keep_probability",
    "reduce_levels",
    "sample_keep_mask",
    "selective_info_nce",
]

MASK_FILLS = ("zero", "neg_inf")
"""How a dropped negative enters the softmax: logit 0 (official code) or left out (-inf)."""
LEVEL_REDUCTIONS = ("sum", "mean")
"""How per-level losses combine: HCSC sums the instance loss and averages the prototype loss."""


def _check_ids(name: str, ids: object, num: int) -> Tensor:
    """A 1-D integer id tensor with values in [0, num)."""
    t = check_tensor(name, ids, 1)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer ids, got dtype {t.dtype}; call .long() first")
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num):
        raise ValueError(f"{name} must lie in [0, {num}), got values in [{int(t.min())}, {int(t.max())}]")
    return t


def _keep_probability(
    candidates: Tensor,
    centroids: Tensor,
    concentration: Tensor,
    own: Tensor,
    low: float,
    high: float,
    names: tuple[str, str, str, str],
) -> Tensor:
    """Shared body of the two keep probabilities: clamp(1 - softmax(x c^T / phi)[:, own]^T, low, high)."""
    cand_name, cent_name, conc_name, own_name = names
    check_tensor(cand_name, candidates, 2, floating=True)
    check_tensor(cent_name, centroids, 2, min_rows=1, floating=True)
    if candidates.shape[1] != centroids.shape[1]:
        raise ValueError(
            f"{cand_name} {tuple(candidates.shape)} and {cent_name} {tuple(centroids.shape)} need the same size D"
        )
    check_tensor(conc_name, concentration, 1, floating=True)
    if concentration.shape[0] != centroids.shape[0]:
        raise ValueError(
            f"{conc_name} needs one phi per centroid: [{centroids.shape[0]}], got {concentration.shape[0]}"
        )
    if not bool((concentration > 0).all()):
        raise ValueError(f"{conc_name} must be > 0 everywhere, got min {float(concentration.min())}")
    own = _check_ids(own_name, own, centroids.shape[0])
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"need 0 <= low <= high <= 1 for the keep clamp, got low={low}, high={high}")
    dtype = torch.promote_types(torch.promote_types(candidates.dtype, centroids.dtype), torch.float32)
    scaled = (candidates.to(dtype) @ centroids.to(dtype).T) / concentration.to(dtype)[None, :]
    same_cluster = torch.softmax(scaled, dim=1)[:, own.to(scaled.device)].T  # [B, K]
    return (1.0 - same_cluster).clamp(low, high)


def instance_keep_probability(
    negatives: Tensor,
    centroids: Tensor,
    concentration: Tensor,
    own_cluster: Tensor,
    *,
    low: float = 0.0,
    high: float = 0.999,
) -> Tensor:
    """ICSC keep probability of each queue negative for each query (HCSC, Guo et al. CVPR 2022)::

        keep_bj = clamp(1 - softmax_c(n_j . c / phi_c)[own_cluster_b], low, high)

    A negative is dropped with the probability that it falls in the query's own cluster.

    Args:
        negatives: [K, D] queue keys ``n_j`` (L2-normalised by the caller).
        centroids: [M, D] prototypes ``c`` of one level. concentration: [M] ``phi_c`` > 0.
        own_cluster: [B] int, the query's prototype id at this level.
        low, high: the clamp (HCSC: 0 and 0.999).

    Returns:
        keep [B, K], float32 at least (not detached; sample it with :func:`sample_keep_mask`).
    """
    names = ("negatives", "centroids", "concentration", "own_cluster")
    return _keep_probability(negatives, centroids, concentration, own_cluster, low, high, names)


def prototype_keep_probability(
    negative_prototypes: Tensor,
    parent_centroids: Tensor,
    parent_concentration: Tensor,
    own_parent: Tensor,
    *,
    low: float = 1e-4,
    high: float = 0.999,
) -> Tensor:
    """PCSC keep probability of each negative prototype for each query (HCSC, Guo et al. CVPR 2022)::

        keep_bj = clamp(1 - softmax_p(c_j . p / phi'_p)[own_parent_b], low, high)

    with ``p`` the level-(l+1) prototypes and ``own_parent_b`` the parent of query b's level-l prototype. The
    top level has no parents: keep every negative there.

    Args:
        negative_prototypes: [P, D] level-l prototypes ``c_j`` that are candidate negatives
            (:func:`negative_prototype_ids`).
        parent_centroids: [M', D] level-(l+1) prototypes. parent_concentration: [M'] their ``phi'`` > 0.
        own_parent: [B] int, ``parent(c_l(b))`` in [0, M').
        low, high: the clamp (HCSC: 1e-4 and 0.999).

    Returns:
        keep [B, P], float32 at least.
    """
    names = ("negative_prototypes", "parent_centroids", "parent_concentration", "own_parent")
    return _keep_probability(negative_prototypes, parent_centroids, parent_concentration, own_parent, low, high, names)


def negative_prototype_ids(
    num_prototypes: int,
    positives: Tensor,
    *,
    include_highest_cluster_id: bool = True,
    max_id: int | None = None,
) -> Tensor:
    """Ids of the negative prototypes shared by the whole batch (PCL, Li et al. ICLR 2021; HCSC)::

        candidates = {0, ..., M-1}  (include_highest_cluster_id=True)   or   {0, ..., max_id - 1}  (False)
        negatives  = candidates minus {positives_b for every b in the batch}

    ``False`` reproduces the official ``range(im2cluster.max())``, which never offers the highest assigned id.

    Args:
        num_prototypes: M, the number of prototypes at this level.
        positives: [B] int, each sample's own prototype id in [0, M).
        include_highest_cluster_id: build the candidates from 0..M-1 (True) or from the official range (False).
        max_id: the highest assignment over the whole dataset at this level (default M-1); used only when
            ``include_highest_cluster_id`` is False.

    Returns:
        [P] int64, sorted ascending, on ``positives``' device.
    """
    if isinstance(num_prototypes, bool) or not isinstance(num_prototypes, int) or num_prototypes < 1:
        raise ValueError(f"num_prototypes must be a positive int, got {num_prototypes!r}")
    positives = _check_ids("positives", positives, num_prototypes)
    top = num_prototypes - 1 if max_id is None else max_id
    if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top < num_prototypes:
        raise ValueError(f"max_id must be an int in [0, {num_prototypes}), got {max_id!r}")
    if positives.numel() and int(positives.max()) > top:
        raise ValueError(f"max_id={top} is below a batch positive {int(positives.max())}; pass the dataset's max id")
    limit = num_prototypes if include_highest_cluster_id else top
    is_negative = torch.ones(limit, dtype=torch.bool, device=positives.device)
    is_negative[positives[positives < limit].long()] = False
    return is_negative.nonzero().squeeze(1)


def sample_keep_mask(keep: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``m_bj ~ Bernoulli(keep_bj)``: keep [B, K] probabilities in [0, 1] -> bool mask [B, K] (True = kept)."""
    check_tensor("keep", keep, 2, floating=True)
    if keep.numel() and not bool(((keep >= 0) & (keep <= 1)).all()):
        raise ValueError("keep must hold probabilities in [0, 1]; clamp it first")
    return torch.bernoulli(keep.detach(), generator=generator).bool()


def selective_info_nce(
    positive_logits: Tensor,
    negative_logits: Tensor,
    keep: Tensor | None,
    *,
    mask_fill: str = "zero",
    reduction: Reduction = "mean",
) -> Tensor:
    """Cross-entropy with target 0 over ``[positive, selected negatives]`` (HCSC, Guo et al. CVPR 2022)::

        "zero":    loss_b = -s_b+ + log( exp(s_b+) + sum_{j kept} exp(s_bj) + #{j dropped} )
        "neg_inf": loss_b = -s_b+ + log( exp(s_b+) + sum_{j kept} exp(s_bj) )

    ``"zero"`` is the official code (a dropped logit is multiplied by 0, so it adds exp(0) = 1); ``"neg_inf"``
    removes dropped negatives. With every negative kept both are MoCo's InfoNCE (He et al., CVPR 2020).

    Args:
        positive_logits: [B] ``s_b+`` (already divided by the temperature, or by the prototype's phi).
        negative_logits: [B, K] ``s_bj`` (already divided likewise, e.g. by each negative prototype's phi).
        keep: [B, K] bool mask (True = kept, e.g. from :func:`sample_keep_mask`), or None to keep all.
        mask_fill: one of :data:`MASK_FILLS`.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` ([B]).

    Returns:
        A scalar, or [B] for ``reduction="none"``.
    """
    if mask_fill not in MASK_FILLS:
        raise ValueError(f"mask_fill must be one of {MASK_FILLS}, got {mask_fill!r}")
    check_tensor("positive_logits", positive_logits, 1, min_rows=1, floating=True)
    check_tensor("negative_logits", negative_logits, 2, floating=True)
    b, k = negative_logits.shape
    if positive_logits.shape[0] != b:
        raise ValueError(
            f"positive_logits [{positive_logits.shape[0]}] and negative_logits [{b}, {k}] need one row per query"
        )
    if keep is None:
        keep = torch.ones(b, k, dtype=torch.bool, device=negative_logits.device)
    elif not isinstance(keep, Tensor) or keep.dtype != torch.bool:
        got = keep.dtype if isinstance(keep, Tensor) else type(keep).__name__
        raise ValueError(f"keep must be a bool tensor [B, K], got {got}; sample it with sample_keep_mask")
    elif tuple(keep.shape) != (b, k):
        raise ValueError(f"keep must have the shape of negative_logits {[b, k]}, got {tuple(keep.shape)}")
    keep = keep.to(negative_logits.device)
    dtype = torch.promote_types(positive_logits.dtype, negative_logits.dtype)
    column = torch.zeros(b, k + 1, dtype=torch.bool, device=negative_logits.device)
    pos_mask = column.clone()
    pos_mask[:, 0] = True
    neg_mask = column
    if mask_fill == "zero":
        negatives = negative_logits.to(dtype).masked_fill(~keep, 0.0)
        neg_mask[:, 1:] = True
    else:
        negatives = negative_logits.to(dtype)
        neg_mask[:, 1:] = keep
    logits = torch.cat([positive_logits.to(dtype)[:, None], negatives], dim=1)
    check_tensor("logits", logits, 2)  # NaN/Inf: the engine's NonFiniteError
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    # the masks are disjoint by construction: the core without the generic overlap and shape checks
    return reduce_anchor_losses(*logits_anchor_losses(logits, pos_mask, neg_mask, "all"), reduction)


def reduce_levels(losses: Sequence[Tensor], reduction: str) -> Tensor:
    """Combine per-level losses ``L_1..L_L`` (same shape): ``"sum"`` = sum_l L_l, ``"mean"`` = (1/L) sum_l L_l.

    HCSC (Guo et al. CVPR 2022) sums the instance loss over levels and averages the prototype loss.
    """
    if reduction not in LEVEL_REDUCTIONS:
        raise ValueError(f"reduction must be one of {LEVEL_REDUCTIONS}, got {reduction!r}")
    if isinstance(losses, Tensor) or len(losses) == 0:
        raise ValueError("losses must be a non-empty sequence of per-level loss tensors")
    if not all(isinstance(loss, Tensor) for loss in losses):
        raise ValueError("losses must be tensors (one loss per level); wrap floats with torch.tensor")
    shapes = {tuple(loss.shape) for loss in losses}
    if len(shapes) != 1:
        raise ValueError(f"per-level losses must share one shape, got {sorted(shapes)}")
    total = torch.stack(list(losses)).sum(dim=0)
    return total if reduction == "sum" else total / len(losses)
