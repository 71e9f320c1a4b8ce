"""Shared plumbing for two-view instance losses (NT-Xent, DCL): inputs, (optional) gather, per-block masks.

Layout: the local anchors are ``u = cat(z1, z2)`` [2B, d]; row ``i < B`` is view 1 of sample ``i`` and row
``B + i`` view 2. The keys are ``u`` itself, or under ``gather_distributed`` the rank-ordered gather of every
rank's ``u`` [sum_r 2B_r, d], in which this rank's rows start at ``offset = rank_offset(2B)``. Local row ``i``
has its self-pair at column ``offset + i`` and its positive (the other view) at column ``offset + (i + B) mod
2B``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from contrastkit import distributed as _dist
from contrastkit._checks import check_same_shape, check_tensor
from contrastkit.losses.info_nce import MaskFn


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


def two_view_setup(z1: Tensor, z2: Tensor, gather_distributed: bool) -> tuple[Tensor, Tensor, MaskFn]:
    """Return (anchors [2B, d], keys [K, d], mask_fn) with pos = other view, neg = all but self and pos."""
    anchors = torch.cat([z1, z2], dim=0)
    keys, offset = gather_keys(anchors, gather_distributed)
    if keys.shape[0] < 4:
        raise ValueError(
            f"the global batch needs at least 2 pairs (one pair has no negatives), got {keys.shape[0] // 2}"
        )
    b, n_keys = z1.shape[0], keys.shape[0]

    def mask_fn(start: int, stop: int) -> tuple[Tensor, Tensor]:
        rows = torch.arange(start, stop, device=anchors.device)
        cols = torch.arange(n_keys, device=anchors.device)
        self_col = offset + rows
        pos_col = offset + (rows + b) % (2 * b)
        pos = cols[None, :] == pos_col[:, None]
        neg = ~(pos | (cols[None, :] == self_col[:, None]))
        return pos, neg

    return anchors, keys, mask_fn
