"""Linear probe: optimum vs scikit-learn, separable vs random labels, determinism, folding, input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from contrastkit.evaluate import linear_probe


def _separable(n: int, d: int = 16, c: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(c, d, generator=g)
    x = torch.randn(n, d, generator=g)
    return x, (x @ w.T).argmax(dim=1)  # labels are a linear function of x: separable by construction


def test_separable_data_is_learned() -> None:
    x, y = _separable(1500)
    result = linear_probe(x[:1000], y[:1000], x[1000:], y[1000:])
    assert result.train_accuracy > 0.98
    assert result.test_accuracy > 0.95


def test_random_labels_stay_at_chance_on_test() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3000, 16, generator=g)
    y = torch.randint(0, 4, (3000,), generator=g)
    result = linear_probe(x[:1500], y[:1500], x[1500:], y[1500:])
    # chance 0.25; std of a 1500-sample accuracy is ~0.011, so +-0.05 is > 4 sigma
    assert abs(result.test_accuracy - 0.25) < 0.05
    assert result.train_accuracy > result.test_accuracy  # it fits noise on train, nothing carries over


def test_lbfgs_reaches_the_logistic_regression_optimum() -> None:
    x, y = _separable(400, d=8, c=3, seed=1)
    x = x + 0.8 * torch.randn(400, 8, generator=torch.Generator().manual_seed(5))  # not separable any more
    wd = 1e-2
    result = linear_probe(x, y, x, y, weight_decay=wd, standardize=False)
    # sklearn minimises sum_i CE + ||W||^2 / (2 C) = N * (mean CE + wd/2 ||W||^2) with C = 1 / (N wd)
    ref = LogisticRegression(C=1.0 / (400 * wd), tol=1e-10, max_iter=10_000).fit(
        x.double().numpy(), y.numpy()
    )
    w = torch.from_numpy(ref.coef_)
    b = torch.from_numpy(ref.intercept_)
    logits = x.double() @ w.T + b
    ref_loss = float(torch.nn.functional.cross_entropy(logits, y) + 0.5 * wd * w.pow(2).sum())
    assert result.final_loss == pytest.approx(ref_loss, rel=1e-4)
    torch.testing.assert_close(result.classifier.weight.double(), w, atol=2e-3, rtol=2e-3)


def test_folded_classifier_acts_on_raw_features() -> None:
    x, y = _separable(600)
    x = x * torch.linspace(0.01, 100.0, 16) + 7.0  # badly scaled, shifted features
    result = linear_probe(x[:400], y[:400], x[400:], y[400:])
    with torch.no_grad():
        raw_logits = result.classifier(x[400:])
    torch.testing.assert_close(raw_logits, result.test_logits, rtol=1e-4, atol=1e-3)
    assert torch.equal(result.predict(x[400:]), result.test_logits.argmax(1))
    assert result.test_accuracy > 0.9


def test_standardisation_makes_the_probe_scale_invariant() -> None:
    x, y = _separable(600)
    scale = torch.logspace(-3, 3, 16)
    a = linear_probe(x[:400], y[:400], x[400:], y[400:])
    b = linear_probe(x[:400] * scale, y[:400], x[400:] * scale, y[400:])
    assert a.test_accuracy == pytest.approx(b.test_accuracy, abs=0.01)
    torch.testing.assert_close(a.test_logits, b.test_logits, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("solver", ["lbfgs", "adam"])
def test_same_seed_same_result(solver: str) -> None:
    x, y = _separable(500)
    kwargs = {"solver": solver, "epochs": 3, "batch_size": 64, "seed": 7}
    a = linear_probe(x[:300], y[:300], x[300:], y[300:], **kwargs)
    b = linear_probe(x[:300], y[:300], x[300:], y[300:], **kwargs)
    assert torch.equal(a.classifier.weight, b.classifier.weight)
    assert torch.equal(a.test_logits, b.test_logits)
    assert a.test_accuracy == b.test_accuracy


def test_adam_seed_changes_the_shuffle_and_still_learns() -> None:
    x, y = _separable(800)
    a = linear_probe(
        x[:600], y[:600], x[600:], y[600:], solver="adam", epochs=30, batch_size=64, lr=5e-2, seed=0
    )
    b = linear_probe(
        x[:600], y[:600], x[600:], y[600:], solver="adam", epochs=30, batch_size=64, lr=5e-2, seed=1
    )
    assert not torch.equal(a.classifier.weight, b.classifier.weight)
    assert a.test_accuracy > 0.9 and b.test_accuracy > 0.9


def test_num_classes_covers_classes_missing_from_train() -> None:
    x, y = _separable(300, c=3)
    result = linear_probe(x, y, x, y, num_classes=5)
    assert result.classifier.out_features == 5
    assert result.test_logits.shape == (300, 5)
    assert np.isfinite(result.final_loss)


@pytest.mark.parametrize(
    "case", ["labels_len", "features_1d", "nan", "dim", "solver", "lr", "wd", "epochs", "range"]
)
def test_bad_inputs_raise(case: str) -> None:
    x, y = _separable(100)
    xtr, ytr, xte, yte = x[:60], y[:60], x[60:], y[60:]
    kwargs: dict = {}
    if case == "labels_len":
        ytr = ytr[:-1]
    elif case == "features_1d":
        xte = xte[:, 0]
    elif case == "nan":
        xtr = xtr.clone()
        xtr[0, 0] = float("nan")
    elif case == "dim":
        xte = xte[:, :3]
    elif case == "solver":
        kwargs["solver"] = "sgd"
    elif case == "lr":
        kwargs["lr"] = 0.0
    elif case == "wd":
        kwargs["weight_decay"] = -1.0
    elif case == "epochs":
        kwargs["epochs"] = 0
    elif case == "range":
        kwargs["num_classes"] = 2
    with pytest.raises(ValueError):
        linear_probe(xtr, ytr, xte, yte, **kwargs)
