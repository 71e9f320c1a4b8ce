"""Weighted kNN (InstDisc) against a float64 brute-force loop, plus protocol properties and input checks."""

from __future__ import annotations

import math

import pytest
import torch

from contrastkit.evaluate import knn_accuracy, knn_predict, knn_scores


def _bruteforce_scores(
    train: torch.Tensor, labels: torch.Tensor, test: torch.Tensor, k: int, t: float, c: int
):
    """Vote shares p_ic = sum_{top-k j, y_j = c} exp(s_ij / T) / sum_{top-k j} exp(s_ij / T), per query."""
    out = torch.zeros(test.shape[0], c, dtype=torch.float64)
    for i in range(test.shape[0]):
        q = test[i].double()
        sims = []
        for j in range(train.shape[0]):
            f = train[j].double()
            sims.append((float(q @ f) / (float(q.norm()) * float(f.norm())), int(labels[j])))
        sims.sort(key=lambda item: -item[0])
        top = sims[: min(k, len(sims))]
        for s, y in top:
            out[i, y] += math.exp(s / t)
        out[i] /= out[i].sum()
    return out


def _data(n: int = 60, m: int = 15, d: int = 8, c: int = 4, dtype: torch.dtype = torch.float64):
    g = torch.Generator().manual_seed(1)
    train = torch.randn(n, d, generator=g, dtype=dtype)
    labels = torch.randint(0, c, (n,), generator=g)
    test = torch.randn(m, d, generator=g, dtype=dtype)
    return train, labels, test


@pytest.mark.parametrize(("k", "temperature"), [(1, 0.1), (5, 0.07), (20, 0.5), (60, 1.0), (200, 0.1)])
def test_scores_match_bruteforce(k: int, temperature: float) -> None:
    train, labels, test = _data()
    got = knn_scores(train, labels, test, k=k, temperature=temperature, num_classes=4)
    want = _bruteforce_scores(train, labels, test, k, temperature, 4)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    assert torch.equal(
        knn_predict(train, labels, test, k=k, temperature=temperature, num_classes=4), want.argmax(1)
    )


def test_float32_predictions_match_float64_reference() -> None:
    train, labels, test = _data(n=200, m=50, d=16, c=5, dtype=torch.float32)
    want = _bruteforce_scores(train, labels, test, 20, 0.1, 5)
    pred = knn_predict(train, labels, test, k=20, temperature=0.1, num_classes=5)
    top2 = want.topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 1e-4  # ignore near-ties, where float32 round-off may decide
    assert clear.sum() > 40
    assert torch.equal(pred[clear], want.argmax(1)[clear])


def test_separated_gaussian_clusters_are_classified_perfectly() -> None:
    g = torch.Generator().manual_seed(2)
    centers = torch.randn(5, 32, generator=g) * 5.0
    y_train = torch.randint(0, 5, (500,), generator=g)
    y_test = torch.randint(0, 5, (200,), generator=g)
    x_train = centers[y_train] + 0.3 * torch.randn(500, 32, generator=g)
    x_test = centers[y_test] + 0.3 * torch.randn(200, 32, generator=g)
    assert knn_accuracy(x_train, y_train, x_test, y_test) >= 0.99


def test_chunking_does_not_change_the_result() -> None:
    train, labels, test = _data(n=100, m=37, dtype=torch.float32)
    full = knn_scores(train, labels, test, k=10, chunk_size=1024)
    for chunk in (1, 7, 36):  # BLAS blocking may change the last float32 bit of a similarity, nothing more
        torch.testing.assert_close(
            knn_scores(train, labels, test, k=10, chunk_size=chunk), full, rtol=0, atol=1e-6
        )
        assert torch.equal(knn_predict(train, labels, test, k=10, chunk_size=chunk), full.argmax(1))


def test_k_larger_than_train_set_is_clipped() -> None:
    train, labels, test = _data(n=12)
    clipped = knn_scores(train, labels, test, k=1000, temperature=0.2)
    torch.testing.assert_close(clipped, knn_scores(train, labels, test, k=12, temperature=0.2))
    torch.testing.assert_close(
        clipped, _bruteforce_scores(train, labels, test, 12, 0.2, int(labels.max()) + 1)
    )


def test_k1_and_tiny_temperature_give_the_nearest_neighbour_label() -> None:
    train, labels, test = _data(n=80, m=20)
    cos = torch.nn.functional.normalize(test, dim=1) @ torch.nn.functional.normalize(train, dim=1).T
    nearest = labels[cos.argmax(dim=1)]
    assert torch.equal(knn_predict(train, labels, test, k=1), nearest)
    # exp(1 / 0.002) overflows float64 without the max-shift; the vote collapses onto the nearest neighbour.
    scores = knn_scores(train.float(), labels, test.float(), k=50, temperature=0.002)
    assert torch.isfinite(scores).all()
    assert torch.equal(scores.argmax(1), nearest)


def test_scores_are_shares_and_cosine_invariant() -> None:
    train, labels, test = _data()
    scores = knn_scores(train, labels, test, k=10)
    torch.testing.assert_close(scores.sum(1), torch.ones(test.shape[0], dtype=torch.float64))
    scale = torch.rand(train.shape[0], 1, dtype=torch.float64) * 10 + 0.1
    torch.testing.assert_close(knn_scores(train * scale, labels, test * 3.0, k=10), scores)


def test_num_classes_widens_the_score_matrix_and_accuracy_matches() -> None:
    train, labels, test = _data()
    scores = knn_scores(train, labels, test, k=5, num_classes=7)
    assert scores.shape == (test.shape[0], 7)
    assert (scores[:, 4:] == 0).all()
    test_labels = knn_predict(train, labels, test, k=5).clone()
    test_labels[:5] = (test_labels[:5] + 1) % 4
    assert knn_accuracy(train, labels, test, test_labels, k=5) == pytest.approx(10 / 15)


def test_empty_test_set_gives_empty_predictions() -> None:
    train, labels, _ = _data()
    assert knn_predict(train, labels, train[:0]).shape == (0,)


@pytest.mark.parametrize(
    "case",
    [
        "labels_len",
        "features_1d",
        "nan",
        "temperature_zero",
        "temperature_neg",
        "k_zero",
        "k_neg",
        "dim",
        "range",
    ],
)
def test_bad_inputs_raise(case: str) -> None:
    train, labels, test = _data()
    kwargs: dict = {}
    if case == "labels_len":
        labels = labels[:-1]
    elif case == "features_1d":
        test = test[0]
    elif case == "nan":
        train = train.clone()
        train[3, 2] = float("nan")
    elif case == "temperature_zero":
        kwargs["temperature"] = 0.0
    elif case == "temperature_neg":
        kwargs["temperature"] = -0.1
    elif case == "k_zero":
        kwargs["k"] = 0
    elif case == "k_neg":
        kwargs["k"] = -3
    elif case == "dim":
        test = test[:, :5]
    elif case == "range":
        kwargs["num_classes"] = 2
    with pytest.raises(ValueError):
        knn_predict(train, labels, test, **kwargs)


def test_accuracy_rejects_mismatched_test_labels() -> None:
    train, labels, test = _data()
    with pytest.raises(ValueError):
        knn_accuracy(train, labels, test, labels[:3])
