"""Compose batched ops into a view pipeline, and draw several independent views of a batch."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from contrastkit.augment._random import check_images_fast
from contrastkit.augment.geometry import CropParams, RandomResizedCrop


class ViewPipeline(nn.Module):
    """Apply ops in order to a whole batch: ``y = op_k(... op_1(x, generator) ..., generator)``.

    Every op is an ``nn.Module`` called as ``op(x, generator=generator)`` on ``[B, C, H, W]`` float images in
    [0, 1]; per-image parameters are sampled inside each op as tensors (no Python loop over images). The
    geometry of the (last) :class:`RandomResizedCrop` is kept in :attr:`last_params` and returned with
    ``return_params``.
    """

    def __init__(self, ops: Sequence[nn.Module]) -> None:
        super().__init__()
        for i, op in enumerate(ops):
            if not isinstance(op, nn.Module):
                raise ValueError(f"ops[{i}] must be an nn.Module taking (x, generator), got {type(op).__name__}")
        self.ops = nn.ModuleList(ops)
        self.last_params: CropParams | None = None

    def forward(
        self, x: Tensor, generator: torch.Generator | None = None, return_params: bool = False
    ) -> Tensor | tuple[Tensor, CropParams | None]:
        """Return the view ``[B, C', h, w]`` (and its :class:`CropParams`, or None without a crop op)."""
        x = check_images_fast("images", x)
        params: CropParams | None = None
        for op in self.ops:
            if isinstance(op, RandomResizedCrop):
                x, params = op(x, generator=generator, return_params=True)
            else:
                x = op(x, generator=generator)
        self.last_params = params
        return (x, params) if return_params else x

    def __repr__(self) -> str:
        inner = ",\n  ".join(_describe(op) for op in self.ops)
        return f"ViewPipeline(\n  {inner}\n)"


def _describe(op: nn.Module) -> str:
    fields = {k: v for k, v in vars(op).items() if not k.startswith("_") and k not in ("training", "last_params")}
    return f"{type(op).__name__}({', '.join(f'{k}={v}' for k, v in fields.items())})"


def multi_view(
    x: Tensor,
    n: int,
    pipeline: nn.Module,
    generator: torch.Generator | None = None,
    return_params: bool = False,
) -> list[Tensor] | tuple[list[Tensor], list[CropParams | None]]:
    """``n`` independent views of the batch ``x [B, C, H, W]``, each ``[B, C', h, w]``.

    One batched ``pipeline`` call per view; every image of every view gets its own random parameters.
    (Measured on 2 CPU cores this is as fast as or faster than one call on the batch repeated ``n`` times,
    which copies the input and works on an ``n``-times larger tensor.) With ``return_params`` the per-view
    :class:`CropParams` come back too (None when the pipeline has no crop).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int (number of views), got {n!r}")
    x = check_images_fast("images", x)
    views: list[Tensor] = []
    params: list[CropParams | None] = []
    for _ in range(n):
        if isinstance(pipeline, (ViewPipeline, RandomResizedCrop)):
            view, p = pipeline(x, generator=generator, return_params=True)
        else:
            view, p = pipeline(x, generator=generator), None
        views.append(view)
        params.append(p)
    return (views, params) if return_params else views


def local_crop_pipeline(pipeline: ViewPipeline, ratio: float) -> ViewPipeline:
    """A copy of ``pipeline`` for a multi-crop *local* view (SwAV, Caron et al. 2020; HCSC, Guo et al. 2022):
    every :class:`RandomResizedCrop` outputs ``ratio`` times its side and draws its area fraction from
    ``ratio`` times its range, ``(low r, high r)`` (HCSC's 96-px crops of 224-px views: ``r = 3/7``, scale
    ``(0.086, 0.429)`` from ``(0.2, 1)``). The other ops are copied unchanged; ``pipeline`` itself is not changed.
    Shapes: ``[B, C, H, W] -> [B, C, round(r h), round(r w)]`` where ``pipeline`` gives ``[B, C, h, w]``."""
    if not 0 < ratio <= 1:
        raise ValueError(f"a local crop's ratio must be in (0, 1], got {ratio!r} (e.g. 3/7 for 96 of 224 px)")
    local = copy.deepcopy(pipeline)
    crops = [op for op in local.ops if isinstance(op, RandomResizedCrop)]
    if not crops:
        raise ValueError("multi-crop needs a view pipeline with a RandomResizedCrop (an augment preset that crops)")
    for crop in crops:
        crop.size = tuple(max(1, round(ratio * side)) for side in crop.size)
        crop.scale = (crop.scale[0] * ratio, crop.scale[1] * ratio)
    return local
