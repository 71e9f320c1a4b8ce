"""Evaluation protocols: each measures frozen features and returns every metric with the text of its protocol.

One module serves the online monitors, ``contrastkit evaluate`` and the reproductions, so a number means the same
thing wherever it is printed. ``evaluate_features(bank, bank_labels, queries, query_labels, protocols, ...)``
returns ``{name: Measurement(value, protocol)}``:

* ``"knn"`` -> ``knn_top1``: weighted kNN (Wu et al., CVPR 2018), cosine similarity, ``k`` neighbours, weights
  ``exp(s / T)``; the bank is the labelled training features, the queries the held-out ones;
* ``"linear"`` -> ``linear_top1``: a linear probe fitted by L-BFGS (at most 500 iterations) on standardised bank
  features (:func:`contrastkit.evaluate.linear_probe`), scored on the queries;
* ``"nmi"`` -> ``kmeans_nmi``, ``kmeans_ari``: k-means with k = number of classes on the L2-normalised queries;
* ``"rank"`` -> ``effective_rank``: ``exp(H(lambda / sum lambda))`` of the queries' covariance (Roy & Vetterli,
  EUSIPCO 2007);
* ``"collapse"`` -> ``collapse_effective_rank``, ``collapse_collapsed_dims``, ``collapse_dead_units``
  (:func:`contrastkit.evaluate.collapse_report`, Jing et al., ICLR 2022) of the L2-normalised queries.

``bank_text`` and ``query_text`` name the data in the protocol texts (e.g. "60,000 training images",
"the test split").

:func:`evaluate_classifier_scores` measures a classifier's own class scores ``[N, K]`` (the ``predict`` of a
classifying method) the same way: top-1 and balanced accuracy, macro- and weighted-F1, macro one-vs-rest AUC
(:func:`contrastkit.evaluate.imbalanced_classification_report`), each with its text, and the per-class recalls.

:func:`evaluate_frozen_head` is the frozen-head protocol (:mod:`contrastkit.evaluate.frozen_head`): a linear head
re-fitted by L-BFGS to convergence on standardised frozen bank features with a chosen loss (``ce``,
``weighted_ce``, ``class_balanced``, ``focal``), its L2 strength chosen on a class-stratified validation carve of
the bank; the queries are scored like a classifier's (the same five metrics and per-class recalls).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

from contrastkit.evaluate.classification import imbalanced_classification_report
from contrastkit.evaluate.clustering import cluster_scores
from contrastkit.evaluate.collapse import collapse_report
from contrastkit.evaluate.frozen_head import (
    GRAD_TOLERANCE,
    L2_GRID,
    VAL_FRACTION,
    FrozenHeadResult,
    frozen_head_protocol,
)
from contrastkit.evaluate.knn import knn_accuracy
from contrastkit.evaluate.linear import linear_probe
from contrastkit.evaluate.spectrum import effective_rank

__all__ = [
    "FEATURE_PROTOCOLS",
    "Measurement",
    "classifier_protocol_texts",
    "evaluate_classifier_scores",
    "evaluate_features",
    "evaluate_frozen_head",
    "frozen_head_text",
    "protocol_texts",
    "values",
]

FEATURE_PROTOCOLS = ("knn", "linear", "nmi", "rank", "collapse")


@dataclass(frozen=True)
class Measurement:
    """A metric's value and how it was measured."""

    value: float
    protocol: str


