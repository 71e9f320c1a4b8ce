"""Batched photometric ops with per-image factors of shape ``[B, 1, 1, 1]`` (input in [0, 1], output clamped).

Follows the colour-jitter definitions of SimCLR (Chen et al., ICML 2020, Appendix A) and MoCo v2:

    brightness  y = clamp(f x)                            f ~ U[max(0, 1 - b), 1 + b]
    contrast    y = clamp(f x + (1 - f) mean(luma(x)))    f ~ U[max(0, 1 - c), 1 + c]
    saturation  y = clamp(f x + (1 - f) luma(x))          f ~ U[max(0, 1 - s), 1 + s]
    luma(x)     = 0.299 R + 0.587 G + 0.114 B             (ITU-R BT.601)

Hue is a rotation by ``2 pi h`` (``h ~ U[-hue, hue]``, in turns) of the chroma plane ``(I, Q)`` of YIQ, which
keeps the luma and the chroma magnitude; it approximates a hue shift in HSV space at a fraction of its cost
(one ``[B, 3, 3]`` matrix per image, one ``bmm``). The jitter order is fixed (brightness, contrast,
saturation, hue), not permuted per image. Each op hits an image with probability ``p``; the others
get neutral factors (1, or the identity colour matrix), which returns them exactly for inputs in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from contrastkit.augment._random import (
    bernoulli,
    check_images_fast,
    check_interval,
    check_probability,
    uniform,
)
from contrastkit.augment._random import per_image as _per_image

LUMA_WEIGHTS = (0.299, 0.587, 0.114)
# RGB -> YIQ (FCC NTSC); the inverse is computed in float64 once.
_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]],
    dtype=torch.float64,
)
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)
# M(theta) = YIQ_TO_RGB @ diag(1, R(theta)) @ RGB_TO_YIQ
#          = _HUE_FIXED + cos(theta) _HUE_COS + sin(theta) _HUE_SIN
_HUE_FIXED = (_YIQ_TO_RGB[:, :1] @ _RGB_TO_YIQ[:1]).float()
_HUE_COS = (_YIQ_TO_RGB[:, 1:] @ _RGB_TO_YIQ[1:]).float()
_HUE_SIN = (
    _YIQ_TO_RGB[:, 1:] @ torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64) @ _RGB_TO_YIQ[1:]
).float()


def luma(x: Tensor) -> Tensor:
    """BT.601 luma of RGB images ``[B, 3, H, W] -> [B, 1, H, W]``: ``0.299 R + 0.587 G + 0.114 B``."""
    w = torch.tensor(LUMA_WEIGHTS, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def hue_rotation_matrices(turns: Tensor) -> Tensor:
    """RGB matrices ``[B, 3, 3]`` rotating the YIQ chroma plane by ``2 pi turns[b]`` (``turns: [B]``)."""
    theta = (2.0 * math.pi) * turns.float()
    c, s = theta.cos().view(-1, 1, 1), theta.sin().view(-1, 1, 1)
    dev = turns.device
    return _HUE_FIXED.to(dev) + c * _HUE_COS.to(dev) + s * _HUE_SIN.to(dev)


def rotate_hue(x: Tensor, turns: Tensor) -> Tensor:
    """Rotate the hue of RGB images ``x [B, 3, H, W]`` by ``turns [B]`` (YIQ rotation), clamped to [0, 1]."""
    return _apply_colour_matrices(x, hue_rotation_matrices(turns)).clamp_(0.0, 1.0)


def _apply_colour_matrices(x: Tensor, m: Tensor) -> Tensor:
    """``y[b] = m[b] @ x[b]`` over the channels: ``x [B, C, H, W]``, ``m [B, C, C]`` -> ``[B, C, H, W]``."""
    b, c, h, w = x.shape
    return torch.bmm(m.to(x.dtype), x.reshape(b, c, h * w)).view(b, c, h, w)


def _identity_unless(apply: Tensor, factor: Tensor, neutral: float) -> Tensor:
    """Per-image factors, with the neutral value where ``apply`` is False.

    Images with a neutral factor come back exactly as they are (for inputs in [0, 1]); folding the choice into
    the factor avoids a full-size ``torch.where`` and its temporaries, which dominated the cost on CPU.
    """
    return torch.where(apply, factor, torch.full_like(factor, neutral))


class ColorJitter(nn.Module):
    """SimCLR / MoCo v2 colour jitter for RGB ``[B, 3, H, W]``, applied to each image with probability ``p``.

    Args:
        brightness, contrast, saturation: jitter strength ``s`` (factors in ``[max(0, 1 - s), 1 + s]``) or an
            explicit ``(low, high)`` factor range; 0 disables the op.
        hue: strength in turns, ``0 <= hue <= 0.5`` (shift ``h ~ U[-hue, hue]``), or a ``(low, high)`` range.
        p: probability that an image is jittered at all (SimCLR: 0.8).

    Raises ``ValueError`` for images that are not 3-channel (use :class:`BrightnessContrast` for grey).
    """

    def __init__(
        self,
        brightness: float | Sequence[float] = 0.4,
        contrast: float | Sequence[float] = 0.4,
        saturation: float | Sequence[float] = 0.4,
        hue: float | Sequence[float] = 0.1,
        p: float = 0.8,
    ) -> None:
        super().__init__()
        self.brightness = check_interval("brightness", brightness, center=1.0, lower=0.0)
        self.contrast = check_interval("contrast", contrast, center=1.0, lower=0.0)
        self.saturation = check_interval("saturation", saturation, center=1.0, lower=0.0)
        self.hue = check_interval("hue", hue, center=0.0, lower=-0.5, upper=0.5)
        self.p = check_probability("p", p)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Jitter ``x [B, 3, H, W]``; returns the same shape and dtype."""
        x = check_images_fast("images", x, channels=3)
        n, dev = x.shape[0], x.device
        apply = bernoulli(n, self.p, generator, dev)
        fb = uniform((n,), *self.brightness, generator, dev)
        fc = uniform((n,), *self.contrast, generator, dev)
        fs = uniform((n,), *self.saturation, generator, dev)
        fh = uniform((n,), *self.hue, generator, dev)
        y = x
        if self.brightness != (1.0, 1.0):
            y = (y * _per_image(_identity_unless(apply, fb, 1.0), y)).clamp_(0.0, 1.0)
        # after the first op y is our own buffer: update it in place (fewer full-size temporaries)
        if self.contrast != (1.0, 1.0):
            f = _per_image(_identity_unless(apply, fc, 1.0), y)
            pivot = (1.0 - f) * luma(y).mean(dim=(1, 2, 3), keepdim=True)
            y = (y.mul_(f) if y is not x else y * f).add_(pivot).clamp_(0.0, 1.0)
        if self.saturation != (1.0, 1.0):
            f = _per_image(_identity_unless(apply, fs, 1.0), y)
            pivot = luma(y).mul_(1.0 - f)
            y = (y.mul_(f) if y is not x else y * f).add_(pivot).clamp_(0.0, 1.0)
        if self.hue != (0.0, 0.0):
            eye = torch.eye(3, device=dev).expand(n, 3, 3)
            m = torch.where(apply.view(-1, 1, 1), hue_rotation_matrices(fh), eye)
            y = _apply_colour_matrices(y, m).clamp_(0.0, 1.0)
        return y


