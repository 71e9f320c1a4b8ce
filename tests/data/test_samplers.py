"""ClassBalancedBatchSampler (CICL balanced batches) and long_tailed_subset (long-tailed training splits)."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from contrastkit.data import HAM10000_COUNTS, ClassBalancedBatchSampler, ImageDataset, long_tailed_subset


def _labels(sizes: list[int], seed: int = 0) -> torch.Tensor:
    y = torch.cat([torch.full((n,), c, dtype=torch.int64) for c, n in enumerate(sizes)])
    return y[torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))]


def test_every_batch_holds_batch_size_over_k_of_each_class() -> None:
    labels = _labels([200, 40, 9, 3])  # 252 samples, very imbalanced
    sampler = ClassBalancedBatchSampler(labels, 34, seed=0)
    assert sampler.per_class == 8 and sampler.batch_size == 32  # 34 // 4 = 8 per class; 2 slots unused
    batches = list(sampler)
    assert len(batches) == len(sampler) == 8  # ceil(252 / 32)
    for batch in batches:
        assert len(batch) == 32
        assert Counter(labels[batch].tolist()) == {0: 8, 1: 8, 2: 8, 3: 8}


def test_minority_classes_are_repeated_majority_not_within_a_pass() -> None:
    labels = _labels([200, 40, 9, 3])
    batches = list(ClassBalancedBatchSampler(labels, 32, seed=1))
    drawn = [i for b in batches for i in b]
    per_index = Counter(drawn)
    members = {c: set(torch.nonzero(labels == c).flatten().tolist()) for c in range(4)}
    # class 3 (3 members) fills 8 x 8 = 64 slots: every member appears 21 or 22 times (whole permutations)
    assert sorted(per_index[i] for i in members[3]) == [21, 21, 22]
    assert {per_index[i] for i in members[2]} <= {7, 8}  # 64 / 9 = 7.1 passes
    # class 0 (200 members) needs 64 slots: drawn without replacement
    assert all(per_index[i] == 1 for i in set(drawn) & members[0])
    assert len(set(drawn) & members[0]) == 64
    # class 3's 8 slots of the first batch are 2 whole permutations of its 3 members + 2 more: counts 3, 3, 2
    first = Counter(i for i in batches[0] if i in members[3])
    assert sorted(first.values()) == [2, 3, 3]


def test_deterministic_per_seed_and_epoch() -> None:
    labels = _labels([50, 20, 5])
    a = ClassBalancedBatchSampler(labels, 12, seed=3)
    b = ClassBalancedBatchSampler(labels, 12, seed=3)
    assert list(a) == list(b)
    assert list(a) == list(a)  # iterating again replays the epoch
    first = list(a)
    a.set_epoch(1)
    b.set_epoch(1)
    assert list(a) == list(b) != first
    c = ClassBalancedBatchSampler(labels, 12, seed=4)
    assert list(c) != first
    # (seed 0, epoch 1) and (seed 1, epoch 0) are different streams
    d, e = ClassBalancedBatchSampler(labels, 12, seed=0), ClassBalancedBatchSampler(labels, 12, seed=1)
    d.set_epoch(1)
    assert list(d) != list(e)


def test_num_batches_labels_device_and_dataloader() -> None:
    labels = _labels([30, 10, 2])
    sampler = ClassBalancedBatchSampler(labels, 9, num_batches=5, seed=0)
    assert len(list(sampler)) == 5
    data = TensorDataset(torch.arange(len(labels)), labels)
    loader = DataLoader(data, batch_sampler=sampler)
    for index, y in loader:
        assert index.shape == (9,)
        assert torch.bincount(y, minlength=3).tolist() == [3, 3, 3]
        assert torch.equal(labels[index], y)
    # only the classes present count: ids 0, 5, 7 give K = 3
    sparse = torch.tensor([0, 5, 7, 5, 0, 7, 7])
    for batch in ClassBalancedBatchSampler(sparse, 6, seed=0):
        assert sorted(sparse[batch].tolist()) == [0, 0, 5, 5, 7, 7]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"labels": [0, 1, 1], "batch_size": 4}, "torch.Tensor"),
        ({"labels": torch.tensor([[0, 1]]), "batch_size": 4}, "1-D"),
        ({"labels": torch.tensor([0.0, 1.0]), "batch_size": 4}, "integer"),
        ({"labels": torch.tensor([], dtype=torch.int64), "batch_size": 4}, "non-empty"),
        ({"labels": torch.tensor([0, -1]), "batch_size": 4}, ">= 0"),
        ({"labels": torch.tensor([0, 1, 2]), "batch_size": 2}, "number of classes"),
        ({"labels": torch.tensor([0, 1]), "batch_size": 2.0}, "batch_size"),
        ({"labels": torch.tensor([0, 1]), "batch_size": 2, "num_batches": 0}, "num_batches"),
        ({"labels": torch.tensor([0, 1]), "batch_size": 2, "seed": -1}, "seed"),
    ],
)
def test_bad_input_raises(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ClassBalancedBatchSampler(**kwargs)
    with pytest.raises(ValueError, match="epoch"):
        ClassBalancedBatchSampler(torch.tensor([0, 1]), 2).set_epoch(-1)


def _dataset(per_class: int, num_classes: int) -> ImageDataset:
    labels = _labels([per_class] * num_classes, seed=5)
    images = torch.rand(len(labels), 1, 4, 4)
    images[:, 0, 0, 0] = torch.arange(len(labels)) / len(labels)  # a unique tag per image
    return ImageDataset(images, labels, [f"c{c}" for c in range(num_classes)], "toy")


def test_long_tailed_subset_counts_seeding_and_order() -> None:
    data = _dataset(40, 5)
    counts = [40, 20, 7, 1]  # class 4 dropped
    sub = long_tailed_subset(data, counts, seed=0)
    assert torch.bincount(sub.labels, minlength=4).tolist() == counts
    assert sub.classes == ["c0", "c1", "c2", "c3"] and len(sub) == 68
    tags = sub.images[:, 0, 0, 0]
    assert torch.all(tags[1:] > tags[:-1])  # original order kept
    again = long_tailed_subset(data, counts, seed=0)
    assert torch.equal(again.images, sub.images) and torch.equal(again.labels, sub.labels)
    other = long_tailed_subset(data, counts, seed=1)
    assert torch.bincount(other.labels, minlength=4).tolist() == counts
    assert not torch.equal(other.images, sub.images)
    # every chosen image is one of the dataset's images with its own label
    position = {round(float(t), 6): i for i, t in enumerate(data.images[:, 0, 0, 0])}
    for img, y in zip(sub.images, sub.labels, strict=True):
        assert data.labels[position[round(float(img[0, 0, 0]), 6)]] == y


def test_long_tailed_subset_errors_and_ham_profile() -> None:
    data = _dataset(10, 3)
    with pytest.raises(ValueError, match="only 10"):
        long_tailed_subset(data, [11, 2, 1])
    with pytest.raises(ValueError, match="4 classes"):
        long_tailed_subset(data, [1, 1, 1, 1])
    unlabelled = ImageDataset(torch.rand(4, 1, 4, 4), None, ["a"], "u")
    with pytest.raises(ValueError, match="labelled"):
        long_tailed_subset(unlabelled, [1])
    assert HAM10000_COUNTS == (6705, 1113, 1099, 514, 327, 142, 115)
    assert round(HAM10000_COUNTS[0] / HAM10000_COUNTS[-1], 1) == 58.3
