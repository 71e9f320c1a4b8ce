"""``contrastkit evaluate`` for a graph run: node classification of the trained encoder (GRACE's protocol), beside
the same protocol on the untrained encoder and on the raw node features.

The encoder embeds the whole graph (``method.embed_graph``); :func:`contrastkit.evaluate.node_classification`
fits a one-vs-rest logistic regression on 10 % of the nodes and scores the rest, over 20 splits seeded by
``trainer.seed`` (so the three feature kinds share their splits), with 5-fold grid search over C in GRACE's grid
2^-10..2^9. The record has the same layout as the image protocols' (:mod:`contrastkit.train.run_dir`).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

__all__ = ["GRAPH_PROTOCOL", "node_classification_record"]

GRAPH_PROTOCOL = "node"
TRAIN_FRACTION = 0.1
REPEATS = 20


def _protocol_text(what: str, seed: int) -> str:
    return (f"node classification: {what}, L2-normalised; one-vs-rest liblinear logistic regression on "
            f"{TRAIN_FRACTION:.0%} of the nodes, scored on the rest, mean over {REPEATS} splits seeded by {seed}; "
            "C by 5-fold grid search over 2^-10..2^9 (GRACE's protocol)")  # fmt: skip


def node_classification_record(
    method: nn.Module, untrained: nn.Module | None, graph: Any, seed: int, checkpoint: str, step: int
) -> dict[str, Any]:
    """The ``node`` evaluation record of a graph run: ``metrics`` ``node_accuracy`` / ``node_accuracy_std`` of the
    trained encoder, ``baselines`` of the untrained one and of the raw features (when ``untrained`` is given)."""
    from contrastkit.evaluate.node_classification import node_classification

    begun = time.perf_counter()
    features = {}
    with torch.no_grad():
        features["trained"] = method.embed_graph(graph.x, graph.edge_index)
        if untrained is not None:
            features["random_init"] = untrained.embed_graph(graph.x, graph.edge_index)
            features["raw_features"] = graph.x
    results = {kind: node_classification(z, graph.y, train_fraction=TRAIN_FRACTION, repeats=REPEATS, seed=seed)
               for kind, z in features.items()}  # fmt: skip
    trained = results["trained"]
    record: dict[str, Any] = {"checkpoint": checkpoint, "step": step}
    record["metrics"] = {"node_accuracy": trained.mean, "node_accuracy_std": trained.std}
    text = _protocol_text("the trained encoder's output on the whole graph", seed)
    record["protocols"] = {"node_accuracy": text, "node_accuracy_std": f"standard deviation over the splits; {text}"}
    if untrained is not None:
        record["baselines"] = {"node_accuracy": {k: results[k].mean for k in ("random_init", "raw_features")}}
        record["baseline_features"] = {"random_init": f"the untrained encoder (seed {seed})",
                                       "raw_features": f"the node features, [N, {int(graph.x.shape[1])}]"}  # fmt: skip
    record["seconds"] = round(time.perf_counter() - begun, 1)
    return record
