"""PCL concentration against an independent float64 numpy loop, and HCSC's hierarchy on a hand-built 8 -> 4 -> 2
structure (parents, composed assignments, per-level seeds, concentration of child prototypes) and bad input."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import adjusted_rand_score

from contrastkit.cluster import ClusterLevel, concentration, faiss_available, hierarchical_kmeans, kmeans

BOTH = ["torch", pytest.param("faiss", marks=pytest.mark.skipif(not faiss_available(), reason="faiss not installed"))]


def reference_phi(x: np.ndarray, assign: np.ndarray, centres: np.ndarray, temperature: float,
                  low: float = 10.0, high: float = 90.0) -> np.ndarray:  # fmt: skip
    """PCL's rule, written as loops over clusters in float64."""
    k = centres.shape[0]
    phi = np.zeros(k)
    for c in range(k):
        rows = [i for i in range(len(assign)) if assign[i] == c]
        if len(rows) > 1:
            phi[c] = np.mean([math.sqrt(((x[i] - centres[c]) ** 2).sum()) for i in rows]) / math.log(len(rows) + 10)
    top = phi.max()
    for c in range(k):
        if sum(1 for a in assign if a == c) <= 1:
            phi[c] = top
    phi = np.clip(phi, np.percentile(phi, low), np.percentile(phi, high))
    return temperature * phi / phi.mean()


def clustered_example() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """12 clusters of sizes 1, 0, 2, 3, 5, 8, 13, 4, 6, 2, 9, 7 with spreads from 0.1 to 2.3 (8-d)."""
    g = torch.Generator().manual_seed(0)
    sizes = [1, 0, 2, 3, 5, 8, 13, 4, 6, 2, 9, 7]
    centroids = 5 * torch.randn(12, 8, generator=g, dtype=torch.float64)
    assign = torch.arange(12).repeat_interleave(torch.tensor(sizes))
    spread = (0.1 + 0.2 * torch.arange(12, dtype=torch.float64))[assign].unsqueeze(1)
    x = centroids[assign] + spread * torch.randn(len(assign), 8, generator=g, dtype=torch.float64)
    return x, assign, centroids


@pytest.mark.parametrize("temperature", [0.2, 0.05])
def test_concentration_matches_numpy_reference(temperature: float) -> None:
    x, assign, centroids = clustered_example()
    phi = concentration(x, assign, centroids, temperature=temperature)
    expected = reference_phi(x.numpy(), assign.numpy(), centroids.numpy(), temperature)
    assert phi.dtype == torch.float32 and phi.shape == (12,)
    np.testing.assert_allclose(phi.numpy(), expected, rtol=1e-6, atol=1e-8)
    assert float(phi.mean()) == pytest.approx(temperature, rel=1e-6)
    unclipped = reference_phi(x.numpy(), assign.numpy(), centroids.numpy(), temperature, 0.0, 100.0)
    assert np.abs(unclipped - expected).max() > 1e-3  # the clip changes this example
    no_clip = concentration(x, assign, centroids, temperature=temperature, clip=(0.0, 100.0))
    np.testing.assert_allclose(no_clip.numpy(), unclipped, rtol=1e-6, atol=1e-8)


def test_concentration_of_singletons_only_is_the_temperature() -> None:
    x = torch.randn(5, 3)
    phi = concentration(x, torch.arange(5), x.clone(), temperature=0.3)
    torch.testing.assert_close(phi, torch.full((5,), 0.3))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"clip": (90.0, 10.0)}, "clip must be two percentiles"),
        ({"temperature": 0.0}, "temperature must be a finite number > 0"),
        ({"smoothing": -1.0}, "smoothing must be a finite number > 0"),
    ],
)
def test_concentration_bad_arguments(kwargs: dict, match: str) -> None:
    x, assign, centroids = clustered_example()
    with pytest.raises(ValueError, match=match):
        concentration(x, assign, centroids, **kwargs)


def test_concentration_bad_assignments() -> None:
    x, assign, centroids = clustered_example()
    with pytest.raises(ValueError, match=r"must lie in \[0, 12\)"):
        concentration(x, assign + 1, centroids)
    with pytest.raises(ValueError, match="centroids have 7 features but x has 8"):
        concentration(x, assign, centroids[:, :7])


def three_level_data(per: int = 15) -> tuple[torch.Tensor, torch.Tensor]:
    """Points around 8 centres (+-10, +-3, +-1) on the first three axes of 6-d: the sign of axis 0 splits 2 groups,
    then axis 1 splits 4, then axis 2 splits 8. Leaf label = 4 * (axis0 < 0) + 2 * (axis1 < 0) + (axis2 < 0)."""
    g = torch.Generator().manual_seed(0)
    signs = torch.tensor([[a, b, c] for a in (1, -1) for b in (1, -1) for c in (1, -1)], dtype=torch.float32)
    centres = torch.zeros(8, 6)
    centres[:, :3] = signs * torch.tensor([10.0, 3.0, 1.0])
    leaf = torch.arange(8).repeat_interleave(per)
    return centres[leaf] + 0.05 * torch.randn(8 * per, 6, generator=g), leaf


