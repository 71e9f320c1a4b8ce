"""GRACE node-classification protocol: accuracy on separable / random embeddings, seeded shared splits, paired
differences, the small-class fold fallback and bad input."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from contrastkit.evaluate.node_classification import (
    GRACE_C_GRID,
    REDUCED_C_GRID,
    NodeClassificationResult,
    node_classification,
    paired_difference,
)

SMALL_GRID = (0.25, 4.0, 64.0)


def _balanced_labels(num_nodes: int, num_classes: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.arange(num_nodes) % num_classes)[torch.randperm(num_nodes, generator=g)]


def _separable(labels: torch.Tensor, num_classes: int, dim: int, seed: int, noise: float = 0.05) -> torch.Tensor:
    """Class ``c`` sits near the basis vector ``e_c`` (well separated after L2 normalisation)."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.eye(num_classes, dim)
    return centers[labels] + noise * torch.randn(labels.numel(), dim, generator=g)


def _random(num_nodes: int, dim: int, seed: int) -> torch.Tensor:
    return torch.randn(num_nodes, dim, generator=torch.Generator().manual_seed(seed))


def test_default_grids() -> None:
    assert GRACE_C_GRID == tuple(2.0**k for k in range(-10, 10)) and len(GRACE_C_GRID) == 20
    assert REDUCED_C_GRID == (0.25, 1.0, 4.0, 16.0, 64.0, 256.0)


def test_separable_embeddings_are_classified_almost_perfectly() -> None:
    labels = _balanced_labels(1_000, 5, seed=0)  # ~20 training nodes per class
    result = node_classification(_separable(labels, 5, 16, seed=1), labels, repeats=3, c_grid=SMALL_GRID)
    assert isinstance(result, NodeClassificationResult)
    assert len(result.accuracies) == 3 and min(result.accuracies) >= 0.98
    assert result.mean == pytest.approx(float(np.mean(result.accuracies)))
    assert result.std == pytest.approx(float(np.std(result.accuracies)))
    assert result.train_fraction == 0.1 and result.c_grid == SMALL_GRID
    assert result.folds_used == (5, 5, 5) and all(c in SMALL_GRID for c in result.chosen_c)


def test_random_embeddings_score_chance() -> None:
    num_classes = 4
    labels = _balanced_labels(2_000, num_classes, seed=2)
    result = node_classification(_random(2_000, 16, seed=3), labels, repeats=3, c_grid=SMALL_GRID)
    # 1,800 test nodes per split: the chance level 1/K has a standard error of ~0.01 per split.
    assert abs(result.mean - 1 / num_classes) < 0.04


def test_rows_are_l2_normalised_when_asked() -> None:
    labels = _balanced_labels(300, 3, seed=4)
    z = _random(300, 8, seed=5) + 0.8 * torch.eye(3, 8)[labels]
    scales = torch.rand(300, 1, generator=torch.Generator().manual_seed(6)) * 100 + 0.01
    plain = node_classification(z, labels, repeats=2, c_grid=SMALL_GRID)
    assert node_classification(z * scales, labels, repeats=2, c_grid=SMALL_GRID).accuracies == plain.accuracies
    unnormalised = node_classification(z * scales, labels, repeats=2, c_grid=SMALL_GRID, normalize=False)
    assert unnormalised.accuracies != plain.accuracies  # the row scales matter without normalisation


def test_splits_depend_only_on_seed_and_repeat() -> None:
    labels = _balanced_labels(400, 4, seed=7)
    encoder_a, encoder_b = _separable(labels, 4, 12, seed=8, noise=0.4), _random(400, 12, seed=9)
    a = node_classification(encoder_a, labels, repeats=4, seed=3, c_grid=SMALL_GRID)
    b = node_classification(encoder_b, labels, repeats=4, seed=3, c_grid=SMALL_GRID)
    assert a.split_fingerprint == b.split_fingerprint  # two encoders, the same splits
    other_seed = node_classification(encoder_a, labels, repeats=4, seed=4, c_grid=SMALL_GRID)
    assert other_seed.split_fingerprint != a.split_fingerprint
    assert other_seed.accuracies != a.accuracies
    fewer = node_classification(encoder_a, labels, repeats=2, seed=3, c_grid=SMALL_GRID)
    assert fewer.accuracies == a.accuracies[:2]  # split r is the same whatever the number of repeats


