r"""k-means with two back ends: faiss (``faiss.Kmeans``, CPU) when installed, else Lloyd's algorithm in torch.

:func:`kmeans` minimises ``sum_i ||x_i - c_{a_i}||^2`` over centroids ``c`` [k, D] and assignments ``a`` [N] with
``niter`` Lloyd iterations from ``k`` distinct random rows, ``nredo`` restarts keeping the lowest error, as in the
clustering step of PCL (Li et al. 2021, "Prototypical Contrastive Learning of Unsupervised Representations") and
HCSC (Guo et al. 2022, "HCSC: Hierarchical Contrastive Selective Coding").

Back ends (``BACKENDS``):

* ``"faiss"``: ``faiss.Kmeans`` on a float32 copy on the CPU (``pip install 'contrastkit[cluster]'``), with
  ``min_points_per_centroid=1`` and ``max_points_per_centroid >= ceil(N / k)`` so faiss neither warns nor
  subsamples; the points are then assigned with a flat L2 index on the final centroids (faiss's own index is an
  inner-product one when ``spherical``), distances = ``sqrt(max(D, 0))``. faiss is imported only when used.
* ``"torch"``: :func:`contrastkit.cluster._lloyd.lloyd_kmeans` on ``x``'s device (CPU or CUDA), bitwise
  reproducible on the CPU for a given seed.
* ``"auto"``: faiss when it imports and ``x`` is on the CPU, torch otherwise.

For a given seed both back ends start from the same rows of ``x`` (see :mod:`contrastkit.cluster._lloyd`), so
they agree up to float rounding unless clusters empty on the way.
Under DDP every rank must cluster the same memory: gather the features of all ranks first (the caller does).

The faiss-cpu wheel brings its own OpenMP runtime next to torch's; on a busy CPU the first calls after switching
between the back ends can be slow while the other runtime's threads still spin (``OMP_WAIT_POLICY=PASSIVE`` in the
environment avoids it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from contrastkit._checks import check_tensor
from contrastkit._optional import faiss_available
from contrastkit.cluster._lloyd import lloyd_kmeans

__all__ = ["BACKENDS", "KMeansResult", "faiss_available", "kmeans"]

BACKENDS = ("auto", "faiss", "torch")
_INSTALL_FAISS = "pip install 'contrastkit[cluster]'"


@dataclass(frozen=True)
class KMeansResult:
    """Output of :func:`kmeans`.

    ``centroids`` [k, D] float32 and ``assignments`` [N] int64 (nearest centroid of every row) on the input's
    device; ``distances`` [N] float32: Euclidean (not squared) distance of every row to its centroid; ``backend``:
    the back end that ran, ``"faiss"`` or ``"torch"``.
    """

    centroids: Tensor
    assignments: Tensor
    distances: Tensor
    backend: str


def _check_int(name: str, value: object, low: int, high: int | None = None, fix: str = "") -> int:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):  # type: ignore[operator]
        where = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an int {where}, got {value!r}{fix}")
    return int(value)  # type: ignore[arg-type]


def resolve_backend(backend: str, device: torch.device) -> str:
    """The back end that ``backend`` means for data on ``device``: ``"faiss"`` or ``"torch"``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "faiss" if device.type == "cpu" and faiss_available() else "torch"
    if backend == "faiss" and not faiss_available():
        raise ImportError(f"backend='faiss' needs faiss, which is not installed; run {_INSTALL_FAISS} or use "
                          "backend='torch'")  # fmt: skip
    return backend


def _faiss_kmeans(x: Tensor, k: int, seed: int, niter: int, nredo: int, spherical: bool) -> tuple[Tensor, ...]:
    import faiss

    data = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
    n, d = data.shape
    km = faiss.Kmeans(d, k, niter=niter, nredo=nredo, seed=seed, spherical=spherical, verbose=False,
                      min_points_per_centroid=1, max_points_per_centroid=max(1, math.ceil(n / k)))  # fmt: skip
    km.train(data)
    centroids = np.ascontiguousarray(km.centroids, dtype=np.float32)
    index = faiss.IndexFlatL2(d)
    index.add(centroids)
    sq_dist, nearest = index.search(data, 1)
    return torch.from_numpy(centroids), torch.from_numpy(nearest[:, 0]), torch.from_numpy(sq_dist[:, 0])


def kmeans(
    x: Tensor,
    k: int,
    *,
    seed: int = 0,
    niter: int = 20,
    nredo: int = 1,
    backend: str = "auto",
    spherical: bool = False,
) -> KMeansResult:
    """k-means of the rows of ``x`` [N, D] into ``k`` clusters (1 <= k <= N).

    ``seed`` (0 <= seed < 2**31) fixes the initial centroids; ``niter`` Lloyd iterations; ``nredo`` restarts
    (the one with the lowest ``sum_i ||x_i - c_{a_i}||^2`` is kept); ``spherical`` renormalises the centroids to
    unit length after every update; ``backend`` one of ``BACKENDS`` (see the module docstring). ``x`` is used in
    float32 and not modified. Returns a :class:`KMeansResult` on ``x``'s device.
    """
    check_tensor("x", x, 2, min_rows=1, floating=True)
    n = x.shape[0]
    k = _check_int("k", k, 1, n, fix=" (at most one cluster per row of x)")
    seed = _check_int("seed", seed, 0, 2**31 - 1)
    niter = _check_int("niter", niter, 1)
    nredo = _check_int("nredo", nredo, 1)
    if not isinstance(spherical, bool):
        raise ValueError(f"spherical must be a bool, got {spherical!r}")
    if x.shape[1] == 0:
        raise ValueError("x has 0 features per row; pass x of shape [N, D] with D >= 1")
    chosen = resolve_backend(backend, x.device)
    if chosen == "faiss":
        centroids, assignments, sq_dist = _faiss_kmeans(x, k, seed, niter, nredo, spherical)
    else:
        data = x.detach().to(torch.float32).contiguous()
        centroids, assignments, sq_dist = lloyd_kmeans(data, k, seed, niter, nredo, spherical)
    return KMeansResult(
        centroids=centroids.to(device=x.device, dtype=torch.float32),
        assignments=assignments.to(device=x.device, dtype=torch.int64),
        distances=sq_dist.to(device=x.device, dtype=torch.float32).clamp(min=0.0).sqrt(),
        backend=chosen,
    )
