"""Graph data: kNN graphs over image sets, an offline Planetoid reader and degree one-hot node features.

* ``knn_image_graph(images, labels)``: PCA features of the flattened images plus the symmetrised k-nearest-neighbour
  graph on them (the "kNN graph over an image set" recipe of datasets.md section 3, used by the ARIEL reproduction
  as a graph benchmark that scales beyond Cora).
* ``image_knn_graph(("fashion-mnist", "mnist"))``: the same over every split of named offline datasets.
* ``read_planetoid(root, "cora")``: Cora / CiteSeer / PubMed from raw Planetoid files the user already has
  (Yang, Cohen, Salakhutdinov, "Revisiting Semi-Supervised Learning with Graph Embeddings", ICML 2016). Nothing here
  downloads.
* ``binary_pixel_features(images)``: binarised pixels (x > 0.5), row-normalised, a Cora-like bag of "words"
  (datasets.md section 3, the node features of ARIEL's kNN-graph benchmark); ``knn_image_graph(...,
  node_features="binary-pixels")`` uses them as ``x`` while the edges stay on PCA.
* ``degree_features(edge_index, num_nodes)``: one-hot degree features for graphs without node features
  (the GIN / GraphCL convention for featureless graphs).

torch_geometric (the ``graph`` extra) is imported inside the functions, so ``contrastkit.data`` imports without it.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from contrastkit._optional import faiss_available

if TYPE_CHECKING:
    from torch_geometric.data import Data

__all__ = [
    "KNN_BACKENDS",
    "KNN_METRICS",
    "KNN_NODE_FEATURES",
    "PLANETOID_FILES",
    "binary_pixel_features",
    "degree_features",
    "image_knn_graph",
    "knn_edge_index",
    "knn_image_graph",
    "read_planetoid",
]

KNN_BACKENDS = ("auto", "faiss", "sklearn", "torch")
KNN_METRICS = ("euclidean", "cosine")
KNN_NODE_FEATURES = ("pca", "binary-pixels")
PLANETOID_FILES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
_SEARCH_BATCH = 4096  # query rows per search call: memory O(batch * N) for torch, O(N k) for the result


def _require_pyg() -> None:
    try:
        import torch_geometric  # noqa: F401
    except ImportError as err:
        raise ImportError("graph data need torch_geometric: `pip install contrastkit[graph]`") from err


# ---------------------------------------------------------------- kNN graphs


def _search(features: np.ndarray, n_neighbors: int, backend: str) -> np.ndarray:
    """Indices [N, n_neighbors] of the nearest rows (Euclidean, self included), searched in row batches."""
    n = features.shape[0]
    out = np.empty((n, n_neighbors), dtype=np.int64)
    if backend == "faiss":
        import faiss

        index = faiss.IndexFlatL2(features.shape[1])
        index.add(features)
        for start in range(0, n, _SEARCH_BATCH):
            out[start : start + _SEARCH_BATCH] = index.search(features[start : start + _SEARCH_BATCH], n_neighbors)[1]
    elif backend == "sklearn":
        from sklearn.neighbors import NearestNeighbors

        nn = NearestNeighbors(n_neighbors=n_neighbors, algorithm="brute").fit(features)
        for start in range(0, n, _SEARCH_BATCH):
            out[start : start + _SEARCH_BATCH] = nn.kneighbors(
                features[start : start + _SEARCH_BATCH], return_distance=False
            )
    else:  # torch: exact float64 distances, ties broken by the lower index (stable sort)
        x = torch.from_numpy(features).double()
        for start in range(0, n, _SEARCH_BATCH):
            dist = torch.cdist(x[start : start + _SEARCH_BATCH], x)
            order = torch.sort(dist, dim=1, stable=True).indices[:, :n_neighbors]
            out[start : start + _SEARCH_BATCH] = order.numpy()
    return out


def knn_edge_index(features: Tensor, *, k: int = 10, metric: str = "euclidean", backend: str = "auto") -> Tensor:
    """Symmetrised kNN graph of the rows of ``features`` [N, D]: ``edge_index`` [2, E] int64.

    Each node i links to its k nearest other rows j (distance ``||f_i - f_j||_2``; ``metric="cosine"`` uses the
    rows scaled to unit norm, whose Euclidean order equals the cosine order). The union ``{(i, j), (j, i)}`` of
    these directed edges is kept once each (``torch_geometric.utils.to_undirected``, sorted by row); no self loops,
    so every degree is >= k. Memory O(N k): the search runs in batches of query rows.

    backend: "faiss" (``IndexFlatL2``, float32), "sklearn" (``NearestNeighbors``, brute force), "torch" (float64
    ``cdist``, O(batch N) memory) or "auto" (faiss when importable, else sklearn). Backends agree up to ties.
    """
    _require_pyg()
    from torch_geometric.utils import to_undirected

    if backend not in KNN_BACKENDS:
        raise ValueError(f"unknown kNN backend {backend!r}; choose one of {list(KNN_BACKENDS)}")
    if metric not in KNN_METRICS:
        raise ValueError(f"unknown kNN metric {metric!r}; choose one of {list(KNN_METRICS)}")
    if features.dim() != 2 or not torch.isfinite(features).all():
        raise ValueError(f"features must be a finite [N, D] tensor, got shape {tuple(features.shape)}")
    n = features.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k must lie in [1, N - 1] = [1, {n - 1}], got {k}; lower k or pass more points")
    feats = features.detach().cpu().double()
    if metric == "cosine":
        feats = torch.nn.functional.normalize(feats, dim=1)
    if backend == "auto":
        backend = "faiss" if faiss_available() else "sklearn"
    dtype = np.float64 if backend == "torch" else np.float32
    found = _search(np.ascontiguousarray(feats.numpy(), dtype=dtype), k + 1, backend)
    # Drop the query itself (duplicates may push it out of first place, or out of the list: then drop the last).
    not_self = found != np.arange(n)[:, None]
    keep = not_self & (np.cumsum(not_self, axis=1) <= k)
    rows = np.repeat(np.arange(n), k)
    cols = found[keep]
    edge_index = torch.from_numpy(np.stack([rows, cols]).astype(np.int64))
    return to_undirected(edge_index, num_nodes=n)


def knn_image_graph(
    images: Tensor,
    labels: Tensor,
    *,
    k: int = 10,
    pca_dim: int | None = 50,
    seed: int = 0,
    backend: str = "auto",
    metric: str = "euclidean",
    node_features: str = "pca",
) -> Data:
    """kNN graph over an image set: ``Data(x [N, pca_dim] float32, edge_index [2, E] int64, y [N], num_nodes)``.

    x = PCA(flatten(images)) with ``sklearn.decomposition.PCA(pca_dim, random_state=seed)``: pixels are centred by
    PCA but not standardised (every pixel shares the [0, 1] scale) and not whitened. ``pca_dim=None`` keeps the
    flattened pixels. Edges: ``knn_edge_index(x, k=k, metric=metric)``, Euclidean on x by default (datasets.md's
    recipe uses cosine: pass ``metric="cosine"``). ``node_features="binary-pixels"`` then replaces x by
    ``binary_pixel_features(images)`` [N, C*H*W] (the edges still come from the PCA features).

    images: [N, C, H, W] or [N, D]; labels: [N] integer class ids (kept as int64 in ``y``).
    """
    _require_pyg()
    from sklearn.decomposition import PCA
    from torch_geometric.data import Data

    if images.dim() not in (2, 4):
        raise ValueError(f"images must be [N, C, H, W] or [N, D], got shape {tuple(images.shape)}")
    if node_features not in KNN_NODE_FEATURES:
        raise ValueError(f"unknown node_features {node_features!r}; choose one of {list(KNN_NODE_FEATURES)}")
    n = images.shape[0]
    if labels.shape != (n,) or labels.is_floating_point():
        raise ValueError(f"labels must be an integer [N] = [{n}] tensor, got {labels.dtype} {tuple(labels.shape)}")
    flat = images.detach().cpu().reshape(n, -1).to(torch.float32)
    if not torch.isfinite(flat).all():
        raise ValueError("images contain NaN or inf; clean them before building a graph")
    if pca_dim is None:
        x = flat
    else:
        if not 1 <= pca_dim <= min(flat.shape):
            raise ValueError(f"pca_dim must lie in [1, min(N, D)] = [1, {min(flat.shape)}], got {pca_dim}")
        pca = PCA(n_components=pca_dim, random_state=seed)
        x = torch.from_numpy(pca.fit_transform(flat.numpy()).astype(np.float32))
    edge_index = knn_edge_index(x, k=k, metric=metric, backend=backend)
    if node_features == "binary-pixels":
        x = binary_pixel_features(flat)
    return Data(x=x, edge_index=edge_index, y=labels.detach().cpu().long(), num_nodes=n)


def image_knn_graph(
    names: Sequence[str] = ("fashion-mnist",), *, k: int = 10, pca_dim: int | None = 50, seed: int = 0
) -> Data:
    """``knn_image_graph`` over every split of the named offline datasets (``contrastkit.data.load``), concatenated.

    Splits, in this order: train, val (where the dataset has one), test; "all" is skipped (it repeats them). So
    fashion-mnist and mnist give 70,000 nodes each. Labels are offset by the class counts of the datasets before
    them, so classes stay distinct: ("fashion-mnist", "mnist") -> fashion 0-9, mnist 10-19. With more than one
    dataset, ``dataset_of_node`` [N] int64 is the position of each node's dataset in ``names``. Every graph
    also carries ``dataset_names`` (list of str) and ``class_names`` (list of str, indexed by ``y``).
    """
    from contrastkit.data.registry import available, load

    if isinstance(names, str) or not names:
        raise ValueError(f"names must be a non-empty sequence of dataset names, got {names!r}; e.g. ['mnist']")
    splits_of = {info.name: info.splits for info in available()}
    images, labels, origin, class_names = [], [], [], []
    for position, name in enumerate(names):
        splits = splits_of.get(str(name).strip().lower().replace("_", "-"), {"train": 0})  # unknown: load() says
        for split in [s for s in ("train", "val", "test") if s in splits]:
            ds = load(name, split)
            if ds.labels is None:
                raise ValueError(f"{name}/{split} has no labels; image_knn_graph needs labelled datasets")
            images.append(ds.images.reshape(ds.images.shape[0], -1))
            labels.append(ds.labels + len(class_names))
            origin.append(torch.full((ds.images.shape[0],), position, dtype=torch.int64))
        class_names += [f"{name}/{c}" for c in ds.classes]
    data = knn_image_graph(torch.cat(images), torch.cat(labels), k=k, pca_dim=pca_dim, seed=seed)
    if len(names) > 1:
        data.dataset_of_node = torch.cat(origin)
    data.dataset_names = list(names)
    data.class_names = class_names
    return data


# ---------------------------------------------------------------- Planetoid


class _PlanetoidUnpickler(pickle.Unpickler):
    """Rebuilds only what Planetoid pickles hold (scipy sparse, numpy arrays, dict / defaultdict of lists)."""

    _builtins = {"object", "list", "dict", "set", "tuple", "int", "float", "str", "bytes", "bytearray"}
    _numpy = {"ndarray", "dtype", "_reconstruct", "scalar", "_frombuffer"}

    def find_class(self, module: str, name: str) -> object:
        ok = (
            (module in ("__builtin__", "builtins") and name in self._builtins)
            or (module in ("copy_reg", "copyreg") and name == "_reconstructor")
            or (module == "collections" and name in ("defaultdict", "OrderedDict"))
            or (module == "_codecs" and name == "encode")
            or (module.split(".")[0] == "numpy" and name in self._numpy)
            or (module.startswith("scipy.sparse") and name.endswith(("_matrix", "_array")))
        )
        if not ok:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a Planetoid pickle")
        return super().find_class(module, name)


def _planetoid_dir(root: Path, name: str) -> Path:
    """The folder holding ind.{name}.*: ROOT/Name/raw, ROOT/name/raw, ROOT/raw or ROOT (first with any file)."""
    prefix = name.lower()
    for folder in (root / name / "raw", root / prefix / "raw", root / "raw", root):
        if any(folder.glob(f"ind.{prefix}.*")):
            return folder
    return root / prefix / "raw"


def read_planetoid(root: str | Path, name: str) -> Data:
    """Cora / CiteSeer / PubMed from raw Planetoid files, via ``torch_geometric.io.read_planetoid_data``.

    Expects the eight files ``ind.{name}.{x,tx,allx,y,ty,ally,graph,test.index}`` (``name`` lower-cased) in
    ``ROOT/{name}/raw`` (the layout of ``torch_geometric.datasets.Planetoid``; ``ROOT/raw`` and ``ROOT`` also work).
    Returns ``Data(x [N, F] float32, edge_index [2, E] int64, y [N] int64, train_mask / val_mask / test_mask [N]
    bool)`` with the public Planetoid split (train = the rows of ``x``, val = the next 500, test = ``test.index``;
    so N >= len(x) + 500). Edges are those of ``graph`` (the public files list each edge in both directions),
    without self loops or duplicates. The pickles are first checked with a restricted unpickler (only
    numpy / scipy.sparse / dict types), since a pickle can run code. Never downloads.
    """
    _require_pyg()
    from torch_geometric.io import read_planetoid_data

    root, prefix = Path(root), name.strip().lower()
    if not prefix:
        raise ValueError("name must be a Planetoid dataset name such as 'cora', 'citeseer' or 'pubmed'")
    folder = _planetoid_dir(root, prefix)
    for part in PLANETOID_FILES:
        path = folder / f"ind.{prefix}.{part}"
        if not path.is_file():
            raise FileNotFoundError(
                f"missing {path}: put {name}'s raw Planetoid files ind.{prefix}.* in {root / prefix / 'raw'}; "
                "contrastkit never downloads"
            )
        if part != "test.index":
            with path.open("rb") as f:
                _PlanetoidUnpickler(f, encoding="latin1").load()
    return read_planetoid_data(str(folder), prefix)


# ---------------------------------------------------------------- node features


def binary_pixel_features(images: Tensor, threshold: float = 0.5) -> Tensor:
    """Bag of bright pixels: ``b = [x > threshold]``, ``out[i] = b_i / max(sum_d b_id, 1)``; float32 [N, D].

    images: [N, ...] (flattened to D values per row, e.g. [N, 1, 28, 28] -> D = 784) in [0, 1]. Each row sums to 1
    (a uniform distribution over its bright pixels), except a row with no pixel above ``threshold``, which stays 0.
    """
    if images.dim() < 2 or images.shape[0] == 0:
        raise ValueError(f"images must be a non-empty [N, ...] tensor, got shape {tuple(images.shape)}")
    bright = (images.detach().cpu().reshape(images.shape[0], -1) > threshold).to(torch.float32)
    return bright / bright.sum(dim=1, keepdim=True).clamp(min=1.0)


# ---------------------------------------------------------------- featureless graphs


def degree_features(edge_index: Tensor, num_nodes: int, max_degree: int | None = None) -> Tensor:
    """One-hot node degree: ``out[i, min(deg(i), max_degree)] = 1``, float32 [num_nodes, max_degree + 1].

    deg(i) counts the entries of ``edge_index[0]`` equal to i (out-degree; for an undirected graph stored in both
    directions, the degree). Degrees above ``max_degree`` share the last column; ``max_degree=None`` uses the
    largest degree of this graph (so two graphs only share columns when given the same ``max_degree``).
    """
    if edge_index.dim() != 2 or edge_index.shape[0] != 2 or edge_index.is_floating_point():
        raise ValueError(
            f"edge_index must be an integer [2, E] tensor, got {edge_index.dtype} {tuple(edge_index.shape)}"
        )
    if edge_index.numel() and not (0 <= int(edge_index.min()) and int(edge_index.max()) < num_nodes):
        raise ValueError(f"edge_index holds node ids outside [0, {num_nodes}); pass the right num_nodes")
    degree = torch.bincount(edge_index[0].long(), minlength=num_nodes)
    if max_degree is None:
        max_degree = int(degree.max()) if num_nodes else 0
    if max_degree < 0:
        raise ValueError(f"max_degree must be >= 0, got {max_degree}")
    return torch.nn.functional.one_hot(degree.clamp(max=max_degree), max_degree + 1).to(torch.float32)
