"""Shared view handling of the two-view methods (SimCLR, DirectCLR): draw two views, or unpack ready ones."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from contrastkit._checks import check_images
from contrastkit.augment import ViewPipeline, multi_view
from contrastkit.data.batch import Batch
from contrastkit.methods.base import views_of


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
    method: str, batch: object, make_views: Callable[[Tensor], tuple[Tensor, ...]]
) -> tuple[Batch, Tensor, Tensor]:
    """``(batch, view1, view2)``: the batch as a :class:`Batch` and its two views (ready ones, or drawn by
    ``make_views`` from its images); both ``[B, C, H, W]`` of one shape with ``B >= 2``."""
    batch, (view1, view2) = views_of(method, batch, 2, make_views)
    if view1.shape[0] < 2:
        raise ValueError(f"{method} needs two views of >= 2 images, got {tuple(view1.shape)}")
    return batch, view1, view2
