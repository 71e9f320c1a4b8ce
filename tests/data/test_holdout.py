"""Held-out splits of one's own data: ``split_off`` (stratified share, disjoint, seeded) and ``match_classes``
(labels of a separately stored held-out set put in the training class order by name)."""

from __future__ import annotations

import pytest
import torch

from contrastkit.data import ImageDataset, match_classes, split_off


def numbered(counts: list[int], labelled: bool = True) -> ImageDataset:
    """Images whose one pixel is the image's index / 1000 (so every image is identifiable); class c has counts[c]."""
    n = sum(counts)
    images = (torch.arange(n, dtype=torch.float32) / 1000).view(n, 1, 1, 1)
    labels = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts)) if labelled else None
    return ImageDataset(images, labels, [f"c{k}" for k in range(len(counts))] if labelled else [], "numbered")


def ids(ds: ImageDataset) -> list[int]:
    return [round(float(v) * 1000) for v in ds.images.flatten()]


def test_split_off_holds_out_a_stratified_share_and_keeps_the_rest() -> None:
    ds = numbered([50, 30, 20])  # N = 100, f = 0.2: 20 held out, 10 / 6 / 4 per class
    rest, held = split_off(ds, 0.2, seed=0)
    assert (len(rest), len(held)) == (80, 20)
    assert held.class_counts().tolist() == [10, 6, 4] and rest.class_counts().tolist() == [40, 24, 16]
    assert sorted(ids(rest) + ids(held)) == list(range(100))  # disjoint and complete
    assert ids(held) == sorted(ids(held)) and ids(rest) == sorted(ids(rest))  # the original order is kept
    assert rest.classes == held.classes == ["c0", "c1", "c2"]
    # the labels still name the images' classes (class c holds the images with ids in its block)
    assert all(
        int(label) == (0 if i < 50 else 1 if i < 80 else 2) for i, label in zip(ids(held), held.labels, strict=True)
    )


def test_split_off_rounds_half_up_and_depends_on_the_seed_only() -> None:
    ds = numbered([5, 4, 4])  # 13 * 0.5 = 6.5 -> 7 held out
    first, again, other = (split_off(ds, 0.5, seed=s)[1] for s in (3, 3, 4))
    assert len(first) == 7 and ids(first) == ids(again)
    assert ids(first) != ids(other)  # 13-choose-7 stratified draws: two seeds agreeing would be a broken seed


def test_split_off_of_unlabelled_images_is_uniformly_random() -> None:
    ds = numbered([60], labelled=False)
    rest, held = split_off(ds, 0.25, seed=0)
    assert held.labels is None and rest.labels is None and (len(rest), len(held)) == (45, 15)
    assert sorted(ids(rest) + ids(held)) == list(range(60))
    # every image is equally likely to be held out: over 400 seeds the first 30 images are held out 3000 times in
    # expectation (hypergeometric, sd 34), so the two halves' counts differ by < 300 (4.4 sd of the difference)
    hits = torch.zeros(60)
    for seed in range(400):
        hits[torch.tensor(ids(split_off(ds, 0.25, seed=seed)[1]))] += 1
    assert float(hits.sum()) == 400 * 15 and abs(float(hits[:30].sum() - hits[30:].sum())) < 300


@pytest.mark.parametrize(
    ("fraction", "message"),
    [
        (0.0, "must lie in (0, 1)"),
        (1.0, "must lie in (0, 1)"),
        (True, "must lie in (0, 1)"),
        (0.01, "leaves 0 held-out and 10 training images; both need at least one"),
        (0.99, "leaves 10 held-out and 0 training images; both need at least one"),
    ],
)
def test_split_off_refuses_an_empty_part(fraction: float, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        split_off(numbered([10]), fraction)


def test_match_classes_relabels_by_name() -> None:
    held = ImageDataset(torch.zeros(3, 1, 2, 2), torch.tensor([0, 1, 1]), ["dog", "zebra"], "held")
    matched = match_classes(held, ["ant", "dog", "zebra"])
    assert matched.labels.tolist() == [1, 2, 2] and matched.classes == ["ant", "dog", "zebra"]
    assert match_classes(held, ["dog", "zebra"]) is held
    unlabelled = ImageDataset(torch.zeros(2, 1, 2, 2), None, [], "u")
    assert match_classes(unlabelled, ["dog"]) is unlabelled
    with pytest.raises(ValueError, match=r"has classes \['zebra'\] that the training set lacks"):
        match_classes(held, ["ant", "dog"])
