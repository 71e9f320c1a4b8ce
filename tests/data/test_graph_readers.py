"""Graph readers (src/contrastkit/data/graph_readers.py) on tiny fixtures written here, and on the installed files."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("torch_geometric")

from contrastkit.data import graph_readers  # noqa: E402
from contrastkit.data.debian import dpkg_listed_files  # noqa: E402
from contrastkit.data.graph_readers import (  # noqa: E402
    graph_tool_collection_file,
    read_drosophila,
    read_gml_football,
    read_graph_tool,
    read_karate,
    undirected_simple_edges,
)
from contrastkit.data.registry import DatasetNotInstalledError  # noqa: E402


def _edge_set(edge_index: torch.Tensor) -> set[tuple[int, int]]:
    return {(int(i), int(j)) for i, j in edge_index.t()}


# ---------------------------------------------------------------- a tiny gt writer (the format's description)


def _gt_bytes(
    neighbours: list[list[int]],
    props: list[tuple[int, str, int, list[Any]]],
    *,
    directed: bool = False,
    big_endian: bool = False,
    width: str | None = None,
) -> bytes:
    """A gt file: props are (key 0/1/2, name, value type index, values); width: struct code of the node ids."""
    e = ">" if big_endian else "<"
    n = len(neighbours)
    width = width or next(c for c, bits in (("B", 8), ("H", 16), ("I", 32), ("Q", 64)) if n <= 2**bits - 1)
    scalar = {0: "u1", 1: "i2", 2: "i4", 3: "i8", 4: "f8"}
    vector = {7: "u1", 8: "i2", 9: "i4", 10: "i8", 11: "f8"}

    def u64(v: int) -> bytes:
        return np.array([v], dtype=e + "u8").tobytes()

    def string(b: bytes) -> bytes:
        return u64(len(b)) + b

    out = bytearray("\u26fe gt".encode() + bytes([1, int(big_endian)]) + string(b"tiny fixture"))
    out += bytes([int(directed)]) + u64(n)
    for row in neighbours:
        out += u64(len(row)) + np.array(row, dtype=e + width).tobytes()
    out += u64(len(props))
    for key, name, type_index, values in props:
        out += bytes([key]) + string(name.encode()) + bytes([type_index])
        for v in values:
            if type_index in scalar:
                out += np.array([v], dtype=e + scalar[type_index]).tobytes()
            elif type_index in vector:
                out += u64(len(v)) + np.array(v, dtype=e + vector[type_index]).tobytes()
            elif type_index == 6:
                out += string(v.encode())
            elif type_index == 13:
                out += u64(len(v)) + b"".join(string(s.encode()) for s in v)
            elif type_index == 14:
                out += string(pickle.dumps(v))
            else:
                raise AssertionError(type_index)
    return bytes(out)


# 0-1 twice (a parallel edge), 1-2, 2-2 (a loop), 3-0; node 4 isolated
_NEIGHBOURS = [[1, 1], [2], [2], [0], []]
_PROPS: list[tuple[int, str, int, list[Any]]] = [
    (0, "readme", 6, ["hello"]),
    (1, "value", 2, [3, -1, 3, 7, 0]),
    (1, "weight", 4, [0.5, 1.5, -2.0, 0.0, 1e9]),
    (1, "flag", 0, [1, 0, 1, 1, 0]),
    (1, "short", 1, [-3, 2, 1, 0, 300]),
    (1, "label", 6, ["a", "bé", "", "d", "e"]),
    (1, "pos", 11, [[0.0, 1.0], [2.0], [], [3.0, 4.0, 5.0], [6.0]]),
    (1, "tags", 13, [["x"], [], ["y", "zz"], [""], ["w"]]),
    (1, "ids", 10, [[1], [2, 3], [], [4], [5]]),
    (1, "obj", 14, [{"k": 1}, None, 2, "s", [1]]),
    (2, "w", 1, [10, 11, 12, 13, 14]),
]
_EXPECTED = {(0, 1), (1, 0), (1, 2), (2, 1), (0, 3), (3, 0)}


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("big_endian", [False, True])
def test_gt_reader_edges_and_properties(tmp_path: Path, compress: bool, big_endian: bool) -> None:
    raw = _gt_bytes(_NEIGHBOURS, _PROPS, big_endian=big_endian)
    path = tmp_path / ("g.gt.gz" if compress else "g.gt")
    path.write_bytes(gzip.compress(raw) if compress else raw)
    data = read_graph_tool(path)
    assert data.num_nodes == 5 and not data.directed_in_file and data.comment == "tiny fixture"
    assert data.edge_index.dtype == torch.int64
    assert _edge_set(data.edge_index) == _EXPECTED and data.edge_index.shape[1] == len(_EXPECTED)
    assert data.edge_index[0].tolist() == sorted(data.edge_index[0].tolist())
    assert data.file_edge_index.tolist() == [[0, 0, 1, 2, 3], [1, 1, 2, 2, 0]]
    vp = data.vertex_properties
    assert vp["value"].tolist() == [3, -1, 3, 7, 0] and vp["value"].dtype == np.int32
    assert vp["weight"].tolist() == [0.5, 1.5, -2.0, 0.0, 1e9]
    assert vp["flag"].tolist() == [True, False, True, True, False]
    assert vp["short"].tolist() == [-3, 2, 1, 0, 300]
    assert vp["label"] == ["a", "bé", "", "d", "e"]
    assert [v.tolist() for v in vp["pos"]] == [[0.0, 1.0], [2.0], [], [3.0, 4.0, 5.0], [6.0]]
    assert vp["tags"] == [["x"], [], ["y", "zz"], [""], ["w"]]
    assert [v.tolist() for v in vp["ids"]] == [[1], [2, 3], [], [4], [5]]
    assert pickle.loads(vp["obj"][0]) == {"k": 1}  # kept as bytes: the reader never unpickles
    assert data.edge_properties["w"].tolist() == [10, 11, 12, 13, 14]
    assert data.graph_properties["readme"] == "hello"


def test_gt_directed_file_is_symmetrised(tmp_path: Path) -> None:
    path = tmp_path / "d.gt"
    path.write_bytes(_gt_bytes([[1], [0, 2], []], [], directed=True))  # arcs 0->1, 1->0, 1->2
    data = read_graph_tool(path)
    assert data.directed_in_file
    assert _edge_set(data.edge_index) == {(0, 1), (1, 0), (1, 2), (2, 1)}


@pytest.mark.parametrize(("n", "width"), [(255, "B"), (256, "H"), (300, "H")])
def test_gt_index_width_changes_after_255_nodes(tmp_path: Path, n: int, width: str) -> None:
    """graph-tool writes 1-byte node ids while N <= 255, 2-byte ones up to N = 65,535 (N itself must fit)."""
    neighbours: list[list[int]] = [[] for _ in range(n)]
    neighbours[0] = [n - 1, 1]
    path = tmp_path / "w.gt"
    path.write_bytes(_gt_bytes(neighbours, [(1, "value", 3, list(range(n)))], width=width))
    data = read_graph_tool(path)
    assert data.num_nodes == n and _edge_set(data.edge_index) == {(0, 1), (1, 0), (0, n - 1), (n - 1, 0)}
    assert data.vertex_properties["value"].tolist() == list(range(n))


def test_gt_bad_files_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotInstalledError, match="make data"):
        read_graph_tool(tmp_path / "absent.gt.gz")
    (tmp_path / "bad.gt").write_bytes(b"not a gt file at all")
    with pytest.raises(ValueError, match="bad magic"):
        read_graph_tool(tmp_path / "bad.gt")
    (tmp_path / "cut.gt").write_bytes(_gt_bytes(_NEIGHBOURS, _PROPS)[:-3])
    with pytest.raises(ValueError, match="ends early"):
        read_graph_tool(tmp_path / "cut.gt")


def test_undirected_simple_edges_drops_loops_and_duplicates() -> None:
    edges = undirected_simple_edges(np.array([[2, 0, 0, 1, 3], [2, 1, 1, 0, 0]]), 4)
    assert edges.tolist() == [[0, 0, 1, 3], [1, 3, 0, 0]]


def test_collection_lookup_uses_the_extracted_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if dpkg_listed_files("python3-graph-tool"):
        pytest.skip("python3-graph-tool is installed system-wide: dpkg's file list wins over the extracted tree")
    monkeypatch.setenv("CONTRASTKIT_DATA", str(tmp_path))
    with pytest.raises(DatasetNotInstalledError, match="make data"):
        graph_tool_collection_file("polbooks")
    folder = tmp_path / "deb" / "python3-graph-tool" / "usr" / "lib" / "python3" / "graph_tool" / "collection"
    folder.mkdir(parents=True)
    (folder / "polbooks.gt.gz").write_bytes(gzip.compress(_gt_bytes(_NEIGHBOURS, _PROPS)))
    assert read_graph_tool(graph_tool_collection_file("polbooks")).num_nodes == 5


# ---------------------------------------------------------------- football GML

_GML = """Creator "fixture"
graph
[
  directed 0
  node
  [
    id 0
    label "A"
    value 7
  ]
  node
  [
    id 1
    label "B"
    value 2
  ]
  node
  [
    id 2
    label "C"
    value 7
  ]
  edge
  [
    source 0
    target 1
  ]
  edge
  [
    source 1
    target 2
  ]
  edge
  [
    source 1
    target 0
  ]
]
"""


@pytest.mark.parametrize("compress", [False, True])
def test_football_gml_fixture(tmp_path: Path, compress: bool) -> None:
    path = tmp_path / ("f.gml.gz" if compress else "f.gml")
    path.write_bytes(gzip.compress(_GML.encode()) if compress else _GML.encode())
    data = read_gml_football(path)
    assert data.num_nodes == 3 and data.names == ["A", "B", "C"]
    assert data.y.tolist() == [1, 0, 1] and data.classes == [2, 7]
    assert _edge_set(data.edge_index) == {(0, 1), (1, 0), (1, 2), (2, 1)}  # the repeated game collapses


# ---------------------------------------------------------------- Drosophila CSVs


def test_drosophila_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    adjacency = np.array([[5, 2, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0], [3, 0, 0, 0]])  # 0->1, 2->1, 3->0, loop 0
    np.savetxt(tmp_path / "left_adjacency.csv", adjacency, fmt="%d")
    (tmp_path / "left_cell_labels.csv").write_text("I\nK\nO\nP\n")
    monkeypatch.setattr(graph_readers, "_drosophila_folder", lambda: tmp_path)
    data = read_drosophila("left")
    assert data.num_nodes == 4 and data.y.tolist() == [3, 0, 2, 1]
    assert _edge_set(data.edge_index) == {(0, 1), (1, 0), (1, 2), (2, 1), (0, 3), (3, 0)}
    with pytest.raises(DatasetNotInstalledError, match="make data"):
        read_drosophila("right")
    with pytest.raises(ValueError, match="left"):
        read_drosophila("middle")


def test_drosophila_without_graspologic_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph_readers.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DatasetNotInstalledError, match="graspologic==3.4.4"):
        read_drosophila("left")


def test_karate_clubs() -> None:
    data = read_karate()
    assert data.num_nodes == 34 and data.edge_index.shape[1] == 2 * 78
    assert torch.bincount(data.y).tolist() == [17, 17] and data.y[0] == 0 and data.y[33] == 1
