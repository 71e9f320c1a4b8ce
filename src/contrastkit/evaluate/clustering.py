"""Clustering quality of frozen features: k-means / GMM assignments scored against labels with NMI and ARI.

* ``NMI(y, c) = I(y; c) / mean(H(y), H(c))`` (arithmetic mean by default, scikit-learn's
  ``normalized_mutual_info_score``; record the variant, it changes the number);
* ``ARI`` = adjusted Rand index (Hubert & Arabie, 1985), 0 in expectation for random assignments, 1 for a
  perfect match up to a permutation of cluster ids.

Methods:

* ``"kmeans"``: scikit-learn ``KMeans(n_clusters, n_init=10, random_state=seed)`` (Lloyd, k-means++ seeding);
* ``"gmm"``: scikit-learn
  ``GaussianMixture(n_clusters, covariance_type="full", n_init=3, random_state=seed)``, the CLAWS protocol
  (Ghosh et al., 2021: GMM-NMI on the L2-normalised embedding). ``covariance_type`` may be ``"full"``
  (default), ``"diag"``, ``"tied"`` or ``"spherical"``. Full covariances need ``D`` small relative to the
  cluster sizes (use low-dimensional heads or PCA); GMM-NMI varies with the seed, so average several
  (:func:`mean_cluster_scores`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch.nn.functional as F
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix
from sklearn.mixture import GaussianMixture
from torch import Tensor

from contrastkit._checks import check_labels, check_tensor

__all__ = ["cluster_assignments", "cluster_purity", "cluster_scores", "mean_cluster_scores"]

_METHODS = ("kmeans", "gmm")
_COVARIANCES = ("full", "diag", "tied", "spherical")
_AVERAGES = ("arithmetic", "geometric", "min", "max")
_DEFAULT_N_INIT = {"kmeans": 10, "gmm": 3}


def cluster_assignments(
    features: Tensor,
    n_clusters: int,
    method: str = "kmeans",
    seed: int = 0,
    normalize: bool = True,
    covariance_type: str = "full",
    n_init: int | None = None,
) -> np.ndarray:
    """Cluster ids ``[N]`` (int64 numpy) of ``features`` ``[N, D]``; see the module docstring for the methods.

    ``normalize`` L2-normalises each row first (``z / ||z||``), the usual choice for contrastive embeddings.
    ``n_init`` defaults to 10 restarts for k-means and 3 for the GMM; the best run (inertia / likelihood)
    wins.
    """
    check_tensor("features", features, 2, min_rows=1, floating=True)
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if covariance_type not in _COVARIANCES:
        raise ValueError(f"covariance_type must be one of {_COVARIANCES}, got {covariance_type!r}")
    if not isinstance(n_clusters, int) or isinstance(n_clusters, bool) or n_clusters < 1:
        raise ValueError(f"n_clusters must be a positive int, got {n_clusters!r}")
    if n_clusters > features.shape[0]:
        raise ValueError(f"n_clusters {n_clusters} exceeds the number of samples {features.shape[0]}")
    n_init = _DEFAULT_N_INIT[method] if n_init is None else n_init
    if not isinstance(n_init, int) or isinstance(n_init, bool) or n_init < 1:
        raise ValueError(f"n_init must be a positive int, got {n_init!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")

    z = features.detach()
    if normalize:
        z = F.normalize(z, dim=1)
    x = z.double().cpu().numpy()
    if method == "kmeans":
        model = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed)
        return model.fit_predict(x).astype(np.int64)
    gmm = GaussianMixture(
        n_components=n_clusters, covariance_type=covariance_type, n_init=n_init, random_state=seed
    )
    return gmm.fit(x).predict(x).astype(np.int64)


def cluster_scores(
    features: Tensor,
    labels: Tensor,
    n_clusters: int | None = None,
    method: str = "kmeans",
    seed: int = 0,
    normalize: bool = True,
    covariance_type: str = "full",
    n_init: int | None = None,
    average_method: str = "arithmetic",
) -> dict[str, float]:
    """Cluster ``features`` ``[N, D]`` and score the assignment against ``labels`` ``[N]``.

    Args:
        n_clusters: ``K``; ``None`` uses the number of distinct labels.
        average_method: NMI normaliser: ``"arithmetic"`` (default), ``"geometric"``, ``"min"`` or ``"max"``.
        Others: see :func:`cluster_assignments`.

    Returns:
        ``{"nmi": float in [0, 1], "ari": float in [-1, 1]}``.
    """
    check_tensor("features", features, 2, min_rows=1, floating=True)
    check_labels("labels", labels, features.shape[0])
    if average_method not in _AVERAGES:
        raise ValueError(f"average_method must be one of {_AVERAGES}, got {average_method!r}")
    y = labels.detach().cpu().numpy()
    k = int(np.unique(y).size) if n_clusters is None else n_clusters
    assigned = cluster_assignments(features, k, method, seed, normalize, covariance_type, n_init)
    return {
        "nmi": float(normalized_mutual_info_score(y, assigned, average_method=average_method)),
        "ari": float(adjusted_rand_score(y, assigned)),
    }


def mean_cluster_scores(
    features: Tensor,
    labels: Tensor,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    **kwargs: object,
) -> dict[str, float]:
    """Mean and (population) std of :func:`cluster_scores` over ``seeds`` (CLAWS: 5 GMM seeds).

    Returns ``{"nmi", "nmi_std", "ari", "ari_std"}``; ``kwargs`` are passed to :func:`cluster_scores`.
    """
    if len(seeds) == 0:
        raise ValueError("seeds is empty; pass at least one seed, e.g. (0, 1, 2, 3, 4)")
    if "seed" in kwargs:
        raise ValueError("pass seeds=..., not seed=..., to mean_cluster_scores")
    runs = [cluster_scores(features, labels, seed=s, **kwargs) for s in seeds]  # type: ignore[arg-type]
    nmi = np.array([r["nmi"] for r in runs])
    ari = np.array([r["ari"] for r in runs])
    return {
        "nmi": float(nmi.mean()),
        "nmi_std": float(nmi.std()),
        "ari": float(ari.mean()),
        "ari_std": float(ari.std()),
    }


def cluster_purity(assignments: Tensor, labels: Tensor) -> float:
    """Purity of a clustering: ``(1/N) sum_c max_y |{i : c_i = c, y_i = y}|``, the share of items whose cluster's
    majority label is their own (1 for clusters that never mix labels; it rises with the number of clusters, so
    compare clusterings of one size). ``assignments`` and ``labels`` ``[N]`` int."""
    check_labels("labels", labels, assignments.shape[0])
    if assignments.numel() == 0:
        raise ValueError("cluster_purity needs at least one item")
    table = contingency_matrix(labels.detach().cpu().numpy(), assignments.detach().cpu().numpy())  # [labels, clusters]
    return float(table.max(axis=0).sum()) / assignments.numel()
