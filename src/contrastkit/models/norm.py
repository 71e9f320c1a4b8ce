"""Normalisation switch for the ResNet backbones: ``"batch" | "group" | "none"``.

* ``batch``: ``contrastkit.models.BatchNorm2d`` (``nn.BatchNorm2d`` with a fused bf16 CPU path; local-batch
  statistics in train mode; convert to SyncBN under DDP if wanted).
* ``group``: ``GroupNorm(G, C)`` (Wu & He, ECCV 2018), ``y = (x - mean_g) / sqrt(var_g + eps) * gamma + beta``
  with mean/var over the channels of group ``g`` and all pixels *of one sample*; the output of a sample never
  depends on the other samples of the batch (needed for exact single- vs multi-process equivalence tests).
* ``none``: identity (the convolutions then get a bias).
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from contrastkit.models.batch_norm import BatchNorm2d

NormKind = Literal["batch", "group", "none"]
NORM_KINDS: tuple[str, ...] = ("batch", "group", "none")


def check_norm_kind(norm: object) -> str:
    """Raise a one-line ValueError unless ``norm`` is one of ``NORM_KINDS``."""
    if norm not in NORM_KINDS:
        raise ValueError(f"norm must be one of {list(NORM_KINDS)}, got {norm!r}")
    return str(norm)


def group_norm_groups(channels: int, max_groups: int = 8) -> int:
    """Number of GroupNorm groups for ``channels``: the largest divisor of ``channels`` that is
    ``<= max_groups`` and leaves >= 2 channels per group when ``channels >= 2`` (8 groups from 16 up).
    """
    limit = min(max_groups, max(1, channels // 2))
    for g in range(limit, 0, -1):
        if channels % g == 0:
            return g
    return 1


def make_norm2d(norm: str, channels: int) -> nn.Module:
    """A 2-D normalisation layer over ``[B, channels, H, W]`` of the given kind (see module docstring)."""
    norm = check_norm_kind(norm)
    if norm == "batch":
        return BatchNorm2d(channels)
    if norm == "group":
        return nn.GroupNorm(group_norm_groups(channels), channels)
    return nn.Identity()
