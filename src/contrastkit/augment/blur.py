"""Batched Gaussian blur with a different sigma per image (SimCLR, Chen et al. 2020, Appendix A; MoCo v2).

Per image ``b``: ``sigma_b ~ U[sigma_min, sigma_max]`` and the normalised 1-D kernel

    k_b[t] = exp(-t^2 / (2 sigma_b^2)) / sum_t' exp(-t'^2 / (2 sigma_b^2)),   t = -r..r,  r = kernel_size // 2

is applied along rows then columns (separable) by two grouped convolutions over the ``B * C`` channels of the
batch (reflect padding). Images that are not selected (probability ``1 - p``) get the delta
kernel, which returns them unchanged exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def gaussian_kernels_1d(sigma: Tensor, kernel_size: int) -> Tensor:
    """Normalised 1-D Gaussian kernels ``[B, kernel_size]`` for ``sigma: [B]`` (> 0)."""
    r = kernel_size // 2
    t = torch.arange(-r, r + 1, device=sigma.device, dtype=torch.float32)
    k = torch.exp(-(t**2) / (2.0 * sigma.float()[:, None] ** 2))
    return k / k.sum(dim=1, keepdim=True)


def blur_separable(x: Tensor, kernels: Tensor) -> Tensor:
    """Convolve each image ``x[b]`` of ``[B, C, H, W]`` with the separable kernel ``kernels[b]`` (``[B, k]``).

    Reflect padding (replicate when the image is too small to reflect). Returns ``[B, C, H, W]``.
    """
    b, c, h, w = x.shape
    k = kernels.shape[1]
    r = k // 2
    weight = kernels.to(x.dtype).repeat_interleave(c, dim=0)  # [B*C, k]
    mode = "reflect" if r < min(h, w) else "replicate"
    y = F.pad(x.reshape(1, b * c, h, w), (r, r, r, r), mode=mode)
    y = F.conv2d(y, weight.view(b * c, 1, 1, k), groups=b * c)
    y = F.conv2d(y, weight.view(b * c, 1, k, 1), groups=b * c)
    return y.view(b, c, h, w)


class GaussianBlur(nn.Module):
    """Gaussian blur, per-image ``sigma ~ U(sigma)``, applied with probability ``p`` (SimCLR, MoCo v2: 0.5).

    Args:
        kernel_size: odd kernel side (SimCLR: about 10 % of the image side).
        sigma: ``(min, max)`` of the standard deviation in pixels (SimCLR: (0.1, 2.0)).
        p: probability that an image is blurred.

    Shapes: ``[B, C, H, W] -> same``.
    """

    def __init__(self, kernel_size: int, sigma: Sequence[float] = (0.1, 2.0), p: float = 0.5) -> None:
        super().__init__()
        if (
            isinstance(kernel_size, bool)
            or not isinstance(kernel_size, int)
            or kernel_size < 1
            or kernel_size % 2 == 0
        ):
            raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size!r}")
        self.kernel_size = kernel_size
        self.sigma = check_interval("sigma", sigma, center=None, lower=0.0)
        if self.sigma[0] <= 0:
            raise ValueError(f"sigma must be > 0, got {tuple(sigma)}")
        self.p = check_probability("p", p)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        x = check_images_fast("images", x)
        n = x.shape[0]
        apply = bernoulli(n, self.p, generator, x.device)
        sigma = uniform((n,), *self.sigma, generator, x.device)
        kernels = gaussian_kernels_1d(sigma, self.kernel_size)
        delta = torch.zeros_like(kernels)
        delta[:, self.kernel_size // 2] = 1.0
        return blur_separable(x, torch.where(apply[:, None], kernels, delta))


def default_blur_kernel_size(image_size: int) -> int:
    """SimCLR's blur kernel side: the odd number nearest 10 % of the image side, at least 3."""
    return max(3, 2 * int(round((0.1 * image_size - 1.0) / 2.0)) + 1)