class BrightnessContrast(nn.Module):
    """Brightness then contrast jitter for any channel count (grey, multispectral), with probability ``p``.

    ``y = clamp(f_b x)``, then ``y = clamp(f_c y + (1 - f_c) mean_{C,H,W}(y))`` per image. For one channel
    this equals the brightness/contrast of this module's docstring (luma = the channel); for C channels the
    contrast pivot is the mean over all channels. Shapes: ``[B, C, H, W] -> same``.
    """

    def __init__(
        self,
        brightness: float | Sequence[float] = 0.4,
        contrast: float | Sequence[float] = 0.4,
        p: float = 0.8,
    ) -> None:
        super().__init__()
        self.brightness = check_interval("brightness", brightness, center=1.0, lower=0.0)
        self.contrast = check_interval("contrast", contrast, center=1.0, lower=0.0)
        self.p = check_probability("p", p)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        x = check_images_fast("images", x)
        n, dev = x.shape[0], x.device
        apply = bernoulli(n, self.p, generator, dev)
        fb = uniform((n,), *self.brightness, generator, dev)
        fc = uniform((n,), *self.contrast, generator, dev)
        y = (x * _per_image(_identity_unless(apply, fb, 1.0), x)).clamp_(0.0, 1.0)
        f = _per_image(_identity_unless(apply, fc, 1.0), x)
        return torch.addcmul((1.0 - f) * y.mean(dim=(1, 2, 3), keepdim=True), f, y).clamp_(0.0, 1.0)


class RandomGrayscale(nn.Module):
    """Replace an RGB image by its luma on all 3 channels with probability ``p`` (SimCLR: 0.2).

    ``y_c = 0.299 R + 0.587 G + 0.114 B`` for c = 1..3. Shapes: ``[B, 3, H, W] -> same``. Raises
    ``ValueError`` on other channel counts (a grey batch is already grey: leave this op out of grey
    pipelines).
    """

    def __init__(self, p: float = 0.2) -> None:
        super().__init__()
        self.p = check_probability("p", p)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        x = check_images_fast("images", x, channels=3)
        n, dev = x.shape[0], x.device
        apply = bernoulli(n, self.p, generator, dev)
        grey = torch.tensor(LUMA_WEIGHTS, device=dev).expand(3, 3)  # every output channel = luma
        m = torch.where(apply.view(-1, 1, 1), grey, torch.eye(3, device=dev))
        return _apply_colour_matrices(x, m)


class Solarize(nn.Module):
    """Invert the pixels at or above ``threshold`` with probability ``p`` per image (BYOL, Grill et al. 2020).

    ``y = 1 - x`` where ``x >= threshold``, else ``y = x``. Shapes: ``[B, C, H, W] -> same``.
    """

    def __init__(self, threshold: float = 0.5, p: float = 0.2) -> None:
        super().__init__()
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
            raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")
        self.threshold = float(threshold)
        self.p = check_probability("p", p)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        x = check_images_fast("images", x)
        apply = bernoulli(x.shape[0], self.p, generator, x.device)
        # an unselected image gets an unreachable threshold, so one comparison serves both cases
        threshold = torch.full(apply.shape, self.threshold, device=x.device).masked_fill_(~apply, math.inf)
        threshold = threshold.to(x.dtype).view(-1, 1, 1, 1)
        return torch.where(x >= threshold, 1.0 - x, x)
