"""Stratified splitters: exact counts, >= 1 per class, seeded determinism, long-tail profiles, errors."""

from __future__ import annotations

import math

import pytest
import torch

from contrastkit.data.splits import (
    label_fraction_indices,
    long_tailed_counts,
    long_tailed_indices,
    round_half_up,
    scale_profile,
    stratified_split,
)

HAM10000 = [6705, 1113, 1099, 514, 327, 142, 115]


def _labels(sizes: list[int], seed: int = 0) -> torch.Tensor:
    """Labels with sizes[c] samples of class c, in a shuffled order."""
    y = torch.cat([torch.full((n,), c, dtype=torch.int64) for c, n in enumerate(sizes)])
    return y[torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))]


@pytest.mark.parametrize(
    ("s", "expected", "total"),
    [
        (0.1, [671, 111, 110, 51, 33, 14, 12], 1002),
        (0.25, [1676, 278, 275, 129, 82, 36, 29], 2505),
        (0.5, [3353, 557, 550, 257, 164, 71, 58], 5010),
        (0.8949, [6000, 996, 983, 460, 293, 127, 103], 8962),
    ],
)
def test_scale_profile_matches_datasets_md_table(s: float, expected: list[int], total: int) -> None:
    counts = scale_profile(HAM10000, s)
    assert counts == expected
    assert sum(counts) == total


def test_round_half_up_is_exact_on_halves() -> None:
    assert [round_half_up(x) for x in (0.5, 1.5, 2.5, 3352.5, 2.4999, -0.5)] == [1, 2, 3, 3353, 2, 0]


def test_scale_profile_errors() -> None:
    with pytest.raises(ValueError, match="scale s"):
        scale_profile(HAM10000, 0.0)
    with pytest.raises(ValueError, match="profile"):
        scale_profile([10, -1], 0.5)


def test_long_tailed_counts_closed_form() -> None:
    counts = long_tailed_counts(100, 10, 10.0)
    reference = [math.floor(100 * 10.0 ** (-c / 9) + 0.5) for c in range(10)]
    assert counts == reference
    assert counts[0] == 100 and counts[-1] == 10
    assert all(a >= b for a, b in zip(counts, counts[1:], strict=False))
    assert long_tailed_counts(50, 7, 1.0) == [50] * 7
    assert long_tailed_counts(50, 1, 10.0) == [50]


def test_long_tailed_counts_errors() -> None:
    with pytest.raises(ValueError, match="imbalance_ratio"):
        long_tailed_counts(100, 10, 0.5)
    with pytest.raises(ValueError, match="last class empty"):
        long_tailed_counts(10, 5, 1000.0)
    with pytest.raises(ValueError, match="num_classes"):
        long_tailed_counts(10, 0, 2.0)


def test_long_tailed_indices_exact_counts_and_determinism() -> None:
    labels = _labels([60, 60, 60, 60, 60])
    counts = [50, 20, 7, 0]
    idx = long_tailed_indices(labels, counts, seed=3)
    assert idx.dtype == torch.int64 and idx.unique().numel() == idx.numel() == 77
    assert torch.equal(idx, idx.sort().values)
    assert torch.bincount(labels[idx], minlength=5).tolist() == [50, 20, 7, 0, 0]
    assert torch.equal(idx, long_tailed_indices(labels, counts, seed=3))
    assert not torch.equal(idx, long_tailed_indices(labels, counts, seed=4))


def test_long_tailed_indices_exclude_and_errors() -> None:
    labels = _labels([30, 30])
    train = long_tailed_indices(labels, [20, 5], seed=0)
    val = long_tailed_indices(labels, [10, 10], seed=0, exclude=train)
    assert not set(train.tolist()) & set(val.tolist())
    with pytest.raises(ValueError, match="class 0 has only 10 eligible samples but 11"):
        long_tailed_indices(labels, [11, 10], seed=0, exclude=train)
    with pytest.raises(ValueError, match="class 2 has only 0"):
        long_tailed_indices(labels, [1, 1, 1])
    with pytest.raises(ValueError, match=">= 0"):
        long_tailed_indices(torch.tensor([0, -1, 1]), [1])


def test_label_fraction_exact_counts_with_largest_remainder() -> None:
    labels = _labels([1000, 500, 250])
    idx = label_fraction_indices(labels, 0.01, seed=0)
    # ideal 10 / 5 / 2.5, total round(17.5) = 18: the leftover unit goes to class 2
    assert torch.bincount(labels[idx]).tolist() == [10, 5, 3]


def test_label_fraction_keeps_at_least_one_per_class() -> None:
    labels = _labels([100, 50, 3, 1])
    idx = label_fraction_indices(labels, 0.1, seed=1)
    assert torch.bincount(labels[idx], minlength=4).tolist() == [10, 5, 1, 1]
    assert torch.equal(label_fraction_indices(labels, 1.0, seed=5), torch.arange(154))


def test_label_fraction_seeded_determinism_and_errors() -> None:
    labels = _labels([40, 40, 40])
    a = label_fraction_indices(labels, 0.25, seed=7)
    assert torch.equal(a, label_fraction_indices(labels, 0.25, seed=7))
    assert not torch.equal(a, label_fraction_indices(labels, 0.25, seed=8))
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
            label_fraction_indices(labels, bad)
    with pytest.raises(ValueError, match="1-D"):
        label_fraction_indices(labels.view(3, 40), 0.5)
    with pytest.raises(ValueError, match="integer"):
        label_fraction_indices(labels.float(), 0.5)


def test_stratified_split_fractions_exact() -> None:
    labels = _labels([40, 20, 12])
    train, test = stratified_split(labels, [0.75, 0.25], seed=0)
    assert (len(train), len(test)) == (54, 18)
    assert torch.bincount(labels[train]).tolist() == [30, 15, 9]
    assert torch.bincount(labels[test]).tolist() == [10, 5, 3]
    assert sorted(torch.cat([train, test]).tolist()) == list(range(72))


def test_stratified_split_sizes_are_proportional_within_one() -> None:
    for seed in range(3):
        labels = torch.randint(0, 7, (503,), generator=torch.Generator().manual_seed(seed))
        n_c = torch.bincount(labels, minlength=7).double()
        parts = stratified_split(labels, [300, 100, 50], seed=seed)
        assert [len(p) for p in parts] == [300, 100, 50]
        assert len(set(torch.cat(parts).tolist())) == 450
        for part, size in zip(parts, (300, 100, 50), strict=True):
            got = torch.bincount(labels[part], minlength=7).double()
            assert (got - n_c * size / 503).abs().max() < 1.0 + 1e-9


def test_stratified_split_determinism_and_errors() -> None:
    labels = _labels([30, 30, 30])
    a = stratified_split(labels, [0.5, 0.5], seed=1)
    b = stratified_split(labels, [0.5, 0.5], seed=1)
    c = stratified_split(labels, [0.5, 0.5], seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])
    with pytest.raises(ValueError, match="sum to at most 1"):
        stratified_split(labels, [0.7, 0.7])
    with pytest.raises(ValueError, match="sum to at most 90"):
        stratified_split(labels, [80, 20])
    with pytest.raises(ValueError, match="all ints"):
        stratified_split(labels, [50, 0.5])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_splitters_return_indices_on_the_labels_device() -> None:
    labels = _labels([20, 20]).cuda()
    assert label_fraction_indices(labels, 0.5).device == labels.device
    assert long_tailed_indices(labels, [5, 2]).device == labels.device
    train, test = stratified_split(labels, [0.5, 0.5])
    assert train.device == labels.device
    assert torch.bincount(labels[train]).tolist() == [10, 10]
