"""``Batch`` and ``as_batch``: every input kind a loader yields, the per-row operations, one-line errors."""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch
from torch import Tensor

from contrastkit.data import Batch, as_batch


class _Graph:
    """A stand-in for a graph object: ``to`` records the device it was asked for."""

    def __init__(self) -> None:
        self.moved_to: list[Any] = []

    def to(self, device: Any) -> _Graph:
        self.moved_to.append(device)
        return self


def full_batch(n: int = 6) -> Batch:
    g = torch.Generator().manual_seed(0)
    return Batch(
        images=torch.rand(n, 1, 4, 4, generator=g),
        views=(torch.rand(n, 1, 4, 4, generator=g), torch.rand(n, 1, 4, 4, generator=g)),
        labels=torch.arange(n),
        indices=torch.arange(n) + 100,
        domains=torch.arange(n) % 2,
        masks=torch.randint(0, 3, (n, 4, 4), generator=g),
        geometry=(torch.rand(n, 4, generator=g), torch.rand(n, 4, generator=g)),
        graph=_Graph(),
    )


# ------------------------------------------------------------------------------------------------ as_batch


def test_a_batch_is_returned_as_is() -> None:
    batch = full_batch()
    assert as_batch(batch) is batch


def test_a_tensor_is_images() -> None:
    x = torch.rand(3, 1, 4, 4)
    batch = as_batch(x)
    assert batch.images is x and batch.labels is None and batch.views == () and len(batch) == 3


@pytest.mark.parametrize("kind", [tuple, list])
def test_a_sequence_is_images_and_labels(kind: type) -> None:
    x, y = torch.rand(3, 1, 4, 4), torch.tensor([2, 0, 1])
    batch = as_batch(kind([x, y]))
    assert batch.images is x and batch.labels is y and batch.views == ()
    # one entry: images only; further entries (paths, other targets) are ignored
    assert as_batch(kind([x])).labels is None
    extra = as_batch(kind([x, y, ["a.png", "b.png", "c.png"]]))
    assert extra.images is x and extra.labels is y


def test_a_second_entry_that_is_not_a_tensor_is_not_labels() -> None:
    x = torch.rand(3, 1, 4, 4)
    batch = as_batch((x, ["a.png", "b.png", "c.png"]))
    assert batch.images is x and batch.labels is None


def test_two_tensors_are_images_and_labels_not_views() -> None:
    """The behaviour change of the new API: a ``(v1, v2)`` tuple is read as (images, labels)."""
    v1, v2 = torch.rand(3, 1, 4, 4), torch.rand(3, 1, 4, 4)
    batch = as_batch((v1, v2))
    assert batch.images is v1 and batch.labels is v2 and batch.views == ()
    ready = Batch(views=(v1, v2), labels=torch.arange(3))
    assert ready.images is None and ready.views[1] is v2 and len(ready) == 3


def test_a_mapping_of_fields() -> None:
    v1, v2, y = torch.rand(3, 1, 4, 4), torch.rand(3, 1, 4, 4), torch.arange(3)
    batch = as_batch({"views": [v1, v2], "labels": y})
    assert isinstance(batch.views, tuple) and batch.views[0] is v1 and batch.views[1] is v2
    assert batch.labels is y and batch.images is None and len(batch) == 3
    assert as_batch({}) == Batch()


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ("no", "a batch must be images [B, C, H, W], a tuple (images, labels), a mapping of Batch fields or a Batch"),
        (3, "got int"),
        ((), "got tuple"),
        (("images", torch.arange(3)), "got tuple"),
        ([None, torch.arange(3)], "got list"),
        ({"image": torch.rand(2, 1, 4, 4)}, "a batch mapping may only hold the keys images, views, labels"),
        ({"images": torch.rand(2, 1, 4, 4), "paths": [], "extra": 1}, "got ['extra', 'paths']"),
    ],
)
def test_bad_inputs_raise_one_line_errors(obj: object, match: str) -> None:
    with pytest.raises(ValueError, match=re.escape(match)) as info:
        as_batch(obj)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------------ Batch


def test_len_is_the_rows_of_images_then_views_then_labels() -> None:
    assert len(Batch()) == 0
    assert len(Batch(labels=torch.arange(5))) == 5
    assert len(Batch(views=(torch.rand(4, 1, 2, 2),), labels=torch.arange(4))) == 4
    assert len(Batch(images=torch.rand(7, 1, 2, 2))) == 7
    assert len(Batch(indices=torch.arange(3))) == 0  # only images, views and labels count


def test_rows_cuts_every_per_row_field_and_keeps_the_graph() -> None:
    batch = full_batch(6)
    part = batch.rows(slice(2, 5))
    assert len(part) == 3
    tensors: list[tuple[Tensor | None, Tensor | None]] = [
        (part.images, batch.images),
        (part.labels, batch.labels),
        (part.indices, batch.indices),
        (part.domains, batch.domains),
        (part.masks, batch.masks),
    ]
    tensors += list(zip(part.views, batch.views, strict=True))
    assert part.geometry is not None and batch.geometry is not None
    tensors += list(zip(part.geometry, batch.geometry, strict=True))
    for got, whole in tensors:
        assert got is not None and whole is not None
        assert torch.equal(got, whole[2:5])
    assert part.graph is batch.graph
    empty = Batch(labels=torch.arange(4)).rows(slice(1, 3))
    assert empty.images is None and empty.views == () and empty.geometry is None and len(empty) == 2


def test_to_moves_every_tensor_and_the_graph() -> None:
    batch = full_batch(4).replace(images=torch.rand(4, 1, 4, 4, dtype=torch.float64))
    moved = batch.to("meta")
    fields = [moved.images, moved.labels, moved.indices, moved.domains, moved.masks, *moved.views]
    assert moved.geometry is not None
    fields += list(moved.geometry)
    assert all(t is not None and t.device.type == "meta" for t in fields)
    assert moved.images is not None and moved.images.dtype == torch.float64  # only the device changes
    assert batch.graph.moved_to == ["meta"]
    bare = Batch(images=torch.rand(2, 1, 4, 4), graph={"nodes": 3}).to("meta")
    assert bare.graph == {"nodes": 3} and bare.labels is None and bare.geometry is None


def test_replace_copies_and_the_batch_is_frozen() -> None:
    batch = Batch(images=torch.rand(2, 1, 4, 4))
    labelled = batch.replace(labels=torch.tensor([1, 0]))
    assert batch.labels is None and labelled.images is batch.images and labelled.labels is not None
    with pytest.raises(AttributeError):
        batch.labels = torch.tensor([1, 0])  # type: ignore[misc]
