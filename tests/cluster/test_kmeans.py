"""k-means back ends: blob recovery, Lloyd fixed points against float64 brute force, seeds, restarts, empty clusters,
blocked distances, faiss/torch agreement and bad input."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import adjusted_rand_score

from contrastkit.cluster import BACKENDS, KMeansResult, _lloyd, faiss_available, kmeans
from contrastkit.cluster._lloyd import RESTART_SEED_STRIDE, reseed_empty_clusters

BOTH = ["torch", pytest.param("faiss", marks=pytest.mark.skipif(not faiss_available(), reason="faiss not installed"))]


def blobs(num: int, per: int, dim: int, spread: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``per`` points around each of ``num`` centres 10 units apart (the first ``num`` axes scaled by 10/sqrt 2)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.zeros(num, dim)
    centres[torch.arange(num), torch.arange(num)] = 10.0 / 2**0.5
    labels = torch.arange(num).repeat_interleave(per)
    return centres[labels] + spread * torch.randn(num * per, dim, generator=g), labels


def error(result: KMeansResult) -> float:
    return float(result.distances.double().pow(2).sum())


def assert_lloyd_fixed_point(x: torch.Tensor, result: KMeansResult) -> None:
    """Assignments are nearest centroids, distances Euclidean, centroids the means of their members (float64)."""
    xd, cd = x.double(), result.centroids.double()
    dist = torch.cdist(xd, cd)
    own = dist.gather(1, result.assignments.unsqueeze(1)).squeeze(1)
    assert torch.all(own <= dist.min(dim=1).values + 1e-5)
    torch.testing.assert_close(result.distances.double(), own, atol=1e-4, rtol=0)
    for j in result.assignments.unique():
        torch.testing.assert_close(cd[j], xd[result.assignments == j].mean(0), atol=1e-5, rtol=0)


@pytest.mark.parametrize("backend", BOTH)
def test_well_separated_blobs_are_recovered_exactly(backend: str) -> None:
    x, labels = blobs(4, 40, 6, spread=0.3, seed=0)
    result = kmeans(x, 4, seed=0, nredo=25, backend=backend)
    assert result.backend == backend
    assert result.centroids.shape == (4, 6) and result.centroids.dtype == torch.float32
    assert result.assignments.shape == (160,) and result.assignments.dtype == torch.int64
    assert result.distances.shape == (160,) and result.distances.dtype == torch.float32
    assert adjusted_rand_score(labels.numpy(), result.assignments.numpy()) == 1.0
    assert_lloyd_fixed_point(x, result)
    assert float(result.distances.max()) < 2.0  # Euclidean, not squared: noise 0.3 in 6-d gives ~0.7


@pytest.mark.parametrize("backend", BOTH)
def test_spherical_keeps_unit_centroids(backend: str) -> None:
    x = F.normalize(torch.randn(300, 5), dim=1)
    result = kmeans(x, 7, seed=1, niter=10, spherical=True, backend=backend)
    torch.testing.assert_close(result.centroids.norm(dim=1), torch.ones(7), atol=1e-5, rtol=0)
    plain = kmeans(x, 7, seed=1, niter=10, backend=backend)
    assert not torch.allclose(plain.centroids.norm(dim=1), torch.ones(7), atol=1e-3)


def test_torch_is_deterministic_per_seed_and_the_seed_changes_the_start() -> None:
    x = torch.randn(300, 5)
    a, b = (kmeans(x, 10, seed=3, niter=5, backend="torch") for _ in range(2))
    assert torch.equal(a.centroids, b.centroids) and torch.equal(a.assignments, b.assignments)
    assert torch.equal(a.distances, b.distances)
    other = kmeans(x, 10, seed=4, niter=5, backend="torch")
    assert not torch.allclose(a.centroids, other.centroids)


def test_torch_starts_from_seeded_distinct_rows_then_lloyd_steps() -> None:
    """niter=1 from the documented start: rows randperm(N)[:k] of a CPU generator seeded with seed + 1."""
    x, k, seed = torch.randn(50, 3), 6, 11
    start = x[torch.randperm(50, generator=torch.Generator().manual_seed(seed + 1))[:k]].double()
    first = torch.cdist(x.double(), start).argmin(1)
    assert first.unique().numel() == k  # no empty cluster: the update is a plain mean
    expected = torch.stack([x.double()[first == j].mean(0) for j in range(k)])
    result = kmeans(x, k, seed=seed, niter=1, backend="torch")
    torch.testing.assert_close(result.centroids.double(), expected, atol=1e-6, rtol=0)
    assert torch.equal(result.assignments, torch.cdist(x.double(), expected).argmin(1))


@pytest.mark.parametrize("backend", BOTH)
def test_nredo_keeps_the_restart_with_the_lowest_error(backend: str) -> None:
    x = torch.randn(400, 4)
    singles = [kmeans(x, 15, seed=2 + RESTART_SEED_STRIDE * r, niter=8, backend=backend) for r in range(5)]
    errors = [error(s) for s in singles]
    assert max(errors) - min(errors) > 1e-3 * min(errors)  # the restarts differ, so the choice matters
    best = kmeans(x, 15, seed=2, niter=8, nredo=5, backend=backend)
    assert error(best) == pytest.approx(min(errors), rel=1e-6)
    chosen = singles[errors.index(min(errors))]
    assert torch.equal(best.assignments, chosen.assignments)


@pytest.mark.skipif(not faiss_available(), reason="faiss not installed")
def test_torch_and_faiss_agree_for_the_same_seed() -> None:
    """Both draw restart r from the same shuffle (seed + 1 + 15486557 r), see contrastkit.cluster._lloyd."""
    x = torch.randn(500, 6)
    a = kmeans(x, 12, seed=7, nredo=3, backend="faiss")
    b = kmeans(x, 12, seed=7, nredo=3, backend="torch")
    assert torch.equal(a.assignments, b.assignments)
    torch.testing.assert_close(a.centroids, b.centroids, atol=1e-5, rtol=0)


def test_empty_clusters_take_the_farthest_points_with_duplicates() -> None:
    """24 rows at 6 places, k = 8: some starts miss a place and tie on another (an empty cluster); reseeding
    must still put a centroid on every place."""
    places = torch.randn(6, 3)
    x = places.repeat(4, 1)
    for seed in range(10):
        result = kmeans(x, 8, seed=seed, niter=5, backend="torch")
        assert torch.isfinite(result.centroids).all()
        assert result.assignments.min() >= 0 and result.assignments.max() < 8
        assert error(result) == pytest.approx(0.0, abs=1e-8)
        assert result.assignments.unique().numel() == 6


@pytest.mark.parametrize("backend", BOTH)
def test_k_equal_to_n_gives_one_row_per_cluster(backend: str) -> None:
    x = torch.randn(20, 4)
    result = kmeans(x, 20, seed=0, backend=backend)
    assert torch.equal(result.assignments.sort().values, torch.arange(20))
    assert float(result.distances.max()) < 1e-3


@pytest.mark.parametrize("backend", BOTH)
def test_near_n_clusters_with_duplicates_stay_valid(backend: str) -> None:
    x = torch.cat([torch.randn(10, 3), torch.zeros(15, 3)])  # 11 distinct rows, k = 20
    result = kmeans(x, 20, seed=0, backend=backend)
    assert torch.isfinite(result.centroids).all() and result.centroids.shape == (20, 3)
    assert result.assignments.min() >= 0 and result.assignments.max() < 20
    assert torch.cdist(x.double(), result.centroids.double()).min(1).values.max() < 1e-6  # a centroid on every row


def test_reseed_takes_farthest_points_and_never_empties_a_donor() -> None:
    assignments = torch.tensor([0, 0, 0, 1, 1, 3])
    sq_dist = torch.tensor([0.1, 5.0, 3.0, 4.0, 1.0, 9.0])  # row 5 is farthest but the only member of cluster 3
    new, empty, moved = reseed_empty_clusters(assignments, sq_dist, 5)
    assert empty.tolist() == [2, 4] and moved.tolist() == [1, 3]
    assert new.tolist() == [0, 2, 0, 4, 1, 3]
    pair = torch.tensor([0, 0, 1]), torch.tensor([7.0, 8.0, 0.0])  # both far rows in cluster 0: it keeps row 0
    new, _, moved = reseed_empty_clusters(*pair, 3)
    assert moved.tolist() == [1] and new.tolist() == [0, 2, 1]


def test_distance_blocks_stay_under_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.randn(300, 4)
    reference = kmeans(x, 9, seed=0, niter=4, backend="torch")
    monkeypatch.setattr(_lloyd, "MAX_DISTANCE_ENTRIES", 40)  # 4 rows x 9 centroids per block
    largest = []
    real_addmm = torch.addmm

    def spy(*args: object, **kwargs: object) -> torch.Tensor:
        out = real_addmm(*args, **kwargs)
        largest.append(out.numel())
        return out

    monkeypatch.setattr(torch, "addmm", spy)
    blocked = kmeans(x, 9, seed=0, niter=4, backend="torch")
    assert max(largest) <= 40 and len(largest) > 100
    torch.testing.assert_close(blocked.centroids, reference.centroids, atol=1e-6, rtol=0)
    assert torch.equal(blocked.assignments, reference.assignments)


def test_input_is_not_modified_and_float64_is_accepted() -> None:
    x = torch.randn(100, 3, dtype=torch.float64)
    copy = x.clone()
    result = kmeans(x, 5, backend="torch", spherical=True)
    assert torch.equal(x, copy) and result.centroids.dtype == torch.float32


def test_without_faiss_auto_falls_back_and_faiss_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)  # makes ``import faiss`` raise ImportError
    assert not faiss_available()
    x = torch.randn(30, 2)
    assert kmeans(x, 3, backend="auto").backend == "torch"
    with pytest.raises(ImportError, match=r"pip install 'contrastkit\[cluster\]'"):
        kmeans(x, 3, backend="faiss")


def test_auto_picks_faiss_on_cpu_when_installed() -> None:
    pytest.importorskip("faiss")
    assert kmeans(torch.randn(30, 2), 3).backend == "faiss"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_torch_backend_on_cuda_matches_cpu() -> None:
    x, labels = blobs(4, 500, 16, spread=0.3, seed=1)
    cpu = kmeans(x, 4, seed=1, nredo=25, backend="torch")
    gpu = kmeans(x.cuda(), 4, seed=1, nredo=25)  # auto: torch on CUDA
    assert gpu.backend == "torch" and gpu.centroids.device.type == "cuda" and gpu.assignments.device.type == "cuda"
    assert torch.equal(gpu.assignments.cpu(), cpu.assignments)
    assert adjusted_rand_score(labels.numpy(), gpu.assignments.cpu().numpy()) == 1.0
    torch.testing.assert_close(gpu.centroids.cpu(), cpu.centroids, atol=1e-4, rtol=0)
    torch.testing.assert_close(gpu.distances.cpu(), cpu.distances, atol=1e-3, rtol=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 0}, r"k must be an int in \[1, 30\]"),
        ({"k": 31}, r"at most one cluster per row"),
        ({"k": 2.0}, r"k must be an int"),
        ({"k": 3, "niter": 0}, r"niter must be an int >= 1"),
        ({"k": 3, "nredo": 0}, r"nredo must be an int >= 1"),
        ({"k": 3, "seed": -1}, r"seed must be an int"),
        ({"k": 3, "backend": "sklearn"}, r"backend must be one of \('auto', 'faiss', 'torch'\)"),
    ],
)
def test_bad_arguments_raise_one_line_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        kmeans(torch.randn(30, 2), **kwargs)
    assert "\n" not in str(info.value)


def test_bad_data_raises() -> None:
    with pytest.raises(ValueError, match="x must have 2 dimensions"):
        kmeans(torch.randn(30), 3)
    with pytest.raises(ValueError, match="floating-point"):
        kmeans(torch.ones(30, 2, dtype=torch.int64), 3)
    assert BACKENDS == ("auto", "faiss", "torch")
