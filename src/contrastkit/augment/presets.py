"""Standard view pipelines: SimCLR (Chen et al. 2020), MoCo v2 (Chen, Fan, Girshick, He 2020) and additive pixel
noise (the augmentation of the toy and digits experiments of Jing et al., ICLR 2022).

Both accept grey (``channels == 1``, e.g. 28x28 MNIST-like), RGB (``channels == 3``, 32x32 and up) and other
channel counts (multispectral: brightness/contrast only). Every preset returns a :class:`ViewPipeline` whose
input is ``[B, channels, H, W]`` float in [0, 1] and whose output is ``[B, channels, image_size,
image_size]``.
"""

from __future__ import annotations

from torch import nn

from contrastkit.augment.blur import GaussianBlur, default_blur_kernel_size
from contrastkit.augment.color import BrightnessContrast, ColorJitter, RandomGrayscale
from contrastkit.augment.geometry import RandomResizedCrop
from contrastkit.augment.pipeline import ViewPipeline
from contrastkit.augment.pixel import GaussianNoise


def _check(image_size: int, channels: int) -> None:
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels must be a positive int, got {channels!r}")


def _photometric(channels: int, strength: float, jitter_p: float, gray_p: float) -> list[nn.Module]:
    if channels == 3:
        s = strength
        return [ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s, p=jitter_p), RandomGrayscale(p=gray_p)]
    return [BrightnessContrast(0.8 * strength, 0.8 * strength, p=jitter_p)]


def simclr_views(
    image_size: int,
    channels: int,
    *,
    min_scale: float | None = None,
    strength: float = 0.5,
    hflip_p: float = 0.5,
    blur: bool | None = None,
) -> ViewPipeline:
    """SimCLR views (Chen et al. 2020, "A Simple Framework for Contrastive Learning...", Appendix A / B.9).

    Ops: random resized crop to ``image_size`` with scale ``(min_scale, 1)``, ratio (3/4, 4/3), fused
    horizontal flip; colour jitter with strength ``s`` = (0.8 s, 0.8 s, 0.8 s, 0.2 s) for (brightness,
    contrast, saturation, hue) with p = 0.8 (``s = 0.5`` gives the CIFAR setting (0.4, 0.4, 0.4, 0.1)) and
    random grayscale p = 0.2 for RGB; brightness/contrast (0.8 s, 0.8 s) with p = 0.8 for grey or
    multispectral; Gaussian blur (kernel 10 % of the side, sigma in (0.1, 2), p = 0.5) when ``blur`` is True,
    by default only for ``image_size >= 64`` (SimCLR, Appendix B.9, leaves blur out on 32x32 CIFAR-10).

    ``min_scale`` defaults to 0.08 (SimCLR) for RGB, but to 0.2 for images of side <= 32 with fewer than 3
    channels: on a 28x28 grey digit an 8 % crop is about 8x8 px, often blank background or a single stroke
    fragment, so two views share no class evidence and the task becomes noise; 0.2 (about 12x12 px at least)
    keeps stroke structure. For digits, where mirroring changes the class, pass ``hflip_p=0``.
    """
    _check(image_size, channels)
    if min_scale is None:
        min_scale = 0.2 if (channels != 3 and image_size <= 32) else 0.08
    ops: list[nn.Module] = [RandomResizedCrop(image_size, scale=(min_scale, 1.0), hflip_p=hflip_p)]
    ops += _photometric(channels, strength, jitter_p=0.8, gray_p=0.2)
    if blur if blur is not None else image_size >= 64:
        ops.append(GaussianBlur(default_blur_kernel_size(image_size), sigma=(0.1, 2.0), p=0.5))
    return ViewPipeline(ops)


def mocov2_views(
    image_size: int,
    channels: int,
    *,
    min_scale: float = 0.2,
    hflip_p: float = 0.5,
    blur: bool = True,
) -> ViewPipeline:
    """MoCo v2 views (Chen, Fan, Girshick, He 2020, "Improved Baselines with Momentum Contrastive Learning").

    Ops: random resized crop with scale ``(0.2, 1)``, fused horizontal flip; colour jitter (0.4, 0.4, 0.4,
    0.1) p = 0.8 and grayscale p = 0.2 for RGB (brightness/contrast (0.4, 0.4) p = 0.8 otherwise); Gaussian
    blur sigma in (0.1, 2), p = 0.5, kernel 10 % of the side (at least 3), on by default as in the paper.
    """
    _check(image_size, channels)
    ops: list[nn.Module] = [RandomResizedCrop(image_size, scale=(min_scale, 1.0), hflip_p=hflip_p)]
    ops += _photometric(channels, 0.5, jitter_p=0.8, gray_p=0.2)
    if blur:
        ops.append(GaussianBlur(default_blur_kernel_size(image_size), sigma=(0.1, 2.0), p=0.5))
    return ViewPipeline(ops)


def noise_views(
    image_size: int,
    channels: int,
    *,
    noise_std: float,
    min_scale: float | None = None,
    hflip_p: float = 0.0,
) -> ViewPipeline:
    """Additive Gaussian pixel noise, optionally after a small random resized crop: the views of the digits variant
    of Jing et al. (ICLR 2022, "Understanding Dimensional Collapse in Contrastive Self-supervised Learning"), whose
    toy experiments perturb the input with noise of a chosen strength (weak 0.1 vs strong 0.5 on digits in [0, 1]).

    Ops: when ``min_scale`` is set or ``hflip_p > 0``, a random resized crop to ``image_size`` with scale
    ``(min_scale or 1, 1)``, ratio (3/4, 4/3), and horizontal flip with ``hflip_p``; then
    ``y = clamp(x + noise_std * eps, 0, 1)`` with ``eps ~ N(0, I)`` on every image (p = 1).
    """
    _check(image_size, channels)
    if isinstance(noise_std, bool) or not isinstance(noise_std, (int, float)) or not noise_std >= 0:
        raise ValueError(f"noise_std must be a number >= 0, got {noise_std!r}")
    ops: list[nn.Module] = []
    if min_scale is not None or hflip_p > 0:
        ops.append(RandomResizedCrop(image_size, scale=(min_scale or 1.0, 1.0), hflip_p=hflip_p))
    ops.append(GaussianNoise(std=float(noise_std), p=1.0))
    return ViewPipeline(ops)
