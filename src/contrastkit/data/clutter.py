"""Cluttered MNIST: digits on class-independent clutter, the "task-irrelevant information" setting of DCC
(Lee et al., ICML 2022, sec. 1: class-wise gradient matching can do worse than random selection when
task-irrelevant content dominates the images).

Each 28x28 image keeps its MNIST digit and label and gets, independently of the label:

* the digit shifted by a random integer offset ``(dr, dc)``, ``|dr|, |dc| <= max_shift`` (zero fill);
* ``num_fragments`` patches of ``fragment_size x fragment_size`` pixels cut from random digits of the same
  split (any class; the source rows/cols are drawn in the central part of the source image, where strokes are)
  and pasted at uniform random positions;
* a smooth texture: ``texture_strength * mean_k (0.5 + 0.5 sin(<f_k, p> + phi_k))`` over 3 random gratings
  (frequency ``|f_k|`` in [0.3, 0.9] rad/pixel, uniform direction and phase).

The layers are combined with a pixel-wise maximum, so values stay in [0, 1]. The defaults (2 fragments of 7x7)
leave random selection off the floor with a width-32 DC ConvNet (random real subset, 3 nets x 300 epochs, 1,000
test images: 16 % at 1 image per class, 58 % at 10; with 6 fragments of 9x9: 14 % and 27 %). Everything is drawn from
``torch.Generator().manual_seed(seed * 10 + split_id)``: the same (split, seed) gives the same images. Nothing
downloads; only the installed MNIST (``contrastkit.data.load("mnist", split)``) is read.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from contrastkit.data.dataset import ImageDataset

__all__ = ["clutter_images", "cluttered_mnist"]

_SPLIT_ID = {"train": 0, "val": 1, "test": 2}


def _shift(images: Tensor, shifts: Tensor) -> Tensor:
    """``y[i, :, r, c] = x[i, :, r - dr_i, c - dc_i]`` (0 outside); images ``[N, 1, H, W]``, shifts ``[N, 2]``."""
    n, _, h, w = images.shape
    rows = torch.arange(h).view(1, h, 1) - shifts[:, 0].view(n, 1, 1)
    cols = torch.arange(w).view(1, 1, w) - shifts[:, 1].view(n, 1, 1)
    valid = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    flat = rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)
    out = images.flatten(1).gather(1, flat.flatten(1)).view(n, 1, h, w)
    return out * valid.unsqueeze(1)


def clutter_images(
    digits: Tensor,
    generator: torch.Generator,
    *,
    max_shift: int = 4,
    num_fragments: int = 2,
    fragment_size: int = 7,
    texture_strength: float = 0.45,
) -> Tensor:
    """Cluttered copies of ``digits [N, 1, H, W]`` in [0, 1] (CPU), see the module docstring."""
    n, ch, h, w = digits.shape
    if ch != 1 or n < 1:
        raise ValueError(f"digits must be [N >= 1, 1, H, W] grey images, got {tuple(digits.shape)}")
    if not 1 <= fragment_size <= min(h, w) or max_shift < 0 or num_fragments < 0 or texture_strength < 0:
        raise ValueError("need 1 <= fragment_size <= image size, max_shift >= 0, num_fragments >= 0, texture >= 0")
    shifts = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=generator)
    out = _shift(digits, shifts)
    # fragments: source image, source corner (central region), destination corner
    f = fragment_size
    lo_r, hi_r = min(h // 7, h - f), max(min(h // 7, h - f), h - f - h // 7)
    lo_c, hi_c = min(w // 7, w - f), max(min(w // 7, w - f), w - f - w // 7)
    if num_fragments:
        src = torch.randint(0, n, (n, num_fragments), generator=generator)
        sr = torch.randint(lo_r, hi_r + 1, (n, num_fragments), generator=generator)
        sc = torch.randint(lo_c, hi_c + 1, (n, num_fragments), generator=generator)
        dr = torch.randint(0, h - f + 1, (n, num_fragments), generator=generator)
        dc = torch.randint(0, w - f + 1, (n, num_fragments), generator=generator)
        a = torch.arange(f).view(1, 1, f, 1)
        b = torch.arange(f).view(1, 1, 1, f)
        flat_digits = digits.flatten()
        src_idx = src[..., None, None] * (h * w) + (sr[..., None, None] + a) * w + (sc[..., None, None] + b)
        values = flat_digits[src_idx].flatten(1)  # [n, K * f * f]
        dst_idx = ((dr[..., None, None] + a) * w + (dc[..., None, None] + b)).flatten(1)
        canvas = torch.zeros(n, h * w).scatter_reduce(1, dst_idx, values, reduce="amax", include_self=True)
        out = torch.maximum(out, canvas.view(n, 1, h, w))
    if texture_strength > 0:
        freq = 0.3 + 0.6 * torch.rand(n, 3, generator=generator)
        theta = 2 * math.pi * torch.rand(n, 3, generator=generator)
        phase = 2 * math.pi * torch.rand(n, 3, generator=generator)
        rows = torch.arange(h, dtype=torch.float32).view(1, 1, h, 1)
        cols = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w)
        fr = (freq * torch.sin(theta))[..., None, None]
        fc = (freq * torch.cos(theta))[..., None, None]
        waves = 0.5 + 0.5 * torch.sin(fr * rows + fc * cols + phase[..., None, None])
        out = torch.maximum(out, texture_strength * waves.mean(1, keepdim=True))
    return out.clamp(0.0, 1.0)


def cluttered_mnist(split: str = "train", seed: int = 0, **clutter: float) -> ImageDataset:
    """MNIST ``split`` (train 50,000 / val 10,000 / test 10,000) on class-independent clutter.

    Args:
        split: ``"train"`` | ``"val"`` | ``"test"``.
        seed: clutter seed (the digits and labels are MNIST's, unchanged).
        **clutter: keyword arguments of :func:`clutter_images` (``max_shift``, ``num_fragments``, ...).

    Returns:
        An ``ImageDataset`` named ``"cluttered-mnist/<split>"`` with images ``[N, 1, 28, 28]`` in [0, 1].
    """
    from contrastkit.data.registry import load

    if split not in _SPLIT_ID:
        raise ValueError(f"split must be one of {list(_SPLIT_ID)}, got {split!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    base = load("mnist", split)
    generator = torch.Generator().manual_seed(seed * 10 + _SPLIT_ID[split])
    images = clutter_images(base.images, generator, **clutter)  # type: ignore[arg-type]
    return ImageDataset(images, base.labels, list(base.classes), f"cluttered-mnist/{split}")
