"""The evaluation protocols module: every metric comes with its protocol text and equals the primitive it wraps."""

from __future__ import annotations

import pytest
import torch

from contrastkit.evaluate import collapse_report, effective_rank, knn_accuracy
from contrastkit.evaluate.protocols import (
    classifier_protocol_texts,
    evaluate_classifier_scores,
    evaluate_features,
    protocol_texts,
)


def _features(seed: int, n: int = 120) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    return torch.randn(n, 8, generator=g) + 3.0 * torch.nn.functional.one_hot(labels, 8).float(), labels


def test_feature_protocols_equal_their_primitives_and_name_their_data() -> None:
    bank, y_bank = _features(0)
    queries, y_q = _features(1, 60)
    measured = evaluate_features(bank, y_bank, queries, y_q, ["knn", "linear", "nmi", "rank", "collapse"], k=5,
                                 bank_text="BANK", query_text="QUERIES")  # fmt: skip
    assert set(measured) == set(protocol_texts(["knn", "linear", "nmi", "rank", "collapse"]))
    assert measured["knn_top1"].value == knn_accuracy(bank, y_bank, queries, y_q, k=5, temperature=0.1)
    assert measured["effective_rank"].value == pytest.approx(effective_rank(queries))
    assert measured["collapse_collapsed_dims"].value == collapse_report(queries, normalize=True)["collapsed_dims"]
    assert measured["linear_top1"].value > 0.9  # separable classes
    assert "k=5" in measured["knn_top1"].protocol and "BANK" in measured["knn_top1"].protocol
    assert all("QUERIES" in m.protocol for m in measured.values())


def test_feature_protocols_refuse_missing_inputs_and_unknown_names() -> None:
    queries, labels = _features(2, 30)
    with pytest.raises(ValueError, match="need labelled bank"):
        evaluate_features(None, None, queries, labels, ["knn"])
    with pytest.raises(ValueError, match="'nmi' needs labelled"):
        evaluate_features(None, None, queries, None, ["nmi"])
    with pytest.raises(ValueError, match="unknown protocols"):
        evaluate_features(None, None, queries, labels, ["svm"])
    assert set(evaluate_features(None, None, queries, None, ["rank"])) == {"effective_rank"}


def test_classifier_scores_give_each_metric_with_its_text() -> None:
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    scores = torch.nn.functional.one_hot(torch.tensor([0, 1, 1, 1, 2, 0]), 3).float() * 5
    measured, recall = evaluate_classifier_scores(scores, labels, query_text="TEST", prefix="clf_")
    assert measured["clf_accuracy"].value == pytest.approx(4 / 6)
    assert recall == pytest.approx([0.5, 1.0, 0.5])
    assert measured["clf_balanced_accuracy"].value == pytest.approx(2 / 3)
    assert {name: m.protocol for name, m in measured.items()} == classifier_protocol_texts("TEST", "clf_")
