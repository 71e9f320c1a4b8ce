"""Batched geometric views: random resized crop fused with flips (one resampling per batch), and plain flips.

Coordinates: *continuous pixel coordinates*, where pixel ``i`` spans ``[i, i + 1)`` and its centre is
``i + 0.5`` (x = column, y = row). A crop box ``(x0, y0, x1, y1)`` in source coordinates is resampled to an
``h x w`` view, then optionally mirrored. A view point ``(vx, vy)`` maps to the source point

    vx' = w - vx if hflip else vx,     vy' = h - vy if vflip else vy
    sx  = x0 + (x1 - x0) * vx' / w,    sy  = y0 + (y1 - y0) * vy' / h

which is what dense methods (GLCNet, Li et al. 2022) need to match the regions two views share.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contrastkit.augment._random import (
    bernoulli,
    check_images_fast,
    check_interval,
    check_probability,
    uniform,
)


@dataclass(frozen=True)
class CropParams:
    """Geometry of a batch of crop+flip views.

    Attributes:
        boxes: ``[B, 4]`` float32 ``(x0, y0, x1, y1)`` crop boxes in continuous source pixel coordinates.
        hflip: ``[B]`` bool, the view was mirrored left-right after resizing.
        vflip: ``[B]`` bool, the view was mirrored top-bottom after resizing.
        source_size: ``(H, W)`` of the input images.
        output_size: ``(h, w)`` of the views.
    """

    boxes: Tensor
    hflip: Tensor
    vflip: Tensor
    source_size: tuple[int, int]
    output_size: tuple[int, int]

    def view_to_source(self, points: Tensor) -> Tensor:
        """Map view points ``[B, N, 2]`` ``(x, y)`` (continuous view coordinates) to source coordinates."""
        h, w = self.output_size
        vx = torch.where(self.hflip[:, None], w - points[..., 0], points[..., 0])
        vy = torch.where(self.vflip[:, None], h - points[..., 1], points[..., 1])
        x0, y0, x1, y1 = (self.boxes[:, k : k + 1].to(points.dtype) for k in range(4))
        return torch.stack((x0 + (x1 - x0) * vx / w, y0 + (y1 - y0) * vy / h), dim=-1)

    def source_to_view(self, points: Tensor) -> Tensor:
        """Inverse of :meth:`view_to_source`: source points ``[B, N, 2]`` ``(x, y)`` to view coordinates."""
        h, w = self.output_size
        x0, y0, x1, y1 = (self.boxes[:, k : k + 1].to(points.dtype) for k in range(4))
        vx = (points[..., 0] - x0) * w / (x1 - x0)
        vy = (points[..., 1] - y0) * h / (y1 - y0)
        vx = torch.where(self.hflip[:, None], w - vx, vx)
        vy = torch.where(self.vflip[:, None], h - vy, vy)
        return torch.stack((vx, vy), dim=-1)

    def chunk(self, n: int) -> list[CropParams]:
        """Split the batch dimension into ``n`` equal parts (the inverse of stacking ``n`` view batches)."""
        return [
            CropParams(b, hf, vf, self.source_size, self.output_size)
            for b, hf, vf in zip(self.boxes.chunk(n), self.hflip.chunk(n), self.vflip.chunk(n), strict=True)
        ]


def _output_size(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int) and not isinstance(size, bool):
        pair = (size, size)
    else:
        pair = tuple(size)  # type: ignore[arg-type]
    if len(pair) != 2 or not all(isinstance(s, int) and s > 0 for s in pair):
        raise ValueError(f"size must be a positive int or an (h, w) pair of positive ints, got {size!r}")
    return int(pair[0]), int(pair[1])


class RandomResizedCrop(nn.Module):
    """Random resized crop (Szegedy et al. 2015; SimCLR, Chen et al. 2020) fused with random flips.

    Per image: area fraction ``s ~ U(scale)``, aspect ``r = exp(U(log ratio))``, box ``w = sqrt(s r H W)``,
    ``h = sqrt(s H W / r)``; ten candidates are drawn at once and the first that fits is kept (else a centre
    crop with the aspect clamped into ``ratio``). The corner is uniform over the
    positions that keep the box inside the image. Boxes are continuous (sub-pixel), not rounded to integers.
    The box and the flips become one axis-aligned sampling grid, applied to the whole batch by one
    ``grid_sample`` call (bilinear, border padding; no antialiasing, so strong downscaling of large images
    aliases).

    Args:
        size: output ``h`` (= ``w``) or ``(h, w)``.
        scale: range of the crop area as a fraction of the image area, ``0 < low <= high <= 1``.
        ratio: range of the crop aspect ratio ``w / h``.
        hflip_p: probability of a left-right mirror of the view (fused, free).
        vflip_p: probability of a top-bottom mirror of the view (fused, free).
        interpolation: ``"bilinear"`` or ``"nearest"`` (e.g. for label / id maps).

    Shapes: ``[B, C, H, W] -> [B, C, h, w]``. The sampled geometry is kept in :attr:`last_params`
    (:class:`CropParams`) and is returned too when ``return_params=True``.
    """

    _TRIES = 10

    def __init__(
        self,
        size: int | Sequence[int],
        scale: Sequence[float] = (0.08, 1.0),
        ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
        hflip_p: float = 0.0,
        vflip_p: float = 0.0,
        interpolation: str = "bilinear",
    ) -> None:
        super().__init__()
        self.size = _output_size(size)
        self.scale = check_interval("scale", scale, center=None, lower=0.0, upper=1.0)
        if self.scale[0] <= 0:
            raise ValueError(f"scale must have a lower bound > 0, got {tuple(scale)}")
        self.ratio = check_interval("ratio", ratio, center=None, lower=0.0)
        if self.ratio[0] <= 0:
            raise ValueError(f"ratio must have a lower bound > 0, got {tuple(ratio)}")
        self.hflip_p = check_probability("hflip_p", hflip_p)
        self.vflip_p = check_probability("vflip_p", vflip_p)
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
        self.interpolation = interpolation
        self.last_params: CropParams | None = None

    def sample_params(
        self,
        batch: int,
        height: int,
        width: int,
        device: torch.device,
        generator: torch.Generator | None = None,
    ) -> CropParams:
        """Draw boxes and flips for ``batch`` images of size ``height x width``; tensors on ``device``."""
        t = self._TRIES
        area = float(height * width)
        s = uniform((batch, t), self.scale[0], self.scale[1], generator, device)
        log_r = uniform((batch, t), math.log(self.ratio[0]), math.log(self.ratio[1]), generator, device)
        r = torch.exp(log_r)
        w = torch.sqrt(area * s * r)
        h = torch.sqrt(area * s / r)
        fits = (w <= width * (1 + 1e-6)) & (h <= height * (1 + 1e-6))
        first = fits.float().argmax(dim=1, keepdim=True)  # first candidate that fits
        w = w.gather(1, first).squeeze(1).clamp(max=width)
        h = h.gather(1, first).squeeze(1).clamp(max=height)
        w_fb, h_fb = self._fallback(height, width)
        ok = fits.any(dim=1)
        w = torch.where(ok, w, torch.full_like(w, w_fb))
        h = torch.where(ok, h, torch.full_like(h, h_fb))
        u = uniform((batch, 2), 0.0, 1.0, generator, device)
        x0 = torch.where(ok, u[:, 0] * (width - w), (width - w) / 2)
        y0 = torch.where(ok, u[:, 1] * (height - h), (height - h) / 2)
        hflip = bernoulli(batch, self.hflip_p, generator, device)
        vflip = bernoulli(batch, self.vflip_p, generator, device)
        boxes = torch.stack((x0, y0, x0 + w, y0 + h), dim=1)
        return CropParams(boxes, hflip, vflip, (height, width), self.size)

    def _fallback(self, height: int, width: int) -> tuple[float, float]:
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            return float(width), min(float(height), width / self.ratio[0])
        if in_ratio > self.ratio[1]:
            return min(float(width), height * self.ratio[1]), float(height)
        return float(width), float(height)

    def apply(self, x: Tensor, params: CropParams) -> Tensor:
        """Resample ``x [B, C, H, W]`` with given geometry to ``[B, C, h, w]`` (one ``grid_sample`` call)."""
        x = check_images_fast("images", x)
        if tuple(x.shape[-2:]) != params.source_size or params.boxes.shape[0] != x.shape[0]:
            raise ValueError(
                f"params were sampled for {params.boxes.shape[0]} images of size {params.source_size}, "
                f"got images of shape {tuple(x.shape)}; sample params for this batch"
            )
        return resample_crops(x, params, self.interpolation)

    def forward(
        self, x: Tensor, generator: torch.Generator | None = None, return_params: bool = False
    ) -> Tensor | tuple[Tensor, CropParams]:
        """Crop, resize and flip every image of ``x [B, C, H, W]``; see the class docstring."""
        x = check_images_fast("images", x)
        params = self.sample_params(x.shape[0], x.shape[-2], x.shape[-1], x.device, generator)
        self.last_params = params
        out = resample_crops(x, params, self.interpolation)
        return (out, params) if return_params else out


def resample_crops(x: Tensor, params: CropParams, interpolation: str = "bilinear") -> Tensor:
    """Sample ``x [B, C, H, W]`` on the axis-aligned grids described by ``params``; returns ``[B, C, h, w]``.

    With ``align_corners=False`` the normalised grid coordinate of a source point ``sx`` is ``2 sx / W - 1``.
    """
    h, w = params.output_size
    src_h, src_w = params.source_size
    dev, dt = x.device, (torch.float64 if x.dtype == torch.float64 else torch.float32)
    boxes = params.boxes.to(dev, dt)
    vx = torch.arange(w, device=dev, dtype=dt) + 0.5
    vy = torch.arange(h, device=dev, dtype=dt) + 0.5
    vx = torch.where(params.hflip.to(dev)[:, None], w - vx, vx)  # [B, w]
    vy = torch.where(params.vflip.to(dev)[:, None], h - vy, vy)  # [B, h]
    gx = 2.0 * (boxes[:, 0:1] + (boxes[:, 2:3] - boxes[:, 0:1]) * vx / w) / src_w - 1.0
    gy = 2.0 * (boxes[:, 1:2] + (boxes[:, 3:4] - boxes[:, 1:2]) * vy / h) / src_h - 1.0
    b = x.shape[0]
    grid = torch.stack((gx[:, None, :].expand(b, h, w), gy[:, :, None].expand(b, h, w)), dim=-1)
    # half-precision grids are too coarse (bf16: ~0.4 % of the side), so resample those in float32
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    out = F.grid_sample(
        work, grid.to(work.dtype), mode=interpolation, padding_mode="border", align_corners=False
    )
    return out.to(x.dtype)


class _RandomFlip(nn.Module):
    _dim = -1

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = check_probability("p", p)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        x = check_images_fast("images", x)
        flip = bernoulli(x.shape[0], self.p, generator, x.device)
        return torch.where(flip[:, None, None, None], x.flip(self._dim), x)


class RandomHorizontalFlip(_RandomFlip):
    """Mirror each image left-right with probability ``p``: ``y[b] = x[b, :, :, ::-1]``, shape kept.

    Prefer ``RandomResizedCrop(hflip_p=...)``, which fuses the flip into the crop's sampling grid.
    """

    _dim = -1


class RandomVerticalFlip(_RandomFlip):
    """Mirror each image top-bottom with probability ``p``: ``y[b] = x[b, :, ::-1, :]``, shape kept."""

    _dim = -2
