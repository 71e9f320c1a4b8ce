r"""The masked InfoNCE core on which every batch-contrastive loss in contrastkit is built.

Given anchors ``a`` [N, d] and keys ``k`` [M, d], the logits are ``s_ij = <a_i, k_j> / tau`` (after
L2-normalising both when ``normalize``). Each anchor ``i`` has a positive set ``P(i) = {j : pos_mask[i, j]}``
and a negative set ``N(i) = {j : neg_mask[i, j]}`` (disjoint; ``neg_mask`` defaults to ``~pos_mask``;
self-pairs are excluded by putting them in neither mask). Three denominators are offered (``denominator=``):

``"all"`` (default; SupCon L_out, Khosla et al. 2020 eq. 2; NT-Xent, Chen et al. 2020; InfoNCE, van den Oord
et al. 2018)::

    loss_i = -(1/|P(i)|) sum_{p in P(i)} [ s_ip - logsumexp_{j in P(i) u N(i)} s_ij ]

``"own_positive"`` (each positive competes only with the negatives; MoCo-style cross-entropy per pair, He et
al., CVPR 2020; a multi-positive NT-Xent with one softmax per positive pair)::

    loss_i = -(1/|P(i)|) sum_{p in P(i)} [ s_ip - logsumexp_{j in {p} u N(i)} s_ij ]

``"negatives"`` (decoupled contrastive loss, Yeh et al. 2022, "Decoupled Contrastive Learning"; the positive
is left out of the denominator, one log over all negatives)::

    loss_i = -(1/|P(i)|) sum_{p in P(i)} s_ip + logsumexp_{j in N(i)} s_ij

An anchor is *valid* when it has at least one positive (and, for ``"negatives"``, at least one negative, since
the loss is -inf otherwise). Invalid anchors contribute exactly 0 (no NaN, zero gradient):
``reduction="none"`` returns 0 for them (``pos_mask.any(1)`` tells which they are), ``"sum"`` adds the valid
ones and ``"mean"`` averages over the valid ones only. If no anchor is valid the loss is 0 with a graph
attached (``backward`` works and gives zero gradients). Anchors without positives would otherwise give NaN
(``1/|P(i)|`` with ``|P(i)| = 0``).

Numerics: masked log-sum-exp (masked entries filled with -inf, ``torch.logsumexp`` subtracts the row maximum;
empty rows handled without NaN gradients); exponentials of raw logits never appear. Half-precision features
are computed in float32, also under ``torch.autocast``.

Memory: ``chunk_size=c`` processes the anchors in row blocks of ``c``, so only a ``c x M`` block of logits
exists at a time. Each block is wrapped in ``torch.utils.checkpoint`` (non-reentrant), so the backward pass
also holds one ``c x M`` block at a time (it is recomputed from the block's anchors and the keys); values and
gradients equal the unchunked ones up to floating-point rounding. Wrappers such as
:func:`~contrastkit.losses.nt_xent` build their masks block by block as well (:func:`info_nce_with_mask_fn`),
so no ``N x M`` tensor of any kind exists.

Under DDP with keys gathered from all ranks, ``mean_over_ranks=True`` makes ``"mean"`` return
``sum_local * W / (number of valid anchors on all ranks)``; averaging over ranks (what DDP does to gradients)
then gives exactly the global-batch mean even when ranks hold different numbers of valid anchors.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from contrastkit import distributed as _dist
from contrastkit._checks import check_positive, check_tensor

__all__ = [
    "REDUCTIONS",
    "Denominator",
    "InfoNCELoss",
    "MaskFn",
    "Reduction",
    "info_nce",
    "info_nce_from_logits",
    "info_nce_with_mask_fn",
    "masked_logsumexp",
]

Denominator = Literal["all", "own_positive", "negatives"]
Reduction = Literal["mean", "sum", "none"]
MaskFn = Callable[[int, int], tuple[Tensor, Tensor]]
"""``mask_fn(start, stop) -> (pos, neg)``: bool masks [stop - start, M] for anchor rows ``start:stop``."""

_DENOMINATORS = ("all", "own_positive", "negatives")
REDUCTIONS = ("mean", "sum", "none")


def masked_logsumexp(logits: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Row-wise ``log sum_{j: mask_ij} exp(logits_ij)`` for logits/mask [n, M] -> ([n], nonempty [n] bool).

    Empty rows give -inf with a zero (not NaN) gradient.
    """
    nonempty = mask.any(dim=1)
    filled = logits.masked_fill(~mask, float("-inf")).masked_fill(~nonempty[:, None], 0.0)
    return torch.logsumexp(filled, dim=1).masked_fill(~nonempty, float("-inf")), nonempty


