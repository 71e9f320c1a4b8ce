"""Clustering for prototype methods (PCL, HCSC): k-means with a faiss or torch back end, PCL's concentration and
HCSC's hierarchy of prototypes.

* :func:`kmeans` -> :class:`KMeansResult`: back end ``"faiss"`` (``pip install 'contrastkit[cluster]'``),
  ``"torch"`` (Lloyd's algorithm, CPU or CUDA) or ``"auto"`` (faiss when installed and the data is on the CPU);
  :func:`faiss_available`; ``BACKENDS``;
* :func:`concentration`: PCL's per-cluster temperature ``phi`` (Li et al. 2021);
* :func:`hierarchical_kmeans` -> list of :class:`ClusterLevel`: HCSC's levels with parents, composed assignments
  and concentrations (Guo et al. 2022).

Pure torch + numpy (faiss imported only when used). Under DDP, gather the features so every rank clusters the same
memory before calling these.
"""

from __future__ import annotations

from contrastkit.cluster.concentration import concentration
from contrastkit.cluster.hierarchy import ClusterLevel, hierarchical_kmeans
from contrastkit.cluster.kmeans import BACKENDS, KMeansResult, faiss_available, kmeans

__all__ = [
    "BACKENDS",
    "ClusterLevel",
    "KMeansResult",
    "concentration",
    "faiss_available",
    "hierarchical_kmeans",
    "kmeans",
]
