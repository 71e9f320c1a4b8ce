"""Shared plumbing for two-view instance losses (NT-Xent, DCL): inputs, (optional) gather, the fused losses.

Layout: the local anchors are ``u = cat(z1, z2)`` [2B, d]; row ``i < B`` is view 1 of sample ``i`` and row
``B + i`` view 2. The keys are ``u`` itself, or under ``gather_distributed`` the rank-ordered gather of every
rank's ``u`` [sum_r 2B_r, d], in which this rank's rows start at ``offset = rank_offset(2B)``. Local row ``i``
has its self-pair at column ``offset + i`` and its positive (the other view) at column ``offset + (i + B) mod
2B``: the row of the same sample, whose global id (the loss's label) is ``rank_offset(B) + i mod B``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from contrastkit import distributed as _dist
from contrastkit._checks import check_same_shape, check_tensor
from contrastkit.losses.fused import DEFAULT_BLOCK, label_contrastive_losses


def check_views(z1: Tensor, z2: Tensor, gather_distributed: bool) -> None:
    """Validate two views [B, d] of the same B samples (B >= 2 unless the batch is gathered across ranks)."""
    check_tensor("z1", z1, 2, min_rows=1, floating=True)
    check_tensor("z2", z2, 2, min_rows=1, floating=True)
    check_same_shape("z1", z1, "z2", z2)
    if z1.shape[0] < 2 and not (gather_distributed and _dist.world_size() > 1):
        raise ValueError(
            f"z1/z2 need at least 2 samples (a single pair has no negatives), got batch size {z1.shape[0]}"
        )


def gather_keys(local: Tensor, gather_distributed: bool) -> tuple[Tensor, int]:
    """Keys for local anchors (``local`` or its gather over ranks) and this rank's row offset in them."""
    if not (gather_distributed and _dist.world_size() > 1):
        return local, 0
    return _dist.gather_with_grad(local), _dist.rank_offset(local.shape[0], local.device)


def two_view_losses(
    z1: Tensor, z2: Tensor, temperature: float, gather_distributed: bool, block: int | None, denominator: str
) -> tuple[Tensor, Tensor]:
    """Per-anchor losses and validity [2B] of a two-view instance loss on the fused path
    (:func:`contrastkit.losses.fused.label_contrastive_losses`): the label of a row is its sample, so the positive is
    the other view and ``"negatives"`` leaves out self and positive. One process: the symmetric path (keys = anchors);
    under ``gather_distributed`` the keys (and sample labels) of every rank."""
    anchors = torch.cat([z1, z2], dim=0)
    b = z1.shape[0]
    samples = torch.arange(b, device=anchors.device).repeat(2)
    other_view = torch.arange(2 * b, device=anchors.device).roll(b)  # (i + B) mod 2B
    block = block or DEFAULT_BLOCK
    if not (gather_distributed and _dist.world_size() > 1):
        return label_contrastive_losses(anchors, None, samples, None, temperature, self_offset=0,
                                        denominator=denominator, block=block, partners=other_view)  # fmt: skip
    keys, offset = gather_keys(anchors, True)
    if keys.shape[0] < 4:
        raise ValueError(
            f"the global batch needs at least 2 pairs (one pair has no negatives), got {keys.shape[0] // 2}"
        )
    labels = samples + _dist.rank_offset(b, anchors.device)
    return label_contrastive_losses(anchors, keys, labels, _dist.gather_no_grad(labels), temperature,
                                    self_offset=offset, denominator=denominator, block=block,
                                    partners=other_view + offset)  # fmt: skip
