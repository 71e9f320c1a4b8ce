"""Evaluation of frozen representations: features, weighted kNN, linear probe, clustering, spectrum, metrics.

Pure torch + numpy + scikit-learn (no lightning). Typical use::

    train_z = extract_features(backbone, train_images)
    test_z = extract_features(backbone, test_images)
    acc = knn_accuracy(train_z, train_y, test_z, test_y, k=200, temperature=0.1)
    probe = linear_probe(train_z, train_y, test_z, test_y)
    head = frozen_head_protocol(train_z, train_y, loss="weighted_ce").head  # re-fitted, L2 chosen on a carve
    scores = cluster_scores(test_z, test_y, method="gmm")
    erank = effective_rank(torch.nn.functional.normalize(test_z, dim=1))
"""

from __future__ import annotations

from contrastkit.evaluate.classification import (
    balanced_accuracy,
    imbalanced_classification_report,
    macro_f1,
    ovr_auc,
    per_class_recall,
    weighted_f1,
)
from contrastkit.evaluate.clustering import cluster_assignments, cluster_purity, cluster_scores, mean_cluster_scores
from contrastkit.evaluate.collapse import collapse_report
from contrastkit.evaluate.condensation import SynsetEvalConfig, SynsetEvaluation
from contrastkit.evaluate.features import Embedding, extract_features, module_device
from contrastkit.evaluate.frozen_head import FrozenHead, FrozenHeadResult, fit_frozen_head, frozen_head_protocol
from contrastkit.evaluate.knn import knn_accuracy, knn_predict, knn_scores
from contrastkit.evaluate.linear import LinearProbeResult, linear_probe
from contrastkit.evaluate.node_classification import NodeClassificationResult, node_classification, paired_difference
from contrastkit.evaluate.spectrum import dead_units, effective_rank, embedding_spectrum, rank_at_threshold

__all__ = [
    "Embedding",
    "extract_features",
    "module_device",
    "knn_scores",
    "knn_predict",
    "knn_accuracy",
    "LinearProbeResult",
    "linear_probe",
    "FrozenHead",
    "FrozenHeadResult",
    "fit_frozen_head",
    "frozen_head_protocol",
    "macro_f1",
    "balanced_accuracy",
    "ovr_auc",
    "weighted_f1",
    "per_class_recall",
    "imbalanced_classification_report",
    "cluster_assignments",
    "cluster_purity",
    "cluster_scores",
    "mean_cluster_scores",
    "embedding_spectrum",
    "effective_rank",
    "rank_at_threshold",
    "dead_units",
    "collapse_report",
]
__all__ += [
    "SynsetEvalConfig",
    "SynsetEvaluation",
]  # dataset condensation (DC / DSA / DCC); its training (evaluate_synset) is contrastkit.train.condensation
__all__ += ["NodeClassificationResult", "node_classification", "paired_difference"]  # graphs (GRACE protocol)
