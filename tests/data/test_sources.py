"""Data sources: visiting orders that are functions of (seed, epoch) only, the three samplers, unlabelled items."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from contrastkit.data import (
    Batch,
    DataSource,
    ImageDataset,
    TensorSource,
    epoch_order,
    labelled_unlabelled,
)


def images(n: int) -> Tensor:
    return torch.rand(n, 1, 4, 4, generator=torch.Generator().manual_seed(n))


def epoch_batches(source: TensorSource, epoch: int, batch_size: int, seed: int) -> list[Tensor]:
    return [source.batch_indices(epoch, i, batch_size, seed) for i in range(source.num_batches(batch_size))]


def same_batches(a: list[Tensor], b: list[Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


# --------------------------------------------------------------------------------------------- epoch_order


def test_epoch_order_is_a_permutation_of_seed_and_epoch_only() -> None:
    order = epoch_order(50, seed=3, epoch=2)
    assert torch.equal(order.sort().values, torch.arange(50))
    torch.manual_seed(123)  # the global generator plays no part
    assert torch.equal(epoch_order(50, seed=3, epoch=2), order)
    assert not torch.equal(epoch_order(50, seed=3, epoch=3), order)
    assert not torch.equal(epoch_order(50, seed=4, epoch=2), order)


# --------------------------------------------------------------------------------------- shuffle sampler


def test_shuffle_order_depends_only_on_seed_and_epoch() -> None:
    x = images(37)
    a, b = TensorSource(x), TensorSource(x.clone())
    # b visits epochs in another order and with another batch size in between (the cache must not leak)
    epoch_batches(b, 1, 8, 0)
    epoch_batches(b, 0, 5, 0)
    torch.manual_seed(99)
    for epoch in (0, 1, 2):
        assert same_batches(epoch_batches(a, epoch, 8, 0), epoch_batches(b, epoch, 8, 0))
    assert not same_batches(epoch_batches(a, 0, 8, 0), epoch_batches(a, 1, 8, 0))
    assert not same_batches(epoch_batches(a, 0, 8, 0), epoch_batches(a, 0, 8, 1))
    # the order is the epoch's permutation, cut into batches (so the batch size does not change it)
    order = epoch_order(37, seed=0, epoch=1)
    assert torch.equal(torch.cat(epoch_batches(a, 1, 8, 0)), order[:32])
    assert torch.equal(torch.cat(epoch_batches(a, 1, 16, 0)), order[:32])


def test_drop_last_drops_the_tail_and_false_keeps_it() -> None:
    x = images(37)
    dropped = TensorSource(x)
    assert dropped.num_batches(8) == 4
    batches = epoch_batches(dropped, 0, 8, 0)
    assert all(len(b) == 8 for b in batches) and len(torch.cat(batches).unique()) == 32
    kept = TensorSource(x, drop_last=False)
    assert kept.num_batches(8) == math.ceil(37 / 8) == 5
    batches = epoch_batches(kept, 0, 8, 0)
    assert [len(b) for b in batches] == [8, 8, 8, 8, 5]
    assert torch.equal(torch.cat(batches), epoch_order(37, 0, 0))  # every item once, the tail last
    assert TensorSource(images(32), drop_last=False).num_batches(8) == 4  # no empty tail batch


def test_sequential_sampler_visits_in_index_order_every_epoch() -> None:
    source = TensorSource(images(10), sampler="sequential", drop_last=False)
    for epoch in (0, 3):
        assert [b.tolist() for b in epoch_batches(source, epoch, 4, seed=7)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert TensorSource(images(10), sampler="sequential").num_batches(4) == 2


# --------------------------------------------------------------------------------- class-balanced sampler


def test_class_balanced_batches_hold_equal_counts_and_ignore_unlabelled_items() -> None:
    labels = torch.tensor([0] * 30 + [1] * 6 + [2] * 3 + [-1] * 21)
    labels = labels[torch.randperm(60, generator=torch.Generator().manual_seed(0))]
    source = TensorSource(images(60), labels, sampler="class_balanced")
    batches = epoch_batches(source, 0, 10, seed=5)  # 10 // 3 classes = 3 of each per batch
    assert len(batches) == source.num_batches(10) == math.ceil(39 / 9)
    for indices in batches:
        assert len(indices) == 9
        picked = source.fetch(indices).labels
        assert picked is not None and (picked >= 0).all()  # never an unlabelled item
        assert torch.bincount(picked, minlength=3).tolist() == [3, 3, 3]
    # a function of (seed, epoch) only
    again = TensorSource(images(60), labels.clone(), sampler="class_balanced")
    torch.manual_seed(1)
    assert same_batches(epoch_batches(again, 0, 10, seed=5), batches)
    assert not same_batches(epoch_batches(source, 1, 10, seed=5), batches)
    assert not same_batches(epoch_batches(source, 0, 10, seed=6), batches)


# ------------------------------------------------------------------------------------------------- fetch


def test_fetch_gives_the_rows_of_every_field() -> None:
    x, y = images(12), torch.arange(12) % 3
    domains, masks = torch.arange(12) % 2, torch.randint(0, 4, (12, 4, 4))
    source = TensorSource(x, y, domains=domains, masks=masks)
    idx = torch.tensor([7, 0, 11])
    batch = source.fetch(idx)
    assert isinstance(batch, Batch) and len(batch) == 3 and batch.views == ()
    assert batch.images is not None and torch.equal(batch.images, x[idx])
    for got, whole in ((batch.labels, y), (batch.domains, domains), (batch.masks, masks)):
        assert got is not None and torch.equal(got, whole[idx])
    assert batch.indices is not None and torch.equal(batch.indices, idx)
    unlabelled = TensorSource(x).fetch(idx)
    assert unlabelled.labels is None and unlabelled.domains is None and unlabelled.masks is None


def test_sequential_with_the_tail_covers_every_item_in_index_order() -> None:
    source = TensorSource(images(10), sampler="sequential", drop_last=False)
    batches = [source.fetch(source.batch_indices(0, i, 4, seed=0)) for i in range(source.num_batches(4))]
    assert [len(b) for b in batches] == [4, 4, 2]
    assert torch.equal(torch.cat([b.indices for b in batches if b.indices is not None]), torch.arange(10))
    assert torch.equal(torch.cat([b.images for b in batches if b.images is not None]), source.images)


def test_from_dataset_and_the_protocol() -> None:
    ds = ImageDataset(images(6), torch.tensor([0, 1, 0, 1, 0, 1]), ["a", "b"], "toy")
    source = TensorSource.from_dataset(ds, sampler="sequential")
    assert isinstance(source, DataSource) and len(source) == 6 and source.sampler == "sequential"
    assert source.images is ds.images and source.labels is ds.labels
    assert TensorSource(images(3)).labelled is None


# ------------------------------------------------------------------------------------- labelled_unlabelled


def test_labelled_unlabelled_keeps_labels_only_at_the_given_indices() -> None:
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    source = labelled_unlabelled(images(8), y, [1, 4, 6], sampler="sequential")
    assert source.labels is not None and source.labels.tolist() == [-1, 1, -1, -1, 1, -1, 0, -1]
    assert source.labelled is not None and source.labelled.tolist() == [False, True] + [False] * 2 + [True, False] * 2
    assert y.tolist() == [0, 1, 2, 0, 1, 2, 0, 1]  # the caller's labels are untouched
    balanced = labelled_unlabelled(images(8), y, torch.tensor([0, 1, 3, 4]), sampler="class_balanced")
    for indices in epoch_batches(balanced, 0, 4, 0):
        assert set(indices.tolist()) <= {0, 1, 3, 4}


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: TensorSource(images(4), sampler="random"), "sampler must be one of shuffle, sequential, class_"),
        (lambda: TensorSource(images(4), sampler="class_balanced"), "sampler='class_balanced' needs labelled items"),
        (
            lambda: TensorSource(images(4), torch.full((4,), -1), sampler="class_balanced"),
            "sampler='class_balanced' needs labelled items",
        ),
        (lambda: TensorSource(images(4), torch.arange(3)), "labels must be a tensor with one row per image (4)"),
        (lambda: TensorSource(images(4), domains=[0, 1, 0, 1]), "domains must be a tensor with one row per image"),
        (lambda: TensorSource(images(4), masks=torch.zeros(5, 4, 4)), "masks must be a tensor with one row per"),
        (lambda: TensorSource(torch.rand(0, 1, 4, 4)), "images"),
        (lambda: labelled_unlabelled(images(4), torch.arange(4), [0, 4]), "labelled_indices must lie in [0, 4)"),
        (lambda: labelled_unlabelled(images(4), torch.arange(4), [-1]), "labelled_indices must lie in [0, 4)"),
    ],
)
def test_bad_sources_raise_one_line_errors(make: object, match: str) -> None:
    with pytest.raises(ValueError) as info:
        make()  # type: ignore[operator]
    assert match in str(info.value) and "\n" not in str(info.value)