def _block_losses(logits: Tensor, pos: Tensor, neg: Tensor, denominator: str) -> tuple[Tensor, Tensor]:
    """Per-anchor losses and validity for one block of logits [n, M] with masks [n, M]."""
    n_pos = pos.sum(dim=1)
    valid = n_pos > 0
    inv_n_pos = 1.0 / n_pos.clamp(min=1).to(logits.dtype)
    mean_pos = logits.masked_fill(~pos, 0.0).sum(dim=1) * inv_n_pos
    if denominator == "all":
        lse, _ = masked_logsumexp(logits, pos | neg)
        loss = lse - mean_pos
    elif denominator == "negatives":
        lse, has_neg = masked_logsumexp(logits, neg)
        valid = valid & has_neg
        loss = lse - mean_pos
    else:  # own_positive: -log(e^{s_ip} / (e^{s_ip} + sum_N e^{s_in})) = log(1 + e^{lse_N - s_ip})
        lse_neg, _ = masked_logsumexp(logits, neg)
        per_pair = torch.logaddexp(torch.zeros_like(logits), lse_neg[:, None] - logits)
        loss = per_pair.masked_fill(~pos, 0.0).sum(dim=1) * inv_n_pos
    return loss.masked_fill(~valid, 0.0), valid


def _rows(
    scaled_anchors: Tensor, keys: Tensor, start: int, stop: int, mask_fn: MaskFn, denominator: str
) -> tuple[Tensor, Tensor]:
    pos, neg = mask_fn(start, stop)
    device_type = scaled_anchors.device.type
    # keep the logits in (at least) float32 even inside torch.autocast: fp16 logits lose the loss's precision
    no_autocast = torch.autocast(device_type, enabled=False) if device_type in ("cpu", "cuda") else nullcontext()
    with no_autocast:
        logits = scaled_anchors @ keys.T
    return _block_losses(logits, pos.to(logits.device), neg.to(logits.device), denominator)


def anchor_losses(
    anchors: Tensor,
    keys: Tensor,
    mask_fn: MaskFn,
    temperature: float,
    *,
    normalize: bool = True,
    chunk_size: int | None = None,
    denominator: str = "all",
) -> tuple[Tensor, Tensor]:
    """Unreduced core: per-anchor losses [N] (0 where invalid) and the validity mask [N] (no input checks)."""
    dtype = torch.promote_types(anchors.dtype, torch.float32)
    a, k = anchors.to(dtype), keys.to(dtype)
    if normalize:
        a, k = F.normalize(a, dim=1), F.normalize(k, dim=1)
    a = a / temperature
    n = a.shape[0]
    step = n if chunk_size is None else max(1, min(chunk_size, n))
    needs_grad = torch.is_grad_enabled() and (a.requires_grad or k.requires_grad)
    losses: list[Tensor] = []
    valids: list[Tensor] = []
    for start in range(0, n, step):
        stop = min(start + step, n)
        if needs_grad and step < n:
            loss, valid = checkpoint(
                _rows,
                a[start:stop],
                k,
                start,
                stop,
                mask_fn,
                denominator,
                use_reentrant=False,
                preserve_rng_state=False,
            )
        else:
            loss, valid = _rows(a[start:stop], k, start, stop, mask_fn, denominator)
        losses.append(loss)
        valids.append(valid)
    return torch.cat(losses), torch.cat(valids)


def reduce_anchor_losses(loss: Tensor, valid: Tensor, reduction: str, mean_over_ranks: bool = False) -> Tensor:
    """Apply ``reduction`` to per-anchor losses [N] (0 where invalid); ``"mean"`` averages the valid ones.

    With ``mean_over_ranks`` (and torch.distributed initialised) the mean is ``sum * W / global_valid_count``.
    """
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    count = valid.sum().to(loss.dtype)
    if mean_over_ranks and _dist.world_size() > 1:
        return total * _dist.world_size() / _dist.all_reduce_sum(count).clamp(min=1.0)
    return total / count.clamp(min=1.0)


