r"""Differentiable siamese augmentation (DSA; Zhao & Bilen, "Dataset Condensation with Differentiable Siamese
Augmentation", ICML 2021), with the operations and strengths of that paper's experiments.

Parameters are drawn explicitly, once per *group* (a class during matching, an image during evaluation
training), into a :class:`DSAParams`, and applied with :func:`dsa_apply` to any batch whose images name their
group: the real and the synthetic batch of class ``c`` get exactly the same transform ("siamese"). Everything is
differentiable w.r.t. the images (bilinear ``grid_sample`` and elementwise ops).

Mode ``'S'`` of Zhao & Bilen (ICML 2021): each group uses **one** op family, drawn uniformly from the strategy
(``"color_crop_cutout_flip_scale_rotate"``; use ``"color_crop_cutout_scale_rotate"`` for digits). Families,
for images ``x [B, C, H, W]`` (``u ~ U[0, 1)`` per group):

* ``color``: ``x + (u1 - 0.5) * brightness``; then ``(x - mean_c x) * (u2 * saturation) + mean_c x`` (channel
  mean; a no-op for 1 channel); then ``(x - mean_chw x) * (u3 + contrast) + mean_chw x``;
* ``crop``: integer shift ``t ~ randint(-s, s)`` per axis, ``s = int(ratio_crop_pad * size + 0.5)``, zero fill:
  ``y[i, j] = x[i + t_row, j + t_col]``;
* ``cutout``: a ``round(ratio_cutout * H) x round(ratio_cutout * W)`` square set to 0, centred at a random pixel;
* ``flip``: left-right mirror with probability ``prob_flip``;
* ``scale``: sampling grid ``diag(sx, sy)``, ``sx, sy ~ U[1 / ratio_scale, ratio_scale]``;
* ``rotate``: sampling grid ``[[cos a, sin a], [-sin a, cos a]]``, ``a ~ U[-ratio_rotate, ratio_rotate]`` deg.

crop/flip/scale/rotate are folded into one affine sampling grid per group (normalised coordinates,
``align_corners=True``, zero padding), so one ``grid_sample`` call serves the whole batch; the families that a
group did not draw are the identity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from contrastkit.augment._random import check_images_fast

__all__ = ["DSA_FAMILIES", "DSAConfig", "DSAParams", "dsa_apply", "dsa_random", "sample_dsa_params"]

DSA_FAMILIES: tuple[str, ...] = ("color", "crop", "cutout", "flip", "scale", "rotate")


@dataclass(frozen=True)
class DSAConfig:
    """Strategy and strengths (defaults: those of Zhao & Bilen, ICML 2021)."""

    strategy: str = "color_crop_cutout_flip_scale_rotate"
    prob_flip: float = 0.5
    ratio_scale: float = 1.2
    ratio_rotate: float = 15.0
    ratio_crop_pad: float = 0.125
    ratio_cutout: float = 0.5
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5

    def __post_init__(self) -> None:
        names = self.families
        bad = [n for n in names if n not in DSA_FAMILIES]
        if not names or bad or len(set(names)) != len(names):
            raise ValueError(
                f"strategy must join distinct families from {list(DSA_FAMILIES)} with '_', got {self.strategy!r}"
            )
        if not 0.0 <= self.prob_flip <= 1.0:
            raise ValueError(f"prob_flip must lie in [0, 1], got {self.prob_flip}")
        if self.ratio_scale < 1.0:
            raise ValueError(f"ratio_scale must be >= 1, got {self.ratio_scale}")
        for name in ("ratio_rotate", "ratio_crop_pad", "ratio_cutout", "brightness", "saturation", "contrast"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(self.strategy.split("_")) if self.strategy else ()


@dataclass(frozen=True)
class DSAParams:
    """One transform per group (``G`` groups), on one device.

    Attributes:
        family: ``[G]`` int64 index into ``DSA_FAMILIES`` of the family each group drew.
        affine: ``[G, 2, 3]`` sampling matrices (``affine_grid`` convention, ``align_corners=True``).
        brightness: ``[G]`` additive offsets; saturation, contrast: ``[G]`` factors (identity 0 / 1 / 1).
        cutout_start: ``[G, 2]`` int64 first (row, col) of the cutout square (may be < 0: clipped).
        cutout_size: ``(rows, cols)`` of the square; cutout_on: ``[G]`` bool.
        image_size: ``(H, W)`` the parameters were drawn for.
    """

    family: Tensor
    affine: Tensor
    brightness: Tensor
    saturation: Tensor
    contrast: Tensor
    cutout_start: Tensor
    cutout_size: tuple[int, int]
    cutout_on: Tensor
    image_size: tuple[int, int]

    @property
    def num_groups(self) -> int:
        return int(self.family.shape[0])


def _rand(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    source = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=source).to(device)


def _randint(
    low: int, high: int, shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> Tensor:
    source = generator.device if generator is not None else device
    return torch.randint(low, high, shape, generator=generator, device=source).to(device)


def sample_dsa_params(
    num_groups: int,
    image_size: tuple[int, int],
    config: DSAConfig | None = None,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    shared_family: bool = False,
) -> DSAParams:
    """Draw one transform per group (see the module docstring).

    Every group always consumes the same random numbers, whatever family it draws, so a seeded generator gives
    the same parameters on any device. ``shared_family=True`` draws one family for all groups (the non-siamese
    call during evaluation training of Zhao & Bilen, ICML 2021: one family per batch, parameters per image).
    """
    if isinstance(num_groups, bool) or not isinstance(num_groups, int) or num_groups < 1:
        raise ValueError(f"num_groups must be an int >= 1, got {num_groups!r}")
    h, w = (int(s) for s in image_size)
    if h < 1 or w < 1:
        raise ValueError(f"image_size must be positive (H, W), got {image_size!r}")
    cfg = config or DSAConfig()
    dev = torch.device(device) if device is not None else (generator.device if generator else torch.device("cpu"))
    g = num_groups
    families = torch.tensor([DSA_FAMILIES.index(f) for f in cfg.families], device=dev)
    pick = _randint(0, len(cfg.families), (1 if shared_family else g,), generator, dev).expand(g)
    family = families[pick]
    u = _rand((g, 7), generator, dev)  # brightness, saturation, contrast, flip, sx, sy, angle
    shift_r, shift_c = int(cfg.ratio_crop_pad * h + 0.5), int(cfg.ratio_crop_pad * w + 0.5)
    shifts = torch.stack(
        [_randint(-shift_r, shift_r + 1, (g,), generator, dev), _randint(-shift_c, shift_c + 1, (g,), generator, dev)],
        dim=1,
    )
    cut = int(cfg.ratio_cutout * h + 0.5), int(cfg.ratio_cutout * w + 0.5)
    centres = torch.stack(
        [
            _randint(0, h + (1 - cut[0] % 2), (g,), generator, dev),
            _randint(0, w + (1 - cut[1] % 2), (g,), generator, dev),
        ],
        dim=1,
    )

    def chosen(name: str) -> Tensor:
        return family == DSA_FAMILIES.index(name)

    color = chosen("color")
    brightness = torch.where(color, (u[:, 0] - 0.5) * cfg.brightness, torch.zeros_like(u[:, 0]))
    saturation = torch.where(color, u[:, 1] * cfg.saturation, torch.ones_like(u[:, 1]))
    contrast = torch.where(color, u[:, 2] + cfg.contrast, torch.ones_like(u[:, 2]))
    flip = chosen("flip") & (u[:, 3] < cfg.prob_flip)
    r = cfg.ratio_scale
    scale_on = chosen("scale")
    sx = torch.where(scale_on, u[:, 4] * (r - 1.0 / r) + 1.0 / r, torch.ones_like(u[:, 4]))
    sy = torch.where(scale_on, u[:, 5] * (r - 1.0 / r) + 1.0 / r, torch.ones_like(u[:, 5]))
    angle = torch.where(chosen("rotate"), (u[:, 6] - 0.5) * 2 * cfg.ratio_rotate / 180 * math.pi, u[:, 6] * 0)
    crop = chosen("crop")
    t_row = torch.where(crop, shifts[:, 0], 0).to(u.dtype)
    t_col = torch.where(crop, shifts[:, 1], 0).to(u.dtype)
    # sampling matrix M = translate . flip . scale . rotate (only one of them differs from I per group)
    cos, sin = torch.cos(angle), torch.sin(angle)
    fx = torch.where(flip, -1.0, 1.0).to(u.dtype)
    affine = torch.zeros(g, 2, 3, device=dev)
    affine[:, 0, 0] = fx * sx * cos
    affine[:, 0, 1] = fx * sx * sin
    affine[:, 1, 0] = -sy * sin
    affine[:, 1, 1] = sy * cos
    affine[:, 0, 2] = 2.0 * t_col / max(w - 1, 1)
    affine[:, 1, 2] = 2.0 * t_row / max(h - 1, 1)
    start = centres - torch.tensor([cut[0] // 2, cut[1] // 2], device=dev)
    return DSAParams(family, affine, brightness, saturation, contrast, start, cut, chosen("cutout"), (h, w))


def dsa_apply(images: Tensor, params: DSAParams, group_index: Tensor | None = None) -> Tensor:
    """Apply ``params`` to ``images [B, C, H, W]``; image ``i`` uses group ``group_index[i]``.

    ``group_index=None`` means one group per image (``G == B``) or one group for all (``G == 1``). Returns a new
    ``[B, C, H, W]`` tensor, differentiable w.r.t. ``images``.
    """
    x = check_images_fast("images", images)
    b, _, h, w = x.shape
    if (h, w) != params.image_size:
        raise ValueError(f"params were drawn for {params.image_size} images, got {(h, w)}; resample them")
    if group_index is None:
        if params.num_groups not in (1, b):
            raise ValueError(f"{params.num_groups} groups for {b} images: pass group_index [B]")
        idx = (
            torch.arange(b, device=x.device)
            if params.num_groups == b
            else torch.zeros(b, dtype=torch.long, device=x.device)
        )
    else:
        idx = group_index.to(device=x.device, dtype=torch.long)
        if idx.shape != (b,) or (b and (int(idx.min()) < 0 or int(idx.max()) >= params.num_groups)):
            raise ValueError(f"group_index must be [{b}] ints in [0, {params.num_groups}), got {tuple(idx.shape)}")
    dev = params.family.device
    if dev != x.device:
        idx_p = idx.to(dev)
    else:
        idx_p = idx

    def take(t: Tensor) -> Tensor:
        return t[idx_p].to(device=x.device, dtype=x.dtype)

    color = (params.family == DSA_FAMILIES.index("color"))[idx_p].to(x.device).view(-1, 1, 1, 1)
    if bool(color.any()):
        y = x + take(params.brightness).view(-1, 1, 1, 1)
        mean_c = y.mean(dim=1, keepdim=True)
        y = (y - mean_c) * take(params.saturation).view(-1, 1, 1, 1) + mean_c
        mean_all = y.mean(dim=(1, 2, 3), keepdim=True)
        y = (y - mean_all) * take(params.contrast).view(-1, 1, 1, 1) + mean_all
        x = torch.where(color, y, x)
    affine = take(params.affine)
    identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], device=x.device, dtype=x.dtype)
    moved = (affine != identity).flatten(1).any(1)
    if bool(moved.any()):
        grid = F.affine_grid(affine, list(x.shape), align_corners=True)
        warped = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        x = torch.where(moved.view(-1, 1, 1, 1), warped, x)
    cut_on = params.cutout_on[idx_p].to(x.device)
    if bool(cut_on.any()):
        start = params.cutout_start[idx_p].to(x.device)
        rows = torch.arange(h, device=x.device).view(1, h, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, w)
        r0, c0 = start[:, 0].view(-1, 1, 1), start[:, 1].view(-1, 1, 1)
        inside = (rows >= r0) & (rows < r0 + params.cutout_size[0]) & (cols >= c0) & (cols < c0 + params.cutout_size[1])
        x = x * (~(inside & cut_on.view(-1, 1, 1))).unsqueeze(1).to(x.dtype)
    return x


def dsa_random(
    images: Tensor,
    config: DSAConfig | None = None,
    *,
    generator: torch.Generator | None = None,
    shared_family: bool = True,
) -> Tensor:
    """Non-siamese DSA: parameters per image (one family per batch by default, as in the evaluation of DSA)."""
    x = check_images_fast("images", images)
    params = sample_dsa_params(
        x.shape[0], (x.shape[2], x.shape[3]), config, generator=generator, device=x.device, shared_family=shared_family
    )
    return dsa_apply(x, params)
