"""weighted-F1, per-class recall and the imbalanced report (SuperCon's metrics) against scikit-learn by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, f1_score, recall_score, roc_auc_score

from contrastkit.evaluate import (
    balanced_accuracy,
    imbalanced_classification_report,
    macro_f1,
    ovr_auc,
    per_class_recall,
    weighted_f1,
)

Y_TRUE = [0, 0, 0, 0, 1, 1, 2, 2, 2, 3]
Y_PRED = [0, 0, 1, 2, 1, 0, 2, 2, 2, 1]


def test_weighted_f1_and_recall_by_hand() -> None:
    y, p = torch.tensor(Y_TRUE), torch.tensor(Y_PRED)
    # class 0: TP 2, FP 1, FN 2 -> P 2/3, R 1/2, F1 4/7; class 1: TP 1, FP 2, FN 1 -> F1 2/5;
    # class 2: TP 3, FP 1, FN 0 -> F1 6/7; class 3: F1 0. Supports 4, 2, 3, 1.
    f1 = [4 / 7, 2 / 5, 6 / 7, 0.0]
    assert weighted_f1(y, p) == pytest.approx((4 * f1[0] + 2 * f1[1] + 3 * f1[2] + 1 * f1[3]) / 10)
    assert macro_f1(y, p) == pytest.approx(sum(f1) / 4)
    assert per_class_recall(y, p) == pytest.approx([2 / 4, 1 / 2, 3 / 3, 0 / 1])
    assert balanced_accuracy(y, p) == pytest.approx((0.5 + 0.5 + 1.0 + 0.0) / 4)
    # the same as scikit-learn
    assert weighted_f1(y, p) == pytest.approx(f1_score(Y_TRUE, Y_PRED, average="weighted"))
    assert balanced_accuracy(y, p) == pytest.approx(balanced_accuracy_score(Y_TRUE, Y_PRED))
    assert per_class_recall(y, p) == pytest.approx(list(recall_score(Y_TRUE, Y_PRED, average=None)))


def test_per_class_recall_num_classes_and_absent_class() -> None:
    y, p = np.array([0, 0, 1]), np.array([0, 1, 1])
    assert per_class_recall(y, p, num_classes=4) == [0.5, 1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        per_class_recall(y, np.array([0, 2, 1]), num_classes=2)
    with pytest.raises(ValueError, match="num_classes"):
        per_class_recall(y, p, num_classes=0)
    # weighted-F1 ignores a listed class without support
    assert weighted_f1(y, p, num_classes=4) == pytest.approx(f1_score(y, p, average="weighted"))


def test_report_matches_sklearn_on_random_scores() -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(5).repeat(30)  # balanced, 150 samples
    scores = torch.softmax(torch.randn(150, 5, generator=g) + 1.2 * torch.nn.functional.one_hot(y, 5), dim=1)
    report = imbalanced_classification_report(y, scores)
    pred = scores.argmax(1).numpy()
    yn = y.numpy()
    assert report["macro_f1"] == pytest.approx(f1_score(yn, pred, average="macro"))
    assert report["weighted_f1"] == pytest.approx(f1_score(yn, pred, average="weighted"))
    assert report["auc_macro_ovr"] == pytest.approx(
        roc_auc_score(yn, scores.numpy(), multi_class="ovr", average="macro"), abs=1e-12
    )
    assert report["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(yn, pred))
    assert report["accuracy"] == pytest.approx(float((pred == yn).mean()))
    assert report["per_class_recall"] == pytest.approx(list(recall_score(yn, pred, average=None)))
    # on a balanced split, accuracy = balanced accuracy and weighted-F1 = macro-F1
    assert report["accuracy"] == pytest.approx(report["balanced_accuracy"])
    assert report["weighted_f1"] == pytest.approx(report["macro_f1"])


def test_perfect_classifier_scores_one_everywhere() -> None:
    y = torch.tensor([0, 1, 2, 2, 1, 0, 3, 3, 3])
    logits = 5.0 * torch.nn.functional.one_hot(y, 4).float() + 0.1  # logits are fine, not just probabilities
    report = imbalanced_classification_report(y, logits)
    for key in ("macro_f1", "weighted_f1", "auc_macro_ovr", "balanced_accuracy", "accuracy"):
        assert report[key] == pytest.approx(1.0), key
    assert report["per_class_recall"] == [1.0] * 4
    assert ovr_auc(y, logits) == pytest.approx(1.0)


def test_report_bad_inputs() -> None:
    y = torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match=r"\[N, C\]"):
        imbalanced_classification_report(y, torch.rand(3))
    with pytest.raises(ValueError, match=r"\[N, C\]"):
        imbalanced_classification_report(y, torch.rand(4, 3))
    with pytest.raises(ValueError, match="positives and negatives"):
        imbalanced_classification_report(torch.tensor([0, 1, 1]), torch.rand(3, 3))  # class 2 absent
    with pytest.raises(ValueError, match="integer"):
        weighted_f1(y.float(), y)
    with pytest.raises(ValueError, match="entries"):
        per_class_recall(y, y[:2])