def check_options(temperature: float, chunk_size: int | None, reduction: str, denominator: str = "all") -> None:
    """Validate the hyper-parameters shared by every InfoNCE-family loss (one-line ValueErrors)."""
    check_positive("temperature", temperature)
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if denominator not in _DENOMINATORS:
        raise ValueError(f"denominator must be one of {_DENOMINATORS}, got {denominator!r}")


def _check_features(anchors: Tensor, keys: Tensor) -> None:
    check_tensor("anchors", anchors, 2, min_rows=1, floating=True)
    check_tensor("keys", keys, 2, min_rows=1, floating=True)
    if anchors.shape[1] != keys.shape[1]:
        raise ValueError(
            f"anchors {tuple(anchors.shape)} and keys {tuple(keys.shape)} must have the same feature size d"
        )


def _check_mask(name: str, mask: object, shape: tuple[int, int]) -> Tensor:
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"{name} must be a bool tensor [N, M], got {got}; build it with a comparison or .bool()")
    if tuple(mask.shape) != shape:
        raise ValueError(f"{name} must have shape [N, M] = {list(shape)} (anchors x keys), got {tuple(mask.shape)}")
    return mask


def _checked_masks(pos_mask: object, neg_mask: object, shape: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Checked (pos, neg) bool masks of ``shape``; ``neg`` defaults to ``~pos``; they must not overlap."""
    pos = _check_mask("pos_mask", pos_mask, shape)
    if neg_mask is None:
        return pos, ~pos
    neg = _check_mask("neg_mask", neg_mask, shape)
    if (pos & neg.to(pos.device)).any():
        raise ValueError("pos_mask and neg_mask overlap; a pair must be a positive, a negative or neither")
    return pos, neg


def info_nce_with_mask_fn(
    anchors: Tensor,
    keys: Tensor,
    mask_fn: MaskFn,
    temperature: float = 0.1,
    *,
    normalize: bool = True,
    chunk_size: int | None = None,
    reduction: Reduction = "mean",
    denominator: Denominator = "all",
    mean_over_ranks: bool = False,
) -> Tensor:
    """:func:`info_nce` with masks produced per block of anchor rows: ``mask_fn(start, stop) -> (pos, neg)``.

    Use this when the [N, M] masks are too large to materialise (node-level graph contrast, dense pixel
    contrast): with ``chunk_size`` nothing of size N x M exists, in forward or backward. ``pos`` and ``neg``
    must be disjoint bool tensors [stop - start, M] (not checked here, for speed).
    """
    _check_features(anchors, keys)
    check_options(temperature, chunk_size, reduction, denominator)
    loss, valid = anchor_losses(
        anchors,
        keys,
        mask_fn,
        temperature,
        normalize=normalize,
        chunk_size=chunk_size,
        denominator=denominator,
    )
    return reduce_anchor_losses(loss, valid, reduction, mean_over_ranks)


def info_nce(
    anchors: Tensor,
    keys: Tensor,
    pos_mask: Tensor,
    neg_mask: Tensor | None = None,
    temperature: float = 0.1,
    *,
    normalize: bool = True,
    chunk_size: int | None = None,
    reduction: Reduction = "mean",
    denominator: Denominator = "all",
    mean_over_ranks: bool = False,
) -> Tensor:
    """Masked InfoNCE of anchors [N, d] against keys [M, d] (formulas and conventions: module docstring).

    Args:
        anchors: [N, d] floating features (rows of the similarity matrix).
        keys: [M, d] floating features (columns). Pass the same tensor as ``anchors`` for single-branch
        contrast. pos_mask: [N, M] bool, ``pos_mask[i, j]`` iff key j is a positive of anchor i (any device).
        neg_mask: [N, M] bool, disjoint from ``pos_mask``; defaults to ``~pos_mask``. Exclude self-pairs by
            leaving them out of both masks.
        temperature: tau > 0.
        normalize: L2-normalise anchors and keys first (cosine similarity).
        chunk_size: anchor rows per block (memory O(chunk_size * M) in forward and backward); None = one
        block. reduction: ``"mean"`` over valid anchors, ``"sum"``, or ``"none"`` ([N], 0 for invalid
        anchors). denominator: ``"all"`` (P u N, SupCon/NT-Xent), ``"own_positive"`` ({p} u N) or
        ``"negatives"`` (N, DCL). mean_over_ranks: for keys gathered across DDP ranks, normalise ``"mean"`` by
        the global valid count.

    Returns:
        A scalar, or [N] for ``reduction="none"`` (float32 for half-precision inputs, else the input dtype).
    """
    _check_features(anchors, keys)
    pos, neg = _checked_masks(pos_mask, neg_mask, (anchors.shape[0], keys.shape[0]))
    return info_nce_with_mask_fn(
        anchors,
        keys,
        lambda start, stop: (pos[start:stop], neg[start:stop]),
        temperature,
        normalize=normalize,
        chunk_size=chunk_size,
        reduction=reduction,
        denominator=denominator,
        mean_over_ranks=mean_over_ranks,
    )


def info_nce_from_logits(
    logits: Tensor,
    pos_mask: Tensor,
    neg_mask: Tensor | None = None,
    *,
    reduction: Reduction = "mean",
    denominator: Denominator = "all",
) -> Tensor:
    """The masked InfoNCE core of :func:`info_nce` on ready logits ``s`` [N, M] instead of features.

    Same formulas, validity rule and reductions (module docstring), e.g. for ``denominator="all"``::

        loss_i = -(1/|P(i)|) sum_{p in P(i)} [ s_ip - logsumexp_{j in P(i) u N(i)} s_ij ]

    For logits that are not one product of normalised features over one temperature: per-prototype
    temperatures (ProtoNCE, Li et al., ICLR 2021) or zero-filled dropped negatives (HCSC, Guo et al., CVPR
    2022; :func:`~contrastkit.losses.selective.selective_info_nce`).

    Args:
        logits: [N, M] finite floating logits, already divided by any temperature (computed in float32 at
            least). Leave entries out with the masks, not with -inf.
        pos_mask: [N, M] bool positives. neg_mask: [N, M] bool negatives, disjoint from ``pos_mask``; defaults
            to ``~pos_mask``.
        reduction: ``"mean"`` over valid anchors, ``"sum"`` or ``"none"`` ([N], 0 for invalid anchors).
        denominator: ``"all"``, ``"own_positive"`` or ``"negatives"``.

    Returns:
        A scalar, or [N] for ``reduction="none"``.
    """
    check_tensor("logits", logits, 2, min_rows=1, floating=True)
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if denominator not in _DENOMINATORS:
        raise ValueError(f"denominator must be one of {_DENOMINATORS}, got {denominator!r}")
    pos, neg = _checked_masks(pos_mask, neg_mask, (logits.shape[0], logits.shape[1]))
    return reduce_anchor_losses(*logits_anchor_losses(logits, pos, neg, denominator), reduction)


def logits_anchor_losses(logits: Tensor, pos: Tensor, neg: Tensor, denominator: str = "all") -> tuple[Tensor, Tensor]:
    """Unreduced core on ready logits [N, M] with disjoint bool masks: per-anchor losses [N] (0 where invalid) and
    validity [N]; no input checks (for callers that build the masks themselves, on a training step's hot path)."""
    s = logits.to(torch.promote_types(logits.dtype, torch.float32))
    return _block_losses(s, pos.to(s.device), neg.to(s.device), denominator)


class InfoNCELoss(nn.Module):
    """Module form of :func:`info_nce`: ``InfoNCELoss(tau)(anchors, keys, pos_mask, neg_mask=None)``."""

    def __init__(
        self,
        temperature: float = 0.1,
        *,
        normalize: bool = True,
        chunk_size: int | None = None,
        reduction: Reduction = "mean",
        denominator: Denominator = "all",
        mean_over_ranks: bool = False,
    ) -> None:
        super().__init__()
        check_options(temperature, chunk_size, reduction, denominator)
        self.temperature = temperature
        self.normalize = normalize
        self.chunk_size = chunk_size
        self.reduction: Reduction = reduction
        self.denominator: Denominator = denominator
        self.mean_over_ranks = mean_over_ranks

    def forward(self, anchors: Tensor, keys: Tensor, pos_mask: Tensor, neg_mask: Tensor | None = None) -> Tensor:
        return info_nce(
            anchors,
            keys,
            pos_mask,
            neg_mask,
            self.temperature,
            normalize=self.normalize,
            chunk_size=self.chunk_size,
            reduction=self.reduction,
            denominator=self.denominator,
            mean_over_ranks=self.mean_over_ranks,
        )

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, denominator={self.denominator!r}, chunk_size={self.chunk_size}"
