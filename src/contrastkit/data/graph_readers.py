"""Readers for small labelled real graphs installed offline (datasets.md section 3); nothing here downloads.

* ``read_graph_tool(path)``: graph-tool's binary ``.gt`` / ``.gt.gz`` format (Peixoto, graph-tool documentation,
  "The gt file format"), e.g. the ``graph_tool/collection`` files of Debian ``python3-graph-tool`` (polblogs,
  polbooks, adjnoun, football, ...). Our own reader: graph-tool itself is not needed.
* ``read_gml_football(path)``: the US college football 2000 graph (Girvan and Newman, PNAS 2002) from igraph's
  ``football.gml.gz`` (Debian ``r-cran-igraph``), labelled by conference.
* ``read_drosophila("left")``: the larval Drosophila mushroom-body connectome (Eichler et al., Nature 2017) from the
  CSV files shipped by the ``graspologic`` wheel, labelled by cell type.
* ``read_karate()``: Zachary's karate club (J. Anthropol. Res. 1977) from networkx, labelled by club.

Every reader returns a ``torch_geometric.data.Data`` whose ``edge_index`` [2, E] int64 is undirected (each edge in
both directions, sorted by row), without self loops or duplicate edges, and ``num_nodes``. Missing files raise
``DatasetNotInstalledError`` (a ``ValueError``) naming the install step (``make data``).
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from contrastkit.data.debian import deb_files, extracted_root
from contrastkit.data.graphs import _require_pyg
from contrastkit.data.registry import DatasetNotInstalledError

if TYPE_CHECKING:
    from torch_geometric.data import Data

__all__ = [
    "DROSOPHILA_CELL_TYPES",
    "DROSOPHILA_SIDES",
    "GT_COLLECTION_PACKAGE",
    "GT_VALUE_TYPES",
    "IGRAPH_PACKAGE",
    "graph_tool_collection_file",
    "read_drosophila",
    "read_gml_football",
    "read_graph_tool",
    "read_karate",
    "undirected_simple_edges",
]

GT_COLLECTION_PACKAGE = "python3-graph-tool"
IGRAPH_PACKAGE = "r-cran-igraph"
DROSOPHILA_SIDES = ("left", "right")
DROSOPHILA_CELL_TYPES = ("K", "P", "O", "I")  # Kenyon, projection (input), output, other; y = position here
_INSTALL = "run `make data` (scripts/install_data.sh)"
_GT_MAGIC = "\u26fe gt".encode()  # 6 bytes: e2 9b be 20 67 74

# Value type index -> (name, numpy scalar type of a scalar or of a vector's elements; None for strings / objects).
GT_VALUE_TYPES: tuple[tuple[str, str | None], ...] = (
    ("bool", "u1"),
    ("int16_t", "i2"),
    ("int32_t", "i4"),
    ("int64_t", "i8"),
    ("double", "f8"),
    ("long double", "f16"),
    ("string", None),
    ("vector<bool>", "u1"),
    ("vector<int16_t>", "i2"),
    ("vector<int32_t>", "i4"),
    ("vector<int64_t>", "i8"),
    ("vector<double>", "f8"),
    ("vector<long double>", "f16"),
    ("vector<string>", None),
    ("python::object", None),
)


def undirected_simple_edges(edges: Tensor | np.ndarray, num_nodes: int) -> Tensor:
    """Undirected simple graph of a directed edge list [2, E]: both directions, self loops and duplicates removed.

    Returns int64 [2, E'] sorted by (row, col), where E' = 2 * (number of distinct unordered pairs {i, j}, i != j).
    """
    e = torch.as_tensor(np.asarray(edges), dtype=torch.int64).reshape(2, -1)
    if e.numel() and not (0 <= int(e.min()) and int(e.max()) < num_nodes):
        raise ValueError(f"edge list holds node ids outside [0, {num_nodes}); the file is corrupt")
    e = e[:, e[0] != e[1]]
    both = torch.cat([e, e.flip(0)], dim=1)
    keys = torch.unique(both[0] * max(num_nodes, 1) + both[1])  # sorted, distinct
    return torch.stack([keys // max(num_nodes, 1), keys % max(num_nodes, 1)])


def _graph_data(edges: Tensor | np.ndarray, num_nodes: int, **attributes: Any) -> Data:
    _require_pyg()
    from torch_geometric.data import Data

    return Data(edge_index=undirected_simple_edges(edges, num_nodes), num_nodes=num_nodes, **attributes)


# ---------------------------------------------------------------- graph-tool's gt format


class _GtStream:
    """Cursor over the bytes of a gt file with the file's byte order."""

    def __init__(self, raw: bytes, path: Path) -> None:
        self.raw, self.pos, self.path, self.order = raw, 0, path, "<"

    def take(self, size: int) -> bytes:
        if size < 0 or self.pos + size > len(self.raw):
            raise ValueError(f"{self.path} ends early (gt record at byte {self.pos} needs {size} bytes): corrupt file")
        out = self.raw[self.pos : self.pos + size]
        self.pos += size
        return out

    def array(self, code: str, count: int) -> np.ndarray:
        dtype = np.dtype(self.order + code) if code != "f16" else np.dtype(np.longdouble)
        if code == "f16" and dtype.itemsize != 16:
            raise ValueError(f"{self.path}: 'long double' values need a 16-byte numpy longdouble on this machine")
        return np.frombuffer(self.take(dtype.itemsize * count), dtype=dtype).astype(dtype.newbyteorder("="))

    def uint64(self) -> int:
        return int(self.array("u8", 1)[0])

    def uint8(self) -> int:
        return self.take(1)[0]

    def string(self) -> bytes:
        return self.take(self.uint64())


def _gt_value(stream: _GtStream, type_index: int) -> Any:
    """One value of type ``type_index``: numpy scalar / array, str, list of str, or raw bytes (python::object)."""
    name, code = GT_VALUE_TYPES[type_index]
    if name == "string":
        return stream.string().decode("utf-8", errors="replace")
    if name == "vector<string>":
        return [stream.string().decode("utf-8", errors="replace") for _ in range(stream.uint64())]
    if name == "python::object":
        return stream.string()  # a pickle: kept as bytes, never unpickled (a pickle can run code)
    assert code is not None
    if name.startswith("vector"):
        return stream.array(code, stream.uint64())
    return stream.array(code, 1)[0]


def _gt_values(stream: _GtStream, type_index: int, count: int) -> Any:
    """``count`` values: a numpy array [count] for scalar types, else a list."""
    if type_index >= len(GT_VALUE_TYPES):
        known = len(GT_VALUE_TYPES) - 1
        raise ValueError(f"{stream.path}: unknown gt value type index {type_index} (known: 0..{known})")
    code = GT_VALUE_TYPES[type_index][1]
    if type_index <= 5 and code is not None:
        out = stream.array(code, count)
        return out.astype(bool) if type_index == 0 else out
    return [_gt_value(stream, type_index) for _ in range(count)]


def read_graph_tool(path: str | Path) -> Data:
    """Read a graph-tool binary file (``.gt``, or gzip-compressed ``.gt.gz``) into an undirected simple graph.

    Layout (graph-tool documentation, "The gt file format"): magic ``"⛾ gt"`` (6 bytes), version byte (1), byte
    order byte (0 little, 1 big endian); comment string; directed flag byte; N (uint64); per node its out-neighbour
    list (uint64 length, then indexes of d bytes, d the smallest of 1, 2, 4, 8 with N <= 2^(8d) - 1); then the
    property maps (uint64 count; each: key type byte 0 graph / 1 vertex / 2 edge, name string, value type byte,
    values). Strings and vectors carry a uint64 length prefix. Value types: ``GT_VALUE_TYPES``.

    Returns ``Data(edge_index [2, E] int64, num_nodes = N)`` with, as plain attributes,

    * ``vertex_properties``: dict name -> numpy array [N] (scalar types; bool as bool, long double as longdouble)
      or list of N values (str, numpy array for vectors, list of str, raw pickle bytes for python::object);
    * ``edge_properties``: dict name -> values aligned with ``file_edge_index``;
    * ``graph_properties``: dict name -> one value;
    * ``file_edge_index`` [2, E_file] int64: the edges as stored (one direction, duplicates and loops kept);
    * ``directed_in_file`` (bool) and ``comment`` (str).

    ``edge_index`` holds each distinct pair {i, j}, i != j, of the file's edges in both directions (a directed file
    is symmetrised: an arc either way gives the undirected edge).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetNotInstalledError(f"missing graph-tool file {path}; {_INSTALL} or pass an existing .gt file")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    s = _GtStream(raw, path)
    if s.take(6) != _GT_MAGIC:
        raise ValueError(f"{path} is not a graph-tool .gt file (bad magic number); pass a .gt or .gt.gz file")
    version, big_endian = s.uint8(), s.uint8()
    if version != 1:
        raise ValueError(f"{path}: gt format version {version} is not supported (this reader knows version 1)")
    s.order = ">" if big_endian else "<"
    comment = s.string().decode("utf-8", errors="replace")
    directed = bool(s.uint8())
    n = s.uint64()
    code = next(c for c, bits in (("u1", 8), ("u2", 16), ("u4", 32), ("u8", 64)) if n <= 2**bits - 1)
    neighbours = [s.array(code, s.uint64()).astype(np.int64) for _ in range(n)]
    counts = np.array([len(row) for row in neighbours], dtype=np.int64)
    targets = np.concatenate(neighbours) if neighbours else np.zeros(0, np.int64)
    file_edges = np.stack([np.repeat(np.arange(n, dtype=np.int64), counts), targets])
    properties: list[dict[str, Any]] = [{}, {}, {}]  # graph, vertex, edge
    for _ in range(s.uint64()):
        key = s.uint8()
        name = s.string().decode("utf-8", errors="replace")
        type_index = s.uint8()
        if key > 2:
            raise ValueError(f"{path}: property {name!r} has key type {key} (expected 0 graph, 1 vertex, 2 edge)")
        count = (1, n, file_edges.shape[1])[key]
        values = _gt_values(s, type_index, count)
        properties[key][name] = values[0] if key == 0 else values
    return _graph_data(
        file_edges,
        n,
        vertex_properties=properties[1],
        edge_properties=properties[2],
        graph_properties=properties[0],
        file_edge_index=torch.from_numpy(file_edges),
        directed_in_file=directed,
        comment=comment,
    )


def graph_tool_collection_file(name: str) -> Path:
    """``<name>.gt.gz`` of Debian ``python3-graph-tool``'s collection (installed, or extracted by ``make data``)."""
    wanted = f"{name}.gt.gz"
    hits = [p for p in deb_files(GT_COLLECTION_PACKAGE) if p.name == wanted and p.parent.name == "collection"]
    if not hits:
        raise DatasetNotInstalledError(
            f"{wanted} of {GT_COLLECTION_PACKAGE} not found (looked in dpkg -L and "
            f"{extracted_root(GT_COLLECTION_PACKAGE)}); {_INSTALL}"
        )
    return hits[0]


# ---------------------------------------------------------------- igraph's football.gml.gz


def _dense_labels(values: list[Any] | np.ndarray) -> tuple[Tensor, list[Any]]:
    """Class ids 0..K-1 in the sorted order of the distinct values, and those values (``classes[y]``)."""
    classes, inverse = np.unique(np.asarray(values), return_inverse=True)
    return torch.from_numpy(inverse.reshape(-1).astype(np.int64)), classes.tolist()


def read_gml_football(path: str | Path | None = None) -> Data:
    """US college football 2000 (Girvan and Newman, PNAS 2002) from igraph's ``football.gml.gz`` (or plain .gml).

    ``path=None`` finds ``football.gml.gz`` in Debian ``r-cran-igraph``. Nodes are ordered by their GML ``id``;
    the file lists one game twice, so the duplicate collapses (613 undirected edges remain). Returns
    ``Data(edge_index, num_nodes, y [N] int64, classes, names)``: y = conference ``value`` remapped to 0..K-1 in
    sorted order (``classes[y]`` is the file's value), ``names`` the team labels.
    """
    import networkx as nx

    if path is None:
        hits = [p for p in deb_files(IGRAPH_PACKAGE) if p.name == "football.gml.gz"]
        if not hits:
            raise DatasetNotInstalledError(f"football.gml.gz of {IGRAPH_PACKAGE} not found; {_INSTALL}")
        path = hits[0]
    path = Path(path)
    if not path.is_file():
        raise DatasetNotInstalledError(f"missing GML file {path}; {_INSTALL} or pass an existing .gml(.gz) file")
    raw = path.read_bytes()
    text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8", errors="replace")
    # networkx refuses repeated edges unless the graph says multigraph: declare it, then collapse below.
    head, found, tail = text.partition("graph\n[")
    if found:
        text = head + "graph\n[\n  multigraph 1" + tail
    graph = nx.parse_gml(text, label="id")
    ids = sorted(graph.nodes)
    position = {node: i for i, node in enumerate(ids)}
    if "value" not in graph.nodes[ids[0]]:
        raise ValueError(f"{path}: nodes carry no 'value' (conference) attribute; is this igraph's football.gml?")
    y, classes = _dense_labels([graph.nodes[node]["value"] for node in ids])
    edges = np.array([[position[u], position[v]] for u, v in graph.edges()], dtype=np.int64).reshape(-1, 2).T
    names = [str(graph.nodes[node].get("label", node)) for node in ids]
    return _graph_data(edges, len(ids), y=y, classes=classes, names=names)


# ---------------------------------------------------------------- graspologic's Drosophila connectome


def _drosophila_folder() -> Path:
    spec = importlib.util.find_spec("graspologic")  # locates the package without importing it (numpy<2 pins)
    if spec is None or not spec.submodule_search_locations:
        raise DatasetNotInstalledError(
            f"graspologic is not installed (its Drosophila CSV files are read); {_INSTALL}, which runs "
            "`pip install --no-deps graspologic==3.4.4`"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "drosophila"


def read_drosophila(side: str = "left") -> Data:
    """Larval Drosophila mushroom-body connectome (Eichler et al., Nature 2017), one hemisphere, from graspologic.

    Reads ``{side}_adjacency.csv`` (whitespace-separated weighted directed adjacency [N, N], synapse counts) and
    ``{side}_cell_labels.csv`` (one of K / P / O / I per node). Edge {i, j} exists when A[i, j] != 0 or
    A[j, i] != 0 (weights and directions dropped; the diagonal ignored). y = position of the cell type in
    ``DROSOPHILA_CELL_TYPES`` = (K, P, O, I). Returns ``Data(edge_index, num_nodes, y, classes)``.
    """
    if side not in DROSOPHILA_SIDES:
        raise ValueError(f"unknown Drosophila side {side!r}; choose one of {list(DROSOPHILA_SIDES)}")
    folder = _drosophila_folder()
    adjacency_file, labels_file = folder / f"{side}_adjacency.csv", folder / f"{side}_cell_labels.csv"
    for file in (adjacency_file, labels_file):
        if not file.is_file():
            raise DatasetNotInstalledError(f"missing {file} (graspologic 3.4.4 ships it); {_INSTALL}")
    adjacency = np.loadtxt(adjacency_file)
    labels = np.atleast_1d(np.loadtxt(labels_file, dtype=str))
    n = labels.shape[0]
    if adjacency.shape != (n, n):
        raise ValueError(f"{adjacency_file} is {adjacency.shape}, expected ({n}, {n}) to match {labels_file}")
    unknown = sorted(set(labels.tolist()) - set(DROSOPHILA_CELL_TYPES))
    if unknown:
        raise ValueError(f"{labels_file} holds cell types {unknown}; expected only {list(DROSOPHILA_CELL_TYPES)}")
    y = torch.tensor([DROSOPHILA_CELL_TYPES.index(label) for label in labels], dtype=torch.int64)
    rows, cols = np.nonzero(adjacency)
    return _graph_data(np.stack([rows, cols]), n, y=y, classes=list(DROSOPHILA_CELL_TYPES))


# ---------------------------------------------------------------- networkx's karate club


def read_karate() -> Data:
    """Zachary's karate club (J. Anthropol. Res. 1977), networkx's ``karate_club_graph``: 34 nodes, 78 edges.

    y = 0 for the members of Mr. Hi's club, 1 for the Officer's (networkx's ``club`` attribute); ``classes`` =
    ["Mr. Hi", "Officer"].
    """
    import networkx as nx

    graph = nx.karate_club_graph()
    nodes = sorted(graph.nodes)
    y = torch.tensor([int(graph.nodes[i]["club"] == "Officer") for i in nodes], dtype=torch.int64)
    edges = np.array(list(graph.edges()), dtype=np.int64).T
    return _graph_data(edges, len(nodes), y=y, classes=["Mr. Hi", "Officer"])