def protocol_texts(
    protocols: Sequence[str],
    *,
    k: int = 200,
    temperature: float = 0.1,
    collapse_rel: float = 1e-4,
    bank_text: str = "the training split",
    query_text: str = "the held-out split",
) -> dict[str, str]:
    """The protocol text of every metric that ``protocols`` produce (see the module docstring)."""
    unknown = [p for p in protocols if p not in FEATURE_PROTOCOLS]
    if unknown:
        raise ValueError(f"unknown protocols {unknown}; choose from {', '.join(FEATURE_PROTOCOLS)}")
    texts: dict[str, str] = {}
    if "knn" in protocols:
        texts["knn_top1"] = (
            f"weighted kNN top-1 (k={k}, T={temperature}, cosine; memory bank: {bank_text}; queries: {query_text})"
        )
    if "linear" in protocols:
        texts["linear_top1"] = (
            "linear probe top-1 (L-BFGS, at most 500 iterations, weight decay 1e-5, standardised frozen features; "
            f"fitted on {bank_text}, scored on {query_text})"
        )
    if "nmi" in protocols:
        text = f"k-means (k = number of classes, L2-normalised features) on {query_text}"
        texts["kmeans_nmi"], texts["kmeans_ari"] = f"NMI of {text}", f"ARI of {text}"
    if "rank" in protocols:
        texts["effective_rank"] = (
            f"exp(entropy) of the covariance spectrum of the features of {query_text} (as they are, not "
            "L2-normalised; the collapse_* metrics normalise)"
        )
    if "collapse" in protocols:
        where = f"of the L2-normalised features of {query_text} (float64)"
        texts["collapse_effective_rank"] = f"effective rank exp(H(lambda / sum lambda)) {where}"
        texts["collapse_collapsed_dims"] = f"eigenvalues <= {collapse_rel:g} x the largest {where}"
        texts["collapse_dead_units"] = f"units that are 0 on every image of {query_text}"
    return texts


def evaluate_features(
    bank: Tensor | None,
    bank_labels: Tensor | None,
    queries: Tensor,
    query_labels: Tensor | None,
    protocols: Sequence[str] = ("knn", "linear", "nmi"),
    *,
    k: int = 200,
    temperature: float = 0.1,
    collapse_rel: float = 1e-4,
    num_classes: int | None = None,
    seed: int = 0,
    bank_text: str = "the training split",
    query_text: str = "the held-out split",
) -> dict[str, Measurement]:
    """Run ``protocols`` on bank ``[N, D]`` / queries ``[M, D]`` features (see the module docstring).

    ``knn`` and ``linear`` need the bank and both label sets; ``nmi`` needs the query labels; protocols whose
    inputs are missing raise a one-line ValueError.
    """
    texts = protocol_texts(
        protocols, k=k, temperature=temperature, collapse_rel=collapse_rel, bank_text=bank_text, query_text=query_text
    )
    needs_bank = [p for p in protocols if p in ("knn", "linear")]
    if needs_bank and (bank is None or bank_labels is None or query_labels is None):
        raise ValueError(f"protocols {needs_bank} need labelled bank and query features")
    if "nmi" in protocols and query_labels is None:
        raise ValueError("protocol 'nmi' needs labelled query features")
    values: dict[str, float] = {}
    if "knn" in protocols:
        assert bank is not None and bank_labels is not None and query_labels is not None
        values["knn_top1"] = knn_accuracy(
            bank, bank_labels, queries, query_labels, k=k, temperature=temperature, num_classes=num_classes
        )
    if "linear" in protocols:
        assert bank is not None and bank_labels is not None and query_labels is not None
        probe = linear_probe(bank, bank_labels, queries, query_labels, num_classes=num_classes, seed=seed)
        values["linear_top1"] = probe.test_accuracy
    if "nmi" in protocols:
        assert query_labels is not None
        scores = cluster_scores(queries, query_labels, method="kmeans", seed=seed)
        values["kmeans_nmi"], values["kmeans_ari"] = scores["nmi"], scores["ari"]
    if "rank" in protocols:
        values["effective_rank"] = effective_rank(queries)
    if "collapse" in protocols:
        report = collapse_report(queries, rel=collapse_rel, normalize=True)
        for key in ("effective_rank", "collapsed_dims", "dead_units"):
            values[f"collapse_{key}"] = float(report[key])
    return {name: Measurement(float(value), texts[name]) for name, value in values.items()}


def values(measurements: dict[str, Measurement]) -> dict[str, float]:
    """``{name: value}`` of measurements."""
    return {name: m.value for name, m in measurements.items()}


