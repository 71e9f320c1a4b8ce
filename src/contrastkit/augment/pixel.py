"""Per-pixel ops: additive Gaussian noise and channel normalisation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from contrastkit.augment._random import (
    bernoulli,
    check_images_fast,
    check_interval,
    check_probability,
    standard_normal,
    uniform,
)


class GaussianNoise(nn.Module):
    """Add pixel noise with probability ``p`` per image: ``y = clamp(x + sigma_b eps)``, ``eps ~ N(0, 1)``.

    Args:
        std: noise standard deviation ``sigma``, or a ``(low, high)`` range sampled per image.
        p: probability that an image gets noise.
        clip: clamp the result to [0, 1].

    Shapes: ``[B, C, H, W] -> same``. Pass a generator on the images' device: the noise is drawn on the
    generator's device and, for a CPU generator with CUDA images, copied over.
    """

    def __init__(self, std: float | Sequence[float] = 0.05, p: float = 0.5, clip: bool = True) -> None:
        super().__init__()
        pair = (std, std) if isinstance(std, (int, float)) and not isinstance(std, bool) else std
        self.std = check_interval("std", pair, center=None, lower=0.0)
        self.p = check_probability("p", p)
        self.clip = clip

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        x = check_images_fast("images", x)
        n = x.shape[0]
        apply = bernoulli(n, self.p, generator, x.device)
        std = uniform((n,), *self.std, generator, x.device) * apply
        # std is 0 for unselected images: x + 0 * eps = x exactly, without a full-size select
        eps = standard_normal(x.shape, generator, x.device, x.dtype)
        y = torch.addcmul(x, eps, std.to(x.dtype).view(-1, 1, 1, 1))
        return y.clamp_(0.0, 1.0) if self.clip else y


class Normalize(nn.Module):
    """Per-channel standardisation ``y_c = (x_c - mean_c) / std_c``. Shapes: ``[B, C, H, W] -> same``.

    Deterministic; takes (and ignores) ``generator`` so it can sit in a :class:`ViewPipeline`.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if len(self.mean) == 0 or len(self.mean) != len(self.std):
            raise ValueError(
                f"mean and std need one value per channel, got {len(self.mean)} and {len(self.std)}"
            )
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be > 0 for every channel, got {self.std}")

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        x = check_images_fast("images", x, channels=len(self.mean))
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        return (x - mean) / std
