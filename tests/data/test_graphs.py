"""Graph data (src/contrastkit/data/graphs.py): kNN image graphs, the offline Planetoid reader, degree features."""

from __future__ import annotations

import pickle
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("torch_geometric")

from contrastkit.data.graphs import degree_features, knn_edge_index, knn_image_graph, read_planetoid  # noqa: E402


def _edge_set(edge_index: torch.Tensor) -> set[tuple[int, int]]:
    return set(map(tuple, edge_index.t().tolist()))


def _two_clusters(n_per: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two Gaussian blobs (std 0.1) 100 apart in 6-D: points [2 n_per, 6], labels [2 n_per]."""
    g = torch.Generator().manual_seed(seed)
    a = 0.1 * torch.randn(n_per, 6, generator=g)
    b = 0.1 * torch.randn(n_per, 6, generator=g) + 100.0
    return torch.cat([a, b]), torch.arange(2).repeat_interleave(n_per)


@pytest.mark.parametrize("backend", ["sklearn", "torch"])
def test_knn_graph_on_two_clusters(backend: str) -> None:
    points, labels = _two_clusters()
    k = 5
    data = knn_image_graph(points, labels, k=k, pca_dim=None, backend=backend)
    ei = data.edge_index
    assert ei.dtype == torch.int64 and ei.shape[0] == 2 and data.num_nodes == 24
    assert (labels[ei[0]] == labels[ei[1]]).all()  # no edge crosses the gap
    assert (ei[0] != ei[1]).all()  # no self loops
    edges = _edge_set(ei)
    assert len(edges) == ei.shape[1]  # deduplicated
    assert edges == {(j, i) for i, j in edges}  # symmetric
    assert (torch.bincount(ei[0], minlength=24) >= k).all()


def test_knn_edges_match_brute_force_float64() -> None:
    """The directed k-nearest lists before symmetrisation equal an argsort of float64 distances."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 3, generator=g, dtype=torch.float64)
    k = 4
    dist = torch.cdist(x, x)
    dist.fill_diagonal_(float("inf"))
    nearest = dist.argsort(dim=1)[:, :k]
    expected = {(i, int(j)) for i in range(40) for j in nearest[i]}
    expected |= {(j, i) for i, j in expected}
    for backend in ("sklearn", "torch"):
        assert _edge_set(knn_edge_index(x.float(), k=k, backend=backend)) == expected


def test_faiss_and_sklearn_give_the_same_graph() -> None:
    pytest.importorskip("faiss")
    g = torch.Generator().manual_seed(2)
    x = torch.randn(300, 8, generator=g)
    a = knn_edge_index(x, k=7, backend="faiss")
    b = knn_edge_index(x, k=7, backend="sklearn")
    assert torch.equal(a, b)
    assert torch.equal(knn_edge_index(x, k=7, backend="auto"), a)


def test_duplicate_points_never_link_to_themselves() -> None:
    x = torch.zeros(6, 2)  # all tied: the query itself may come anywhere in the search result
    ei = knn_edge_index(x, k=2, backend="sklearn")
    assert (ei[0] != ei[1]).all()
    assert (torch.bincount(ei[0], minlength=6) >= 2).all()


def test_cosine_metric_ignores_row_norms() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(30, 5, generator=g)
    scale = torch.rand(30, 1, generator=g) * 10 + 0.1
    a = knn_edge_index(x, k=3, metric="cosine", backend="torch")
    assert torch.equal(a, knn_edge_index(x * scale, k=3, metric="cosine", backend="torch"))
    assert not torch.equal(a, knn_edge_index(x * scale, k=3, metric="euclidean", backend="torch"))


def test_pca_features_dims_dtype_and_labels() -> None:
    g = torch.Generator().manual_seed(4)
    images = torch.rand(60, 1, 8, 8, generator=g)
    labels = torch.randint(0, 3, (60,), generator=g)
    data = knn_image_graph(images, labels, k=3, pca_dim=5, seed=0, backend="sklearn")
    assert data.x.shape == (60, 5) and data.x.dtype == torch.float32
    assert torch.equal(data.y, labels) and data.y.dtype == torch.int64
    # PCA: centred columns with non-increasing variances, equal to the top eigenvalues of the pixel covariance.
    flat = images.reshape(60, -1).double()
    eig = torch.linalg.eigvalsh(torch.cov(flat.t())).flip(0)[:5]
    var = data.x.double().var(dim=0)
    assert data.x.double().mean(dim=0).abs().max() < 1e-5
    torch.testing.assert_close(var, eig, rtol=1e-4, atol=1e-6)
    again = knn_image_graph(images, labels, k=3, pca_dim=5, seed=0, backend="sklearn")
    assert torch.equal(again.x, data.x) and torch.equal(again.edge_index, data.edge_index)


def test_digits_graph_is_homophilous() -> None:
    from contrastkit.data import load

    try:
        ds = load("digits", "test")
    except FileNotFoundError:
        pytest.skip("digits not installed")
    data = knn_image_graph(ds.images, ds.labels, k=10, pca_dim=30, backend="sklearn")
    assert data.num_nodes == 450 and data.x.shape == (450, 30)
    homophily = (data.y[data.edge_index[0]] == data.y[data.edge_index[1]]).double().mean()
    assert homophily > 0.85  # digits kNN graphs are about 0.95 homophilous; random labels give 0.1


def test_bad_knn_input_errors() -> None:
    x, y = _two_clusters(4)
    with pytest.raises(ValueError, match="k must lie"):
        knn_image_graph(x, y, k=8, pca_dim=None)
    with pytest.raises(ValueError, match="pca_dim"):
        knn_image_graph(x, y, k=2, pca_dim=50)
    with pytest.raises(ValueError, match="backend"):
        knn_image_graph(x, y, k=2, pca_dim=None, backend="annoy")
    with pytest.raises(ValueError, match="labels"):
        knn_image_graph(x, y[:3], k=2, pca_dim=None)


# ---------------------------------------------------------------- Planetoid fixture

N_TRAIN, N_VAL, N_REST, N_TEST, N_FEAT, N_CLASS = 3, 500, 2, 4, 5, 3  # the reader takes the 500 rows after x as val
N_ALL = N_TRAIN + N_VAL + N_REST
N_NODES = N_ALL + N_TEST


def _write_planetoid(raw: Path, prefix: str = "toy") -> tuple[np.ndarray, np.ndarray, set[tuple[int, int]]]:
    """Write ind.{prefix}.* like the public Planetoid files; return node features, labels and edges by node id."""
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    feats = (rng.random((N_NODES, N_FEAT)) < 0.4).astype(np.float32)
    labels = rng.integers(0, N_CLASS, N_NODES)
    onehot = np.eye(N_CLASS, dtype=np.int32)[labels]
    test_index = np.array([N_ALL + 2, N_ALL, N_ALL + 3, N_ALL + 1])  # test rows are stored in file order
    sorted_test = np.sort(test_index)
    edges = {(i, (i + 1) % N_NODES) for i in range(N_NODES)} | {(0, N_ALL + 2), (4, 9)}
    edges |= {(j, i) for i, j in edges}
    graph: defaultdict[int, list[int]] = defaultdict(list)
    for i, j in sorted(edges):
        graph[i].append(j)
    graph[1].append(1)  # a self loop and a duplicate, as in the public files: the reader drops both
    graph[2].append(3)
    # The file row r of tx belongs to node test_index[r]; rows of tx are the sorted test nodes, reordered.
    tx_rows = [feats[t] for t in test_index]
    ty_rows = [onehot[t] for t in test_index]
    objects = {
        "x": sp.csr_matrix(feats[:N_TRAIN]),
        "allx": sp.csr_matrix(feats[:N_ALL]),
        "tx": sp.csr_matrix(np.stack(tx_rows)),
        "y": onehot[:N_TRAIN],
        "ally": onehot[:N_ALL],
        "ty": np.stack(ty_rows),
        "graph": graph,
    }
    raw.mkdir(parents=True)
    for part, obj in objects.items():
        with (raw / f"ind.{prefix}.{part}").open("wb") as f:
            pickle.dump(obj, f, protocol=2)
    (raw / f"ind.{prefix}.test.index").write_text("\n".join(str(t) for t in test_index) + "\n")
    assert sorted_test.tolist() == list(range(N_ALL, N_NODES))
    return feats, labels, edges


def test_read_planetoid_round_trip(tmp_path: Path) -> None:
    feats, labels, edges = _write_planetoid(tmp_path / "toy" / "raw")
    data = read_planetoid(tmp_path, "toy")
    assert data.num_nodes == N_NODES
    # test nodes come back in node order although tx / ty hold them in test.index order
    torch.testing.assert_close(data.x, torch.from_numpy(feats))
    assert torch.equal(data.y, torch.from_numpy(labels))
    assert _edge_set(data.edge_index) == edges
    assert int(data.train_mask.sum()) == N_TRAIN and int(data.val_mask.sum()) == N_VAL
    assert data.test_mask[N_ALL:].all() and int(data.test_mask.sum()) == N_TEST


def test_read_planetoid_missing_file_is_one_line(tmp_path: Path) -> None:
    raw = tmp_path / "toy" / "raw"
    _write_planetoid(raw)
    (raw / "ind.toy.ty").unlink()
    with pytest.raises(FileNotFoundError, match=r"ind\.toy\.ty.*never downloads") as err:
        read_planetoid(tmp_path, "toy")
    assert "\n" not in str(err.value)
    with pytest.raises(FileNotFoundError, match=r"ind\.cora\.x.*cora"):
        read_planetoid(tmp_path / "nothing", "Cora")


def test_read_planetoid_refuses_code_in_pickles(tmp_path: Path) -> None:
    raw = tmp_path / "toy" / "raw"
    _write_planetoid(raw)
    with (raw / "ind.toy.graph").open("wb") as f:
        pickle.dump(Path("."), f)  # any class outside numpy / scipy.sparse / dict types
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        read_planetoid(tmp_path, "toy")


# ---------------------------------------------------------------- degree features


def test_degree_features_one_hot() -> None:
    # star 0-1, 0-2, 0-3 plus 1-2, both directions; node 4 isolated: degrees 3, 2, 2, 1, 0
    pairs = torch.tensor([[0, 1], [0, 2], [0, 3], [1, 2]])
    ei = torch.cat([pairs, pairs.flip(1)]).t()
    out = degree_features(ei, 5)
    assert out.shape == (5, 4) and out.dtype == torch.float32
    assert torch.equal(out.sum(dim=1), torch.ones(5))
    assert out.argmax(dim=1).tolist() == [3, 2, 2, 1, 0]
    capped = degree_features(ei, 5, max_degree=1)
    assert capped.shape == (5, 2) and capped.argmax(dim=1).tolist() == [1, 1, 1, 1, 0]
    with pytest.raises(ValueError, match="num_nodes"):
        degree_features(ei, 3)


def test_image_knn_graph_concatenates_splits_and_offsets_labels() -> None:
    from contrastkit.data import load
    from contrastkit.data.graphs import image_knn_graph

    try:
        train, test = load("digits", "train"), load("digits", "test")
    except FileNotFoundError:
        pytest.skip("digits not installed")
    one = image_knn_graph(("digits",), k=5, pca_dim=20)
    assert one.num_nodes == 1797 and not hasattr(one, "dataset_of_node")
    assert torch.equal(one.y, torch.cat([train.labels, test.labels]))
    two = image_knn_graph(["digits", "digits"], k=5, pca_dim=20)
    assert two.num_nodes == 2 * 1797 and len(two.class_names) == 20
    assert torch.equal(two.y, torch.cat([one.y, one.y + 10]))
    assert torch.equal(two.dataset_of_node, torch.arange(2).repeat_interleave(1797))
    with pytest.raises(ValueError, match="unknown dataset"):
        image_knn_graph(["cora"])
