"""The graph side of :mod:`contrastkit.train.builders`: a config whose ``data.name`` is a graph
(``contrastkit._graph_names.GRAPH_DATASETS``) trains a graph method (GRACE, ARIEL) on a ``gcn`` backbone.

* data: :func:`contrastkit.data.graph_datasets.load_graph` with ``data.num_nodes``, ``data.knn_k``,
  ``data.node_features``, ``data.path`` and ``trainer.seed`` (the node sample of the kNN graphs and the CSBM's
  draw), as a :class:`contrastkit.data.GraphDataset`; no held-out split;
* source: :class:`contrastkit.data.GraphSource`, a batch being the subgraph ``data.batch_size`` nodes induce;
* backbone: :class:`contrastkit.models.GCNEncoder` ``F -> 2h -> h`` with ``h = model.hidden_dim`` (default 128),
  ``model.depth`` layers, ``model.activation`` and ``model.gcn_init``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from contrastkit._graph_names import GRAPH_DATASETS

__all__ = ["DEFAULT_GCN_HIDDEN", "build_gcn", "is_graph_config", "load_graph_data"]

DEFAULT_GCN_HIDDEN = 128  # GRACE's Cora width


def is_graph_config(cfg: Any) -> bool:
    """Whether ``cfg.data.name`` names a graph."""
    return cfg.data.name in GRAPH_DATASETS


def load_graph_data(cfg: Any) -> Any:
    """The graph of ``cfg.data`` as a :class:`contrastkit.data.GraphDataset`; ``data.batch_size`` must not exceed
    its node count."""
    from contrastkit.data.graph_datasets import load_graph
    from contrastkit.data.graph_source import GraphDataset

    d = cfg.data
    graph = load_graph(d.name, seed=cfg.trainer.seed, num_nodes=d.num_nodes, k=d.knn_k, features=d.node_features,
                       path=d.path)  # fmt: skip
    dataset = GraphDataset(graph, d.name)
    if d.batch_size > len(dataset):
        raise ValueError(
            f"data.batch_size={d.batch_size} is larger than the {len(dataset)} nodes of {d.name}: lower it "
            f"(data.batch_size={len(dataset)} trains on the whole graph every step)"
        )
    return dataset


def build_gcn(cfg: Any, num_features: int) -> nn.Module:
    """The ``gcn`` backbone of ``cfg.model`` for ``num_features`` input features."""
    from contrastkit.models.graph import GCNEncoder

    m = cfg.model
    hidden = m.hidden_dim if m.hidden_dim is not None else DEFAULT_GCN_HIDDEN
    return GCNEncoder(num_features, hidden, num_layers=m.depth, activation=m.activation, init=m.gcn_init)
