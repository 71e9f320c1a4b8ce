"""A data source over the nodes of one graph: the full graph, or node-induced subgraphs, batch by batch.

:class:`GraphSource` speaks the engine's four-method protocol (:mod:`contrastkit.data.sources`) with the graph's
nodes as items: global batch ``index`` of epoch ``epoch`` is a slice of the permutation
:func:`~contrastkit.data.sources.epoch_order` ``(seed, epoch)`` of the ``N`` nodes, and ``fetch(nodes)`` returns the
subgraph they induce, its nodes relabelled ``0..B-1`` in the order of ``nodes``:

* ``batch.graph``: a ``torch_geometric.data.Data`` with ``x = x[nodes]`` and the edges of ``edge_index`` whose two
  ends are both in ``nodes`` (relabelled);
* ``batch.labels = y[nodes]`` (when the graph has labels) and ``batch.indices = nodes``.

``batch_size = N`` gives the whole graph every step (GRACE, Zhu et al. 2020); a smaller one gives random
node-induced subgraphs of that size, the sampling of ARIEL (Feng et al., WWW 2022: random node subsets, induced
subgraph, no neighbourhood expansion), each epoch covering every node once. The graph is kept as given (on its
device); torch_geometric is imported when a source is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from contrastkit.data.batch import Batch
from contrastkit.data.sources import epoch_order

__all__ = ["GraphDataset", "GraphSource"]


class GraphSource:
    """The nodes of ``graph`` (a ``torch_geometric.data.Data`` with ``x`` ``[N, F]``, ``edge_index`` ``[2, E]`` and
    optionally ``y`` ``[N]``) as the items of a data source (module docstring)."""

    def __init__(self, graph: Any) -> None:
        try:
            from torch_geometric.utils import subgraph
        except ImportError as err:  # pragma: no cover - the graph extra is part of `all`
            raise ImportError("graph sources need torch_geometric: pip install 'contrastkit[graph]'") from err
        x, edge_index = getattr(graph, "x", None), getattr(graph, "edge_index", None)
        if not isinstance(x, Tensor) or x.ndim != 2 or not isinstance(edge_index, Tensor) or edge_index.ndim != 2:
            raise ValueError("GraphSource needs a graph with node features x [N, F] and edge_index [2, E]")
        if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= x.shape[0]):
            raise ValueError(f"edge_index names nodes outside 0..{x.shape[0] - 1}: check the graph")
        self.graph = graph
        self._subgraph = subgraph

    def __len__(self) -> int:
        return int(self.graph.x.shape[0])

    def num_batches(self, batch_size: int) -> int:
        """Node batches per epoch (the last incomplete one is dropped)."""
        return len(self) // batch_size

    def batch_indices(self, epoch: int, index: int, batch_size: int, seed: int) -> Tensor:
        return epoch_order(len(self), seed, epoch)[index * batch_size : (index + 1) * batch_size]

    def fetch(self, indices: Tensor) -> Batch:
        """The subgraph induced by the nodes ``indices`` ``[B]``, relabelled in their order."""
        from torch_geometric.data import Data

        g = self.graph
        nodes = indices.to(g.x.device)
        edges, _ = self._subgraph(nodes, g.edge_index, relabel_nodes=True, num_nodes=len(self))  # in nodes' order
        y = getattr(g, "y", None)
        labels = None if y is None else y[nodes]
        return Batch(graph=Data(x=g.x[nodes], edge_index=edges, num_nodes=int(nodes.shape[0])), labels=labels,
                     indices=indices)  # fmt: skip


@dataclass(frozen=True)
class GraphDataset:
    """A labelled graph as a run's training data: ``graph`` (``torch_geometric.data.Data`` with ``x`` ``[N, F]``,
    ``edge_index`` ``[2, E]``, ``y`` ``[N]``) and its ``name``. Its items are the ``N`` nodes; it answers the
    questions the run shell asks of an image set (``len``, ``labels``, ``num_classes``, ``classes``)."""

    graph: Any
    name: str

    def __len__(self) -> int:
        return int(self.graph.x.shape[0])

    @property
    def labels(self) -> Tensor | None:
        return getattr(self.graph, "y", None)

    @property
    def num_features(self) -> int:
        return int(self.graph.x.shape[1])

    @property
    def num_classes(self) -> int:
        return 0 if self.labels is None else int(self.labels.max()) + 1

    @property
    def classes(self) -> tuple[str, ...]:
        names = getattr(self.graph, "classes", None)
        return tuple(str(c) for c in names) if names is not None else tuple(str(c) for c in range(self.num_classes))

    def class_counts(self) -> Tensor:
        """Nodes per class ``[K]``."""
        labels = self.labels if self.labels is not None else torch.zeros(0, dtype=torch.long)
        return torch.bincount(labels, minlength=self.num_classes)
