r"""The torch back end of :func:`contrastkit.cluster.kmeans`: Lloyd's algorithm in float32 on the input's device.

One restart, with ``x`` [N, D] and centroids ``c`` [k, D]::

    init       c = x[randperm(N)[:k]]                       (k distinct rows, renormalised when spherical)
    repeat niter times:
        assign     a_i = argmin_j ||x_i - c_j||^2           (by blocks of rows, see nearest_centroids)
        reseed     every empty cluster takes the point farthest from its centroid (see reseed_empty_clusters)
        update     c_j = mean_{i: a_i = j} x_i              (renormalised to unit length when spherical)
    final      a_i = argmin_j ||x_i - c_j||^2,  error = sum_i ||x_i - c_{a_i}||^2

Restart ``r`` draws its initial rows with ``torch.randperm`` on a CPU generator seeded by
``seed + 1 + RESTART_SEED_STRIDE * r``; the restart with the lowest error is kept (the first on ties). This is the
seed faiss gives restart ``r`` (``faiss/Clustering.cpp``), and both draws are a Fisher-Yates shuffle on a Mersenne
twister, so with the torch and faiss versions of this repository (torch 2.x, faiss-cpu 1.x) both back ends start
from the same rows and agree up to float rounding, as long as no cluster empties (faiss splits a large cluster where
this takes the farthest points) and the restarts' errors do not nearly tie (faiss ranks them by the error of the
last assignment before the last update).

Bitwise reproducible on the CPU. On CUDA the centroid sums (``index_add_``) use atomic adds, which are reproducible
only under ``torch.use_deterministic_algorithms(True)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["MAX_DISTANCE_ENTRIES", "RESTART_SEED_STRIDE", "lloyd_kmeans", "nearest_centroids", "reseed_empty_clusters"]

RESTART_SEED_STRIDE = 15486557  # seed offset between restarts, as in faiss: restart r uses seed + 1 + stride * r
MAX_DISTANCE_ENTRIES = 1 << 26  # largest block of the [rows, k] distance matrix held at once (~64M floats)


def nearest_centroids(x: Tensor, centroids: Tensor) -> tuple[Tensor, Tensor]:
    """Index [N] int64 and squared Euclidean distance [N] float32 of the nearest centroid of every row of ``x``.

    ``||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2`` (clamped at 0), computed for blocks of
    ``max(1, MAX_DISTANCE_ENTRIES // k)`` rows so no more than ``MAX_DISTANCE_ENTRIES`` distances exist at once.
    Ties go to the lowest centroid index.
    """
    k = centroids.shape[0]
    rows = max(1, MAX_DISTANCE_ENTRIES // k)
    c_sq = centroids.pow(2).sum(1)
    index = torch.empty(x.shape[0], dtype=torch.int64, device=x.device)
    sq_dist = torch.empty(x.shape[0], dtype=torch.float32, device=x.device)
    for start in range(0, x.shape[0], rows):
        block = x[start : start + rows]
        d = torch.addmm(c_sq.unsqueeze(0), block, centroids.T, alpha=-2.0)
        d.add_(block.pow(2).sum(1, keepdim=True))
        best, arg = d.min(dim=1)
        index[start : start + rows] = arg
        sq_dist[start : start + rows] = best.clamp_(min=0.0)
    return index, sq_dist


def reseed_empty_clusters(assignments: Tensor, sq_dist: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Give every empty cluster one point: the points farthest from their centroids, in a deterministic order.

    Candidates are sorted by distance (descending, ties by row index); a cluster of ``n`` members gives at most
    ``n - 1`` of them, so no cluster empties. Since ``k <= N`` there are always enough candidates. The i-th empty
    cluster (by id) takes the i-th chosen point.

    Returns ``(assignments, empty_ids, moved_rows)``: the new assignments [N] (moved rows point to their new
    cluster), the ids of the clusters that were empty [e], and the rows moved into them [e].
    """
    counts = torch.bincount(assignments, minlength=k)
    empty = torch.nonzero(counts == 0).flatten()
    if empty.numel() == 0:
        return assignments, empty, empty
    n = assignments.shape[0]
    by_distance = torch.sort(sq_dist, descending=True, stable=True).indices
    order = by_distance[torch.sort(assignments[by_distance], stable=True).indices]  # cluster, then distance desc
    cluster_of = assignments[order]
    first_of_cluster = torch.cumsum(counts, 0) - counts  # position of each cluster's first member in ``order``
    rank = torch.arange(n, device=assignments.device) - first_of_cluster[cluster_of]
    donor = torch.zeros(n, dtype=torch.bool, device=assignments.device)
    donor[order] = rank < counts[cluster_of] - 1  # every cluster keeps its nearest member
    candidates = by_distance[donor[by_distance]]
    moved = candidates[: empty.numel()]
    assignments = assignments.clone()
    assignments[moved] = empty
    return assignments, empty, moved


def _centroid_means(x: Tensor, assignments: Tensor, k: int) -> Tensor:
    """Mean of the rows of every cluster [k, D] (every cluster is non-empty here)."""
    sums = torch.zeros(k, x.shape[1], dtype=x.dtype, device=x.device).index_add_(0, assignments, x)
    counts = torch.bincount(assignments, minlength=k).clamp_(min=1)
    return sums / counts.unsqueeze(1).to(x.dtype)


def _one_restart(x: Tensor, k: int, seed: int, niter: int, spherical: bool) -> tuple[Tensor, Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    first = torch.randperm(x.shape[0], generator=generator)[:k].to(x.device)
    centroids = x[first].clone()
    if spherical:
        centroids = F.normalize(centroids, dim=1)
    for _ in range(niter):
        assignments, sq_dist = nearest_centroids(x, centroids)
        assignments, _, _ = reseed_empty_clusters(assignments, sq_dist, k)
        centroids = _centroid_means(x, assignments, k)
        if spherical:
            centroids = F.normalize(centroids, dim=1)
    assignments, sq_dist = nearest_centroids(x, centroids)
    return centroids, assignments, sq_dist


def lloyd_kmeans(
    x: Tensor, k: int, seed: int, niter: int, nredo: int, spherical: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """k-means of ``x`` [N, D] float32 (1 <= k <= N): ``(centroids [k, D], assignments [N], squared distances [N])``
    of the restart with the lowest total squared error (the first one on ties)."""
    best: tuple[Tensor, Tensor, Tensor] | None = None
    best_error = float("inf")
    for restart in range(nredo):
        result = _one_restart(x, k, seed + 1 + RESTART_SEED_STRIDE * restart, niter, spherical)
        error = float(result[2].double().sum())
        if best is None or error < best_error:
            best, best_error = result, error
    assert best is not None
    return best
