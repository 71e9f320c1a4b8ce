"""Shared view handling of the two-view methods (SimCLR, DirectCLR): draw two views, or unpack ready ones."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from contrastkit._checks import check_images
from contrastkit.augment import ViewPipeline, multi_view
from contrastkit.methods.base import Batch, ViewBatch, split_batch


def draw_two_views(
    method: str, views: ViewPipeline | None, images: Tensor, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Two random views ``[B, C, H, W]`` of ``images`` from ``views`` (``method`` names the caller in errors)."""
    if views is None:
        raise ValueError(f"{method}(views=None) has no view pipeline: pass ready views or construct it with views=")
    images = check_images("images", images)
    if images.shape[0] < 2:
        raise ValueError(f"{method} needs a batch of at least 2 images (every image is a negative for the others)")
    view1, view2 = multi_view(images, 2, views, generator=generator)
    return view1, view2


def two_views_of(
    method: str, batch: Batch, views: ViewPipeline | None, make_views: Callable[[Tensor], tuple[Tensor, ...]]
) -> tuple[Tensor, Tensor]:
    """The two views of a batch: a :class:`ViewBatch`, a ready ``(view1, view2)`` pair when ``views`` is None, or
    images (or ``(images, labels)``) passed to ``make_views``. Checks that both are ``[B, C, H, W]``, ``B >= 2``."""
    if isinstance(batch, ViewBatch):
        if len(batch.views) != 2:
            raise ValueError(f"{method} trains on 2 views, got a ViewBatch with {len(batch.views)}")
        view1, view2 = check_images("view1", batch.views[0]), check_images("view2", batch.views[1])
    elif views is None:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError(f"{method}(views=None) expects batches of two ready views (view1, view2)")
        view1, view2 = check_images("view1", batch[0]), check_images("view2", batch[1])
    else:
        images, _ = split_batch(batch)
        view1, view2 = make_views(images)[:2]
    if view1.shape[0] < 2 or view1.shape != view2.shape:
        raise ValueError(
            f"{method} needs two views of the same >= 2 images, got {tuple(view1.shape)} and {tuple(view2.shape)}"
        )
    return view1, view2