def test_paired_difference() -> None:
    labels = _balanced_labels(500, 4, seed=10)
    good = node_classification(_separable(labels, 4, 12, seed=11, noise=0.3), labels, repeats=5, c_grid=SMALL_GRID)
    bad = node_classification(_random(500, 12, seed=12), labels, repeats=5, c_grid=SMALL_GRID)
    assert paired_difference(good, good) == (0.0, 0.0)
    diffs = np.asarray(good.accuracies) - np.asarray(bad.accuracies)
    mean, standard_error = paired_difference(good, bad)
    assert mean == pytest.approx(diffs.mean()) and mean > 0.5
    assert standard_error == pytest.approx(diffs.std(ddof=1) / math.sqrt(5))
    other = node_classification(_random(500, 12, seed=12), labels, repeats=5, seed=1, c_grid=SMALL_GRID)
    with pytest.raises(ValueError, match="different splits") as info:
        paired_difference(good, other)
    assert "\n" not in str(info.value)
    one = node_classification(_random(500, 12, seed=12), labels, repeats=1, c_grid=SMALL_GRID)
    with pytest.raises(ValueError, match="different splits"):
        paired_difference(good, one)
    mean_one, se_one = paired_difference(one, one)
    assert mean_one == 0.0 and math.isnan(se_one)


@pytest.mark.parametrize(("train_fraction", "repeats"), [(0.1, 6), (0.5, 6)])
def test_folds_fall_back_on_a_tiny_graph(train_fraction: float, repeats: int) -> None:
    num_nodes, num_classes = 115, 12
    labels = _balanced_labels(num_nodes, num_classes, seed=13)
    z = _separable(labels, num_classes, 16, seed=14, noise=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no sklearn warning about too small classes
        result = node_classification(z, labels, train_fraction=train_fraction, repeats=repeats, c_grid=SMALL_GRID)
    num_train = round(train_fraction * num_nodes)
    expected = []
    for repeat in range(repeats):  # the documented split rule
        train = np.random.default_rng([0, repeat]).permutation(num_nodes)[:num_train]
        smallest = int(np.unique(labels.numpy()[train], return_counts=True)[1].min())
        expected.append(min(5, smallest) if smallest >= 2 else 0)
    assert result.folds_used == tuple(expected)
    assert any(f < 5 for f in result.folds_used)  # the fallback is exercised
    for folds, c in zip(result.folds_used, result.chosen_c, strict=True):
        assert c == 1.0 if folds == 0 else c in SMALL_GRID
    if train_fraction == 0.1:
        assert result.folds_used == (0,) * repeats  # 12 training nodes for 12 classes: no grid
    assert len(result.accuracies) == repeats and 0 <= result.mean <= 1


def test_bad_input_is_a_one_line_error() -> None:
    z, labels = torch.randn(50, 4), _balanced_labels(50, 2, seed=15)
    cases = [
        (lambda: node_classification(z, labels[:40]), "must match"),
        (lambda: node_classification(z, labels, train_fraction=0.0), r"\(0, 1\)"),
        (lambda: node_classification(z, labels, train_fraction=1.0), r"\(0, 1\)"),
        (lambda: node_classification(z, labels, train_fraction=1.5), r"\(0, 1\)"),
        (lambda: node_classification(z, torch.zeros(50, dtype=torch.long)), "raise train_fraction"),
        (lambda: node_classification(z, labels.float()), "integer class ids"),
        (lambda: node_classification(z[:, 0], labels), "dimension"),
        (lambda: node_classification(z, labels, c_grid=[]), "c_grid"),
        (lambda: node_classification(z, labels, folds=1), "folds"),
        (lambda: node_classification(torch.full((50, 4), math.nan), labels), "NaN"),
        (lambda: node_classification(z, labels, train_fraction=0.01), "training nodes"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message) as info:
            call()
        assert "\n" not in str(info.value)
