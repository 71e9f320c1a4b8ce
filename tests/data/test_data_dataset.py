"""ImageDataset: validation, indexing (int -> sample; slice / indices / mask -> subset), properties."""

from __future__ import annotations

import pytest
import torch

from contrastkit.data import ImageDataset


def _ds(n: int = 6, labelled: bool = True) -> ImageDataset:
    images = torch.rand(n, 2, 3, 4)
    labels = torch.arange(n, dtype=torch.int64) % 3 if labelled else None
    return ImageDataset(images, labels, ["a", "b", "c"] if labelled else [], "toy")


def test_properties_and_counts() -> None:
    ds = _ds()
    assert len(ds) == 6 and ds.num_classes == 3 and ds.channels == 2 and ds.image_size == (3, 4)
    assert ds.class_counts().tolist() == [2, 2, 2]
    assert "6 images" in repr(ds) and "2x3x4" in repr(ds) and len(repr(ds)) < 200


@pytest.mark.parametrize(
    ("images", "labels", "classes", "match"),
    [
        (torch.rand(2, 3, 3), None, [], "must have 4 dimensions"),
        (torch.randint(0, 255, (2, 1, 3, 3)), None, [], "floating-point"),
        (torch.rand(2, 1, 3, 3) * 2, None, [], r"must lie in \[0, 1\]"),
        (torch.rand(2, 1, 3, 3), torch.tensor([0, 3]), ["a", "b", "c"], r"must lie in \[0, 3\)"),
        (torch.rand(2, 1, 3, 3), torch.tensor([0, 1], dtype=torch.int32), ["a", "b"], "int64"),
        (torch.rand(2, 1, 3, 3), torch.tensor([0, 1, 1]), ["a", "b"], "3 entries but there are 2"),
        (torch.rand(2, 1, 3, 3), torch.tensor([0, 0]), [], "needs class names"),
        (torch.rand(2, 1, 3, 3), torch.tensor([0, 0]), ["a", "a"], "unique"),
    ],
)
def test_validation_errors_are_one_line(
    images: torch.Tensor, labels: torch.Tensor | None, classes: list[str], match: str
) -> None:
    with pytest.raises(ValueError, match=match) as info:
        ImageDataset(images, labels, classes, "bad")
    assert "\n" not in str(info.value)


def test_int_index_returns_sample_like_a_torch_dataset() -> None:
    ds = _ds()
    image, label = ds[4]
    assert torch.equal(image, ds.images[4]) and int(label) == 1
    image, label = ds[-1]
    assert torch.equal(image, ds.images[5]) and int(label) == 2
    with pytest.raises(IndexError):
        ds[6]
    _, label = _ds(labelled=False)[0]
    assert int(label) == -1
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch[0].shape == (4, 2, 3, 4) and batch[1].tolist() == [0, 1, 2, 0]


def test_slice_is_a_view_and_indices_gather() -> None:
    ds = _ds()
    part = ds[1:4]
    assert isinstance(part, ImageDataset) and len(part) == 3
    assert part.images.data_ptr() == ds.images[1].data_ptr()  # no copy
    assert part.labels.tolist() == [1, 2, 0] and part.classes == ds.classes and part.name == "toy"
    picked = ds[torch.tensor([5, 0, 5])]
    assert torch.equal(picked.images, ds.images[[5, 0, 5]]) and picked.labels.tolist() == [2, 0, 2]
    assert ds[[2, 3]].labels.tolist() == [2, 0]
    masked = ds[ds.labels == 1]
    assert masked.labels.tolist() == [1, 1] and torch.equal(masked.images, ds.images[[1, 4]])
    assert len(ds[torch.tensor([], dtype=torch.int64)]) == 0


def test_subset_errors() -> None:
    ds = _ds()
    with pytest.raises(IndexError, match="indices must lie"):
        ds[[0, 6]]
    with pytest.raises(ValueError, match="boolean mask"):
        ds[torch.tensor([True, False])]
    with pytest.raises(ValueError, match="1-D sequence of ints"):
        ds[torch.tensor([0.0, 1.0])]
    with pytest.raises(ValueError, match="not a bool"):
        ds[True]


def test_unlabelled_has_no_counts() -> None:
    ds = _ds(labelled=False)
    assert ds.labels is None and ds.num_classes == 0 and not ds.is_labelled
    assert ds[1:3].labels is None
    with pytest.raises(ValueError, match="unlabelled"):
        ds.class_counts()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_to_cuda_and_subset_on_device() -> None:
    ds = _ds().to("cuda")
    assert ds.images.is_cuda and ds.labels.is_cuda
    sub = ds[torch.tensor([0, 2])]
    assert sub.images.is_cuda and sub.labels.tolist() == [0, 2]
    assert ds.class_counts().tolist() == [2, 2, 2]
