"""Data floor: in-memory image sets, offline dataset loaders and deterministic stratified splitters.

Nothing in this package downloads; see ``registry`` for the installed datasets and ``datasets.md`` for
sources.
"""

from __future__ import annotations

from contrastkit.data.batch import Batch, as_batch
from contrastkit.data.clutter import clutter_images, cluttered_mnist
from contrastkit.data.dataset import ImageDataset
from contrastkit.data.folders import ImageFolder
from contrastkit.data.graph_datasets import contextual_sbm, graph_statistics, load_graph
from contrastkit.data.graph_readers import read_drosophila, read_gml_football, read_graph_tool, read_karate
from contrastkit.data.graph_source import GraphDataset, GraphSource
from contrastkit.data.graphs import degree_features, image_knn_graph, knn_edge_index, knn_image_graph, read_planetoid
from contrastkit.data.holdout import match_classes, split_off
from contrastkit.data.npz import load_npz
from contrastkit.data.registry import DatasetInfo, DatasetNotInstalledError, available, load
from contrastkit.data.samplers import HAM10000_COUNTS, ClassBalancedBatchSampler, long_tailed_subset
from contrastkit.data.sources import SAMPLERS, DataSource, TensorSource, epoch_order, labelled_unlabelled
from contrastkit.data.splits import (
    label_fraction_indices,
    long_tailed_counts,
    long_tailed_indices,
    scale_profile,
    stratified_split,
)

__all__ = [
    "HAM10000_COUNTS",
    "ClassBalancedBatchSampler",
    "long_tailed_subset",
    "DatasetInfo",
    "DatasetNotInstalledError",
    "ImageDataset",
    "ImageFolder",
    "available",
    "label_fraction_indices",
    "load",
    "load_npz",
    "long_tailed_counts",
    "long_tailed_indices",
    "scale_profile",
    "stratified_split",
]
__all__ += ["Batch", "as_batch", "SAMPLERS", "DataSource", "TensorSource", "epoch_order", "labelled_unlabelled"]
__all__ += ["match_classes", "split_off"]  # held-out splits of a folder / npz file
__all__ += ["clutter_images", "cluttered_mnist"]  # dataset condensation (DC / DSA / DCC)
__all__ += [
    "GraphDataset",
    "GraphSource",
    "degree_features",
    "image_knn_graph",
    "knn_edge_index",
    "knn_image_graph",
]  # graphs
__all__ += ["read_planetoid", "read_drosophila", "read_gml_football", "read_graph_tool", "read_karate"]
__all__ += ["contextual_sbm", "graph_statistics", "load_graph"]  # named graph datasets (GRAPH_DATASETS)