_CLASSIFIER_METRICS = {
    "accuracy": "top-1 accuracy",
    "balanced_accuracy": "balanced accuracy (mean per-class recall)",
    "macro_f1": "macro-F1 (sklearn f1_score, average='macro')",
    "weighted_f1": "weighted-F1 (sklearn f1_score, average='weighted')",
    "auc_macro_ovr": "macro one-vs-rest AUC of the softmax scores (sklearn roc_auc_score)",
}


def classifier_protocol_texts(query_text: str = "the held-out split", prefix: str = "") -> dict[str, str]:
    """The protocol text of every metric of :func:`evaluate_classifier_scores`."""
    return {f"{prefix}{name}": f"{what} of the classifier's argmax on {query_text}"
            for name, what in _CLASSIFIER_METRICS.items()}  # fmt: skip


def evaluate_classifier_scores(
    scores: Tensor, labels: Tensor, *, query_text: str = "the held-out split", prefix: str = ""
) -> tuple[dict[str, Measurement], list[float]]:
    """Metrics of class scores ``[N, K]`` (logits or probabilities; predictions are their argmax) against
    ``labels`` ``[N]``: ``({prefix + name: Measurement}, per-class recall [K])``. Every class must occur in
    ``labels`` for the AUC to be defined."""
    report = imbalanced_classification_report(labels, scores.float().softmax(dim=1))
    texts = classifier_protocol_texts(query_text, prefix)
    recall = report.pop("per_class_recall")
    assert isinstance(recall, list)
    values = {name: value for name, value in report.items() if isinstance(value, float)}
    measured = {f"{prefix}{name}": Measurement(float(values[name]), texts[f"{prefix}{name}"])
                for name in _CLASSIFIER_METRICS}  # fmt: skip
    return measured, [float(r) for r in recall]


def frozen_head_text(loss: str, bank_text: str = "the training split") -> str:
    """The protocol text of the frozen-head protocol with ``loss`` (the head, not yet its scoring)."""
    grid = ", ".join(f"{v:g}" for v in L2_GRID)
    return (
        f"a linear head re-fitted with the {loss} loss on the frozen, standardised features of {bank_text} "
        f"(float64 full-batch L-BFGS from zero to max |grad| <= {GRAD_TOLERANCE:g}; L2 from {{{grid}}} chosen by "
        f"macro-F1 on a class-stratified {VAL_FRACTION:.0%} validation carve of {bank_text}, then re-fitted on all "
        "of it)"
    )


def evaluate_frozen_head(
    bank: Tensor,
    bank_labels: Tensor,
    queries: Tensor,
    query_labels: Tensor,
    *,
    loss: str,
    num_classes: int | None = None,
    seed: int = 0,
    bank_text: str = "the training split",
    query_text: str = "the held-out split",
    prefix: str = "",
) -> tuple[dict[str, Measurement], list[float], FrozenHeadResult]:
    """The frozen-head protocol with ``loss`` fitted on bank features ``[N, D]`` (validation carve seeded by
    ``seed``), scored on query features ``[M, D]``: ``({prefix + metric: Measurement}, per-class recall [K],
    the fitted result)`` with the metrics of :func:`evaluate_classifier_scores`."""
    k = num_classes if num_classes is not None else int(max(int(bank_labels.max()), int(query_labels.max()))) + 1
    result = frozen_head_protocol(bank, bank_labels, loss=loss, num_classes=k, seed=seed)
    scores = result.head.logits(queries)
    measured, recall = evaluate_classifier_scores(scores, query_labels, prefix=prefix)
    head = frozen_head_text(loss, bank_text)
    texts = {f"{prefix}{name}": f"{what} of the argmax of {head}; on {query_text}"
             for name, what in _CLASSIFIER_METRICS.items()}  # fmt: skip
    return {name: Measurement(m.value, texts[name]) for name, m in measured.items()}, recall, result
