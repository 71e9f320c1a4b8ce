r"""Concentration (per-cluster temperature) of PCL (Li et al. 2021, "Prototypical Contrastive Learning of
Unsupervised Representations", eq. 12), as HCSC (Guo et al. 2022) uses it for every level of its hierarchy.

For cluster ``c`` with centroid ``c`` and its ``n_c`` members ``v``::

    phi_c = (1 / n_c) sum_{v in c} ||v - c||_2 / log(n_c + smoothing)             if n_c >= 2
    phi_c = max_{c': n_{c'} >= 2} phi_{c'}                                        if n_c <= 1 (singletons, empty)
    phi   <- clip(phi, percentile(phi, clip[0]), percentile(phi, clip[1]))        (linear interpolation)
    phi   <- temperature * phi / mean(phi)

so a tight, large cluster gets a small phi (a sharp softmax) and ``mean(phi) = temperature``. Degenerate cases:
when no cluster has two members, or every phi is 0 after clipping, all clusters get ``temperature``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from contrastkit._checks import check_labels, check_positive, check_tensor

__all__ = ["concentration"]


def concentration(
    x: Tensor,
    assignments: Tensor,
    centroids: Tensor,
    *,
    temperature: float = 0.2,
    smoothing: float = 10.0,
    clip: tuple[float, float] = (10.0, 90.0),
) -> Tensor:
    """Concentration ``phi`` [k] float32 (on ``centroids``' device) of the clusters of ``x`` [N, D].

    ``assignments`` [N] int64 in ``[0, k)`` gives every row's cluster, ``centroids`` [k, D] their centres (the
    distances are measured to these, in float64). ``temperature`` is the mean of the result; ``smoothing`` the
    ``10`` in ``log(n_c + 10)``; ``clip`` the lower and upper percentiles (0 <= low <= high <= 100).
    """
    check_tensor("x", x, 2, min_rows=1, floating=True)
    check_tensor("centroids", centroids, 2, min_rows=1, floating=True)
    if centroids.shape[1] != x.shape[1]:
        raise ValueError(f"centroids have {centroids.shape[1]} features but x has {x.shape[1]}; they must match")
    k = centroids.shape[0]
    check_labels("assignments", assignments, x.shape[0], num_classes=k)
    check_positive("temperature", temperature)
    check_positive("smoothing", smoothing)
    if (
        not isinstance(clip, (tuple, list))
        or len(clip) != 2
        or not all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in clip)
        or not 0.0 <= clip[0] <= clip[1] <= 100.0
    ):
        raise ValueError(f"clip must be two percentiles (low, high) with 0 <= low <= high <= 100, got {clip!r}")
    device = centroids.device
    points = x.detach().to(device=device, dtype=torch.float64)
    centres = centroids.detach().to(torch.float64)
    members = assignments.to(device)
    dist = (points - centres[members]).norm(dim=1)
    counts = torch.bincount(members, minlength=k)
    sums = torch.zeros(k, dtype=torch.float64, device=device).index_add_(0, members, dist)
    many = counts >= 2
    if not bool(many.any()):
        return torch.full((k,), float(temperature), dtype=torch.float32, device=device)
    n = counts.to(torch.float64)
    phi = torch.where(many, sums / n.clamp(min=1) / torch.log(n + smoothing), torch.zeros_like(n))
    phi = torch.where(many, phi, phi[many].max())
    low, high = torch.quantile(phi, torch.tensor([clip[0], clip[1]], dtype=torch.float64, device=device) / 100.0)
    phi = phi.clamp(min=low, max=high)
    mean = float(phi.mean())
    if not mean > 0.0 or not math.isfinite(mean):
        return torch.full((k,), float(temperature), dtype=torch.float32, device=device)
    return (temperature * phi / mean).to(torch.float32)
