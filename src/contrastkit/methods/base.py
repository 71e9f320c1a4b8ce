"""The small protocol every method speaks, so that a plain PyTorch loop or the harness can drive any of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class ViewBatch:
    """Views that were already made (by a harness that draws them for the global batch, or by the user).

    ``views``: the view tensors, each ``[B, C, H, W]``; ``labels``: ``[B]`` class ids or None. A method given a
    ``ViewBatch`` skips its own augmentation.
    """

    views: tuple[Tensor, ...]
    labels: Tensor | None = None


Batch = Tensor | tuple[Tensor, ...] | list[Tensor] | ViewBatch


@runtime_checkable
class Method(Protocol):
    """A contrastive method: an ``nn.Module`` with a ``backbone`` and a ``training_step``.

    ``training_step(batch)`` takes what a data loader yields (images ``[B, C, H, W]``, or a tuple whose first entry
    is the images and whose second, when present, the labels), or a :class:`ViewBatch` of ready views, and returns
    a dict with at least ``"loss"`` (the scalar to back-propagate). Other scalar entries are detached diagnostics
    for logging; the optional entry ``"embeddings"`` holds detached backbone features ``[B, D]`` of the first view
    for online monitors (an online linear probe).
    ``make_views(images, generator)`` draws the views the method trains on, as a tuple of ``[B, C, H, W]`` tensors;
    a harness calls it on the global batch and hands each rank its slice, so that multi-process training sees the
    same views as one process.
    ``embed(x)`` returns the representation used for evaluation (the backbone output, ``[B, num_features]``).
    """

    backbone: nn.Module

    def make_views(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, ...]: ...

    def training_step(self, batch: Batch) -> dict[str, Tensor]: ...

    def embed(self, x: Tensor) -> Tensor: ...


def split_batch(batch: Batch) -> tuple[Tensor, Tensor | None]:
    """Return ``(images, labels_or_None)`` from a tensor or an ``(images, labels, ...)`` tuple."""
    if isinstance(batch, Tensor):
        return batch, None
    if isinstance(batch, ViewBatch):
        raise ValueError("this batch holds ready views (ViewBatch), not images")
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
        labels = batch[1] if len(batch) > 1 and isinstance(batch[1], Tensor) else None
        return batch[0], labels
    raise ValueError(
        f"a batch must be an image tensor [B, C, H, W] or a tuple (images, labels), got {type(batch).__name__}"
    )
