"""Named graphs (src/contrastkit/data/graph_datasets.py): contract of load_graph, statistics, CSBM, real graphs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("torch_geometric")

from torch_geometric.data import Data  # noqa: E402

from contrastkit.data import graph_datasets  # noqa: E402
from contrastkit.data.graph_datasets import (  # noqa: E402
    contextual_sbm,
    graph_statistics,
    largest_connected_component,
    load_graph,
)
from contrastkit.data.registry import DatasetNotInstalledError  # noqa: E402


def _check_contract(data: Data) -> None:
    """x float32 [N, F], y int64 in 0..K-1, edge_index int64 undirected without loops or duplicates."""
    n = int(data.num_nodes)
    assert data.x.dtype == torch.float32 and data.x.shape[0] == n
    assert data.y.dtype == torch.int64 and data.y.shape == (n,)
    assert torch.unique(data.y).tolist() == list(range(int(data.y.max()) + 1))
    e = data.edge_index
    assert e.dtype == torch.int64 and e.shape[0] == 2
    assert bool((e[0] != e[1]).all())
    pairs = {(int(i), int(j)) for i, j in e.t()}
    assert len(pairs) == e.shape[1] and pairs == {(j, i) for i, j in pairs}


def _load_or_skip(name: str, **kwargs: object) -> Data:
    try:
        return load_graph(name, **kwargs)  # type: ignore[arg-type]
    except DatasetNotInstalledError as err:
        pytest.skip(f"{name} not installed: {err}")


def test_unknown_names_and_features_are_one_line_errors() -> None:
    with pytest.raises(ValueError, match="polblogs"):
        load_graph("cora-full")
    with pytest.raises(ValueError, match="identity"):
        load_graph("karate", features="spectral")
    with pytest.raises(ValueError, match="path="):
        load_graph("planetoid")
    with pytest.raises(ValueError, match="num_nodes"):
        load_graph("karate", num_nodes=20)
    with pytest.raises(ValueError, match="path"):
        load_graph("csbm", path="somewhere")


def test_graph_statistics_closed_form() -> None:
    # triangle 0-1-2 plus edge 2-3; node 4 isolated; labels 0 0 1 1 0 -> same-label edges: 0-1, 2-3
    upper = torch.tensor([[0, 0, 1, 2], [1, 2, 2, 3]])
    data = Data(edge_index=torch.cat([upper, upper.flip(0)], 1), y=torch.tensor([0, 0, 1, 1, 0]), num_nodes=5)
    assert graph_statistics(data) == {
        "num_nodes": 5,
        "num_undirected_edges": 4,
        "average_degree": 8 / 5,
        "edge_homophily": 0.5,
        "num_classes": 2,
        "isolated_nodes": 1,
    }
    lcc = largest_connected_component(data)
    assert lcc.num_nodes == 4 and lcc.node_index.tolist() == [0, 1, 2, 3] and lcc.y.tolist() == [0, 0, 1, 1]


def test_csbm_is_seeded_and_hits_its_targets() -> None:
    a, b, c = contextual_sbm(seed=3), contextual_sbm(seed=3), contextual_sbm(seed=4)
    assert torch.equal(a.edge_index, b.edge_index) and torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.y, c.y)
    _check_contract(a)
    stats = graph_statistics(a)
    assert stats["num_nodes"] == 1000 and stats["num_classes"] == 4
    assert abs(stats["edge_homophily"] - 0.8) < 0.04  # E ~ 4,000 edges: sd of the fraction ~ 0.006
    assert abs(stats["average_degree"] - 8.0) < 0.5  # sd ~ 0.13
    assert torch.bincount(a.y).tolist() == [250] * 4
    assert torch.allclose(a.x.sum(1), torch.ones(1000)) and a.x.shape == (1000, 400)
    heterophilous = graph_statistics(contextual_sbm(homophily=0.2, num_nodes=800, seed=0))
    assert abs(heterophilous["edge_homophily"] - 0.2) < 0.04 and heterophilous["num_nodes"] == 800


def test_csbm_features_are_weak_and_the_graph_helps() -> None:
    """Class-mean classifier: on x alone well above chance but far from perfect; on neighbour means much better."""
    data = contextual_sbm(seed=0)
    adjacency = torch.zeros(1000, 1000)
    adjacency[data.edge_index[0], data.edge_index[1]] = 1
    smoothed = (adjacency + torch.eye(1000)) @ data.x / (adjacency.sum(1, keepdim=True) + 1)

    def class_mean_accuracy(x: torch.Tensor) -> float:
        means = torch.stack([x[data.y == c].mean(0) for c in range(4)])
        return float(((x @ means.T - 0.5 * (means**2).sum(1)).argmax(1) == data.y).float().mean())

    on_features, on_graph = class_mean_accuracy(data.x), class_mean_accuracy(smoothed)
    assert 0.4 < on_features < 0.85 and on_graph > on_features + 0.15


def test_featureless_defaults_and_overrides() -> None:
    data = load_graph("karate")
    _check_contract(data)
    degree = torch.bincount(data.edge_index[0], minlength=34)
    assert data.x.shape == (34, int(degree.max()) + 1) and data.x.argmax(1).tolist() == degree.tolist()
    assert torch.equal(load_graph("karate", features="identity").x, torch.eye(34))
    csbm = load_graph("csbm", features="degree", num_nodes=200)
    assert csbm.num_nodes == 200 and torch.equal(csbm.x.sum(1), torch.ones(200))


def test_planetoid_path_convention(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Path, str]] = []

    def fake(root: Path, name: str) -> Data:
        calls.append((Path(root), name))
        x = torch.rand(3, 5, dtype=torch.float64)
        return Data(x=x, edge_index=torch.tensor([[0, 1], [1, 0]]), y=torch.tensor([1, 0, 1]), num_nodes=3)

    monkeypatch.setattr(graph_datasets, "read_planetoid", fake)
    data = load_graph("planetoid", path=tmp_path / "cora")
    assert calls == [(tmp_path / "cora", "cora")]
    assert data.x.dtype == torch.float32 and data.x.shape == (3, 5)  # the file's own features are kept


def test_fashion_mnist_knn_graph_small() -> None:
    data = _load_or_skip("fashion-mnist-knn", num_nodes=500, seed=1)
    _check_contract(data)
    degree = torch.bincount(data.edge_index[0], minlength=500)
    assert int(degree.min()) >= 10
    assert torch.bincount(data.y).tolist() == [50] * 10
    assert data.x.shape == (500, 784) and torch.allclose(data.x.sum(1), torch.ones(500))
    from contrastkit.data.registry import load

    images = load("fashion-mnist", "train").images[data.source_index].reshape(500, -1)
    assert torch.equal(data.x > 0, images > 0.5)  # support = the bright pixels, uniform weight on it
    assert torch.equal(load_graph("fashion-mnist-knn", num_nodes=500, seed=1).edge_index, data.edge_index)
    assert graph_statistics(data)["edge_homophily"] > 0.6


@pytest.mark.parametrize(
    ("name", "nodes", "edges", "class_counts"),
    [
        ("polblogs", 1490, 16715, None),
        ("polbooks", 105, 441, None),
        ("adjnoun", 112, 425, None),
        ("football", 115, 613, None),
        ("drosophila-left", 209, None, [101, 58, 29, 21]),
        ("drosophila-right", 213, None, [100, 63, 29, 21]),
        ("karate", 34, 78, [17, 17]),
    ],
)
def test_real_graphs_have_their_published_sizes(
    name: str, nodes: int, edges: int | None, class_counts: list[int] | None
) -> None:
    classes = {"polblogs": 2, "polbooks": 3, "adjnoun": 2, "football": 12, "karate": 2}.get(name, 4)
    data = _load_or_skip(name)
    _check_contract(data)
    stats = graph_statistics(data)
    assert stats["num_nodes"] == nodes and stats["num_classes"] == classes
    if edges is not None:
        assert stats["num_undirected_edges"] == edges
    if class_counts is not None:
        assert torch.bincount(data.y).tolist() == class_counts
    if name == "polblogs":
        lcc = graph_statistics(largest_connected_component(data))
        assert lcc["num_nodes"] == 1222 and abs(lcc["edge_homophily"] - 0.91) < 0.01
    if name == "football":
        assert sorted(torch.bincount(data.y).tolist())[0] >= 5 and max(torch.bincount(data.y).tolist()) <= 13
