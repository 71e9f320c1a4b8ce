"""The graph datasets and node-feature choices, declared once and importable without torch (the config schema
checks ``data.name`` against them; :mod:`contrastkit.data.graph_datasets` loads them)."""

from __future__ import annotations

__all__ = ["GRAPH_DATASETS", "GRAPH_FEATURES"]

GRAPH_DATASETS: tuple[str, ...] = (
    "fashion-mnist-knn",
    "mnist-knn",
    "csbm",
    "karate",
    "football",
    "polblogs",
    "polbooks",
    "adjnoun",
    "drosophila-left",
    "drosophila-right",
    "planetoid",
)
GRAPH_FEATURES: tuple[str, ...] = ("default", "degree", "identity")