@pytest.mark.parametrize("backend", BOTH)
def test_hierarchy_follows_the_geometry(backend: str) -> None:
    x, leaf = three_level_data()
    levels = hierarchical_kmeans(x, [8, 4, 2], seed=0, nredo=20, backend=backend, temperature=0.2)
    assert [type(level) for level in levels] == [ClusterLevel] * 3
    assert [level.centroids.shape for level in levels] == [(8, 6), (4, 6), (2, 6)]
    for level, truth in zip(levels, (leaf, leaf // 2, leaf // 4), strict=True):
        assert level.assignments.shape == (120,) and level.assignments.dtype == torch.int64
        assert adjusted_rand_score(truth.numpy(), level.assignments.numpy()) == 1.0
        torch.testing.assert_close(level.centroids.norm(dim=1), torch.ones(len(level.centroids)))
        assert float(level.concentration.mean()) == pytest.approx(0.2, rel=1e-5)
    assert levels[2].parents is None
    for lower, upper in pairwise(levels):
        assert lower.parents is not None and lower.parents.dtype == torch.int64
        assert torch.equal(upper.assignments, lower.parents[lower.assignments])
    # level-0 prototype j holds one leaf; its parent at level 1 must hold that leaf's pair (leaf // 2)
    leaf_of = torch.stack([leaf[levels[0].assignments == j][0] for j in range(8)])
    pair_of_parent = torch.stack([(leaf // 2)[levels[1].assignments == p][0] for p in range(4)])
    assert torch.equal(pair_of_parent[levels[0].parents], leaf_of // 2)
    half_of_parent = torch.stack([(leaf // 4)[levels[2].assignments == p][0] for p in range(2)])
    assert torch.equal(half_of_parent[levels[1].parents], pair_of_parent // 2)


def test_higher_levels_use_child_prototypes_as_members() -> None:
    """Level 1's phi: members are the 8 normalised level-0 prototypes, centres their raw means (converged)."""
    x, _ = three_level_data()
    levels = hierarchical_kmeans(x, [8, 4, 2], seed=0, nredo=20, backend="torch", temperature=0.1)
    children, parents = levels[0].centroids.double(), levels[0].parents
    assert parents is not None
    means = torch.stack([children[parents == p].mean(0) for p in range(4)])
    expected = reference_phi(children.numpy(), parents.numpy(), means.numpy(), 0.1)
    np.testing.assert_allclose(levels[1].concentration.numpy(), expected, rtol=1e-4)


def test_level_zero_concentration_uses_the_raw_centroids() -> None:
    """As in the official code, phi is measured to k-means' centroids before they are L2-normalised."""
    v = F.normalize(torch.randn(200, 5), dim=1)
    levels = hierarchical_kmeans(v, [6, 2], seed=0, backend="torch")
    first = kmeans(v, 6, seed=0, backend="torch")
    a = first.assignments.numpy()
    raw = reference_phi(v.double().numpy(), a, first.centroids.double().numpy(), 0.2)
    unit = reference_phi(v.double().numpy(), a, F.normalize(first.centroids, dim=1).double().numpy(), 0.2)
    assert np.abs(raw - unit).max() > 1e-3  # the two readings differ on this example
    np.testing.assert_allclose(levels[0].concentration.numpy(), raw, rtol=1e-5)


def test_each_level_uses_seed_plus_level() -> None:
    x = torch.randn(200, 5)
    levels = hierarchical_kmeans(x, [12, 5], seed=3, niter=6, backend="torch")
    first = kmeans(F.normalize(x, dim=1), 12, seed=3, niter=6, backend="torch")
    assert torch.equal(levels[0].assignments, first.assignments)
    torch.testing.assert_close(levels[0].centroids, F.normalize(first.centroids, dim=1))
    second = kmeans(levels[0].centroids, 5, seed=4, niter=6, backend="torch")
    assert torch.equal(levels[0].parents, second.assignments)


def test_without_normalize_the_raw_features_are_clustered() -> None:
    x = 5 * torch.randn(100, 4)
    levels = hierarchical_kmeans(x, [6, 2], seed=0, niter=5, backend="torch", normalize=False)
    plain = kmeans(x, 6, seed=0, niter=5, backend="torch")
    assert torch.equal(levels[0].centroids, plain.centroids)
    assert float(levels[0].centroids.norm(dim=1).max()) > 2.0


@pytest.mark.parametrize(
    ("num_clusters", "match"),
    [
        ([], "non-empty sequence"),
        ("8,4", "non-empty sequence"),
        ([4, 4, 2], "strictly decreasing"),
        ([2, 4], "strictly decreasing"),
        ([4, 0], "positive ints"),
        ([4.0, 2], "positive ints"),
        ([31, 2], "exceeds the 30 features"),
    ],
)
def test_bad_num_clusters_name_the_fix(num_clusters: object, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        hierarchical_kmeans(torch.randn(30, 3), num_clusters)  # type: ignore[arg-type]
    assert "strictly decreasing positive ints" in str(info.value) and "\n" not in str(info.value)


def test_unknown_backend_is_rejected() -> None:
    with pytest.raises(ValueError, match="backend must be one of"):
        hierarchical_kmeans(torch.randn(30, 3), [4, 2], backend="sklearn")
