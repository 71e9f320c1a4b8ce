"""macro-F1, balanced accuracy and one-vs-rest AUC on hand examples and against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from contrastkit.evaluate import balanced_accuracy, macro_f1, ovr_auc


def test_macro_f1_hand_example() -> None:
    y_true = torch.tensor([0, 0, 0, 1, 1, 2])
    y_pred = torch.tensor([0, 0, 1, 1, 1, 0])
    # class 0: P 2/3 R 2/3 F1 2/3; class 1: P 2/3 R 1 F1 0.8; class 2: F1 0
    assert macro_f1(y_true, y_pred) == pytest.approx((2 / 3 + 0.8 + 0.0) / 3)
    # an extra class that never occurs adds an F1 of 0 to the mean when it is listed
    assert macro_f1(y_true, y_pred, num_classes=4) == pytest.approx((2 / 3 + 0.8) / 4)


def test_balanced_accuracy_hand_example() -> None:
    y_true = np.array([0, 0, 0, 0, 1, 1])
    y_pred = np.array([0, 0, 0, 0, 0, 1])
    assert balanced_accuracy(y_true, y_pred) == pytest.approx((1.0 + 0.5) / 2)


def test_ovr_auc_perfect_reversed_and_sklearn() -> None:
    y = torch.tensor([0, 1, 2, 0, 1, 2, 2])
    onehot = torch.nn.functional.one_hot(y, 3).double()
    assert ovr_auc(y, onehot) == pytest.approx(1.0)
    assert ovr_auc(y, -onehot) == pytest.approx(0.0)
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (200,), generator=g)
    probs = torch.softmax(torch.randn(200, 4, generator=g) + 1.5 * torch.nn.functional.one_hot(y, 4), dim=1)
    want = roc_auc_score(y.numpy(), probs.numpy(), multi_class="ovr", average="macro")
    assert ovr_auc(y, probs) == pytest.approx(want, abs=1e-12)
    assert 0.7 < ovr_auc(y, probs) < 1.0


def test_ovr_auc_binary_forms_agree() -> None:
    y = torch.tensor([0, 0, 1, 1, 0, 1])
    s = torch.tensor([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    want = roc_auc_score(y.numpy(), s.numpy())
    assert ovr_auc(y, s) == pytest.approx(want)
    assert ovr_auc(y, torch.stack([1 - s, s], dim=1)) == pytest.approx(want)


@pytest.mark.parametrize(
    "case", ["len", "float_labels", "2d_labels", "empty", "missing_class", "nan", "shape"]
)
def test_bad_inputs_raise(case: str) -> None:
    y = torch.tensor([0, 1, 2, 0])
    scores = torch.rand(4, 3)
    with pytest.raises(ValueError):
        if case == "len":
            macro_f1(y, y[:3])
        elif case == "float_labels":
            balanced_accuracy(y.float(), y)
        elif case == "2d_labels":
            macro_f1(y[None], y[None])
        elif case == "empty":
            balanced_accuracy(y[:0], y[:0])
        elif case == "missing_class":
            ovr_auc(torch.tensor([0, 1, 1, 0]), scores)
        elif case == "nan":
            ovr_auc(y, torch.full((4, 3), float("nan")))
        elif case == "shape":
            ovr_auc(y, scores[:3])
