"""k-means / GMM clustering scores: perfect clusters, random labels, permutation invariance, seeds, checks."""

from __future__ import annotations

import pytest
import torch

from contrastkit.evaluate import cluster_assignments, cluster_scores, mean_cluster_scores


def _blobs(n_per: int = 60, k: int = 3, d: int = 4, spread: float = 0.05, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.eye(d)[:k] * 3.0 + 1.0  # distinct directions, so they survive L2 normalisation
    labels = torch.arange(k).repeat_interleave(n_per)
    return centers[labels] + spread * torch.randn(k * n_per, d, generator=g), labels


@pytest.mark.parametrize("method", ["kmeans", "gmm"])
def test_perfect_clusters_score_one(method: str) -> None:
    x, y = _blobs()
    scores = cluster_scores(x, y, method=method)
    assert scores["nmi"] == pytest.approx(1.0)
    assert scores["ari"] == pytest.approx(1.0)


@pytest.mark.parametrize("covariance_type", ["diag", "tied", "spherical"])
def test_gmm_covariance_types_run(covariance_type: str) -> None:
    x, y = _blobs()
    assert cluster_scores(x, y, method="gmm", covariance_type=covariance_type)["nmi"] == pytest.approx(1.0)


def test_random_labels_score_near_zero() -> None:
    x, _ = _blobs(n_per=200)
    y = torch.randint(0, 3, (600,), generator=torch.Generator().manual_seed(9))
    scores = cluster_scores(x, y)
    assert scores["nmi"] < 0.03  # expected NMI of independent labels at N = 600, K = 3 is ~0.002
    assert abs(scores["ari"]) < 0.03


def test_label_permutation_does_not_change_scores() -> None:
    x, y = _blobs(spread=1.0)  # overlapping clusters, scores strictly between 0 and 1
    base = cluster_scores(x, y)
    permuted = torch.tensor([2, 0, 1])[y]
    assert 0.05 < base["nmi"] < 0.99
    assert cluster_scores(x, permuted) == base


def test_same_seed_same_assignments_and_seed_average() -> None:
    x, y = _blobs(spread=1.0)
    a = cluster_assignments(x, 3, method="gmm", seed=4)
    b = cluster_assignments(x, 3, method="gmm", seed=4)
    assert (a == b).all()
    runs = [cluster_scores(x, y, method="gmm", seed=s)["nmi"] for s in (0, 1)]
    avg = mean_cluster_scores(x, y, seeds=(0, 1), method="gmm")
    assert avg["nmi"] == pytest.approx(sum(runs) / 2)
    assert avg["nmi_std"] == pytest.approx(abs(runs[0] - runs[1]) / 2)


def test_normalisation_clusters_directions_not_norms() -> None:
    g = torch.Generator().manual_seed(1)
    direction = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    y = torch.arange(2).repeat_interleave(50)
    radius = torch.where(torch.rand(100, generator=g) < 0.5, 1.0, 20.0)[
        :, None
    ]  # norm is unrelated to the label
    x = (direction[y] + 0.02 * torch.randn(100, 2, generator=g)) * radius
    assert cluster_scores(x, y, normalize=True)["ari"] == pytest.approx(1.0)
    assert cluster_scores(x, y, normalize=False)["ari"] < 0.5


@pytest.mark.parametrize("case", ["len", "1d", "nan", "method", "cov", "k", "average", "seeds"])
def test_bad_inputs_raise(case: str) -> None:
    x, y = _blobs(n_per=5)
    with pytest.raises(ValueError):
        if case == "len":
            cluster_scores(x, y[:-1])
        elif case == "1d":
            cluster_scores(x[:, 0], y)
        elif case == "nan":
            cluster_scores(torch.full_like(x, float("nan")), y)
        elif case == "method":
            cluster_scores(x, y, method="dbscan")
        elif case == "cov":
            cluster_scores(x, y, method="gmm", covariance_type="banana")
        elif case == "k":
            cluster_scores(x, y, n_clusters=100)
        elif case == "average":
            cluster_scores(x, y, average_method="median")
        elif case == "seeds":
            mean_cluster_scores(x, y, seeds=())
