r"""Hierarchical k-means prototypes of HCSC (Guo et al. 2022, "HCSC: Hierarchical Contrastive Selective Coding",
``run_hkmeans`` of the official code), with PCL's concentration per level (:mod:`contrastkit.cluster.concentration`).

With features ``v`` [N, D] and ``num_clusters = (k_0 > k_1 > ... > k_{L-1})``::

    inputs_0 = normalize(v)                              (rows L2-normalised when ``normalize``)
    level l:  k-means of inputs_l into k_l clusters, seed = seed + l   -> raw centroids R_l [k_l, D]
              phi_l     = concentration(inputs_l, its assignments, R_l)  (members: items at l = 0, child
                                                                          centroids above)
              C_l       = normalize(R_l)                  (the level's prototypes)
              inputs_{l+1} = C_l
    parents_l[j]     = cluster of prototype j of level l at level l + 1          [k_l] (None at the top)
    assignments_0    = cluster of every feature at level 0                       [N]
    assignments_{l+1} = parents_l[assignments_l]                                 [N] (every original item)

As in the official code, the concentration uses the distances to the centroids k-means returns, before they are
normalised. Under DDP every rank must cluster the same features: gather them first (the caller does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch.nn.functional as F
from torch import Tensor

from contrastkit._checks import check_tensor
from contrastkit.cluster.concentration import concentration
from contrastkit.cluster.kmeans import BACKENDS, kmeans

__all__ = ["ClusterLevel", "hierarchical_kmeans"]


@dataclass(frozen=True)
class ClusterLevel:
    """One level of :func:`hierarchical_kmeans` (``k_l`` prototypes).

    ``assignments`` [N] int64: the level-l cluster of every original item (composed through the parents);
    ``centroids`` [k_l, D] float32 (L2-normalised when ``normalize``); ``concentration`` [k_l] float32 phi;
    ``parents`` [k_l] int64: the level-(l+1) prototype of each level-l prototype, ``None`` at the top level.
    """

    assignments: Tensor
    centroids: Tensor
    concentration: Tensor
    parents: Tensor | None


def _check_num_clusters(num_clusters: object, n: int) -> list[int]:
    fix = "pass strictly decreasing positive ints with the first <= the number of features, e.g. [3000, 2000, 1000]"
    if isinstance(num_clusters, (str, bytes)) or not isinstance(num_clusters, Sequence) or len(num_clusters) == 0:
        raise ValueError(f"num_clusters must be a non-empty sequence of ints, got {num_clusters!r}; {fix}")
    ks = list(num_clusters)
    if not all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 1 for k in ks):
        raise ValueError(f"num_clusters must hold positive ints, got {ks!r}; {fix}")
    if any(a <= b for a, b in pairwise(ks)):
        raise ValueError(f"num_clusters must be strictly decreasing, got {ks!r}; {fix}")
    if ks[0] > n:
        raise ValueError(f"num_clusters[0] = {ks[0]} exceeds the {n} features to cluster; {fix}")
    return [int(k) for k in ks]


def hierarchical_kmeans(
    features: Tensor,
    num_clusters: Sequence[int],
    *,
    seed: int = 0,
    niter: int = 20,
    nredo: int = 1,
    backend: str = "auto",
    temperature: float = 0.2,
    normalize: bool = True,
) -> list[ClusterLevel]:
    """HCSC's prototype hierarchy of ``features`` [N, D]: one :class:`ClusterLevel` per entry of ``num_clusters``
    (strictly decreasing, ``num_clusters[0] <= N``), finest first.

    ``seed``, ``niter``, ``nredo`` and ``backend`` go to :func:`~contrastkit.cluster.kmeans` (level ``l`` uses
    ``seed + l``); ``temperature`` is the mean concentration of every level; ``normalize`` L2-normalises the
    features and every level's centroids (HCSC's setting).
    """
    check_tensor("features", features, 2, min_rows=1, floating=True)
    ks = _check_num_clusters(num_clusters, features.shape[0])
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    inputs = features.detach().float()
    if normalize:
        inputs = F.normalize(inputs, dim=1)
    raw: list[tuple[Tensor, Tensor, Tensor]] = []  # (prototypes, assignments of the level's inputs, phi)
    for level, k in enumerate(ks):
        result = kmeans(inputs, k, seed=seed + level, niter=niter, nredo=nredo, backend=backend)
        phi = concentration(inputs, result.assignments, result.centroids, temperature=temperature)
        prototypes = F.normalize(result.centroids, dim=1) if normalize else result.centroids
        raw.append((prototypes, result.assignments, phi))
        inputs = prototypes
    levels: list[ClusterLevel] = []
    assignments = raw[0][1]
    for level, (prototypes, _, phi) in enumerate(raw):
        parents = raw[level + 1][1] if level + 1 < len(raw) else None
        levels.append(ClusterLevel(assignments=assignments, centroids=prototypes, concentration=phi, parents=parents))
        if parents is not None:
            assignments = parents[assignments]
    return levels
