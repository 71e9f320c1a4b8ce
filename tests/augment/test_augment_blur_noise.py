"""Per-image Gaussian blur, Gaussian noise and Normalize."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contrastkit.augment import (
    GaussianBlur,
    GaussianNoise,
    Normalize,
    blur_separable,
    default_blur_kernel_size,
    gaussian_kernels_1d,
)


def test_kernels_follow_the_gaussian_formula() -> None:
    sigma = torch.tensor([0.5, 1.0, 2.0])
    k = gaussian_kernels_1d(sigma, 5)
    t = np.arange(-2, 3)
    for i, s in enumerate([0.5, 1.0, 2.0]):
        ref = np.exp(-(t**2) / (2 * s * s))
        np.testing.assert_allclose(k[i].numpy(), ref / ref.sum(), rtol=1e-6)


def test_batched_blur_matches_brute_force_reflect_convolution() -> None:
    x = torch.rand(3, 2, 9, 11, dtype=torch.float64)
    kernels = gaussian_kernels_1d(torch.tensor([0.4, 1.0, 3.0]), 5)
    y = blur_separable(x, kernels.double())
    xn = x.numpy()
    for b in range(3):
        k2 = np.outer(kernels[b].double().numpy(), kernels[b].double().numpy())
        for c in range(2):
            padded = np.pad(xn[b, c], 2, mode="reflect")
            ref = np.zeros((9, 11))
            for i in range(9):
                for j in range(11):
                    ref[i, j] = (padded[i : i + 5, j : j + 5] * k2).sum()
            np.testing.assert_allclose(y[b, c].numpy(), ref, atol=1e-6)


def test_blur_preserves_constant_images() -> None:
    x = torch.rand(6, 3, 1, 1).expand(6, 3, 12, 12).contiguous()
    y = GaussianBlur(5, sigma=(0.1, 2.0), p=1.0)(x)
    torch.testing.assert_close(y, x, atol=1e-6, rtol=0)


def test_blur_reduces_noise_variance_by_the_kernel_energy() -> None:
    x = torch.rand(64, 1, 40, 40, generator=torch.Generator().manual_seed(0))
    y = GaussianBlur(7, sigma=(1.0, 1.0), p=1.0)(x)
    k = gaussian_kernels_1d(torch.tensor([1.0]), 7)[0].double()
    expected = (k**2).sum().item() ** 2  # var(blur(iid noise)) / var(noise) for a separable kernel
    ratio = y[..., 4:-4, 4:-4].var().item() / x.var().item()
    assert abs(ratio / expected - 1) < 0.1
    assert ratio < 0.2


def test_blur_p_zero_is_exact_identity_and_p_half_blurs_half() -> None:
    x = torch.rand(400, 1, 8, 8)
    assert torch.equal(GaussianBlur(3, p=0.0)(x), x)
    y = GaussianBlur(3, sigma=(1.0, 2.0), p=0.5)(x, generator=torch.Generator().manual_seed(0))
    changed = (y != x).flatten(1).any(1).float().mean().item()
    assert 0.4 < changed < 0.6


def test_blur_on_images_smaller_than_the_kernel() -> None:
    x = torch.rand(2, 1, 2, 2)
    y = GaussianBlur(5, p=1.0)(x)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_default_kernel_size_is_odd_and_about_ten_percent() -> None:
    assert default_blur_kernel_size(224) == 23
    assert default_blur_kernel_size(32) == 3
    assert default_blur_kernel_size(64) == 7
    assert all(default_blur_kernel_size(s) % 2 == 1 for s in range(1, 300))


@pytest.mark.parametrize(
    "kw", [{"kernel_size": 4}, {"kernel_size": 0}, {"kernel_size": 3, "sigma": (0.0, 1.0)}]
)
def test_bad_blur_arguments_raise(kw: dict) -> None:
    with pytest.raises(ValueError):
        GaussianBlur(**kw)


def test_noise_has_the_requested_std_and_is_clamped() -> None:
    x = torch.full((200, 1, 16, 16), 0.5)
    y = GaussianNoise(std=0.1, p=1.0, clip=False)(x, generator=torch.Generator().manual_seed(0))
    d = y - x
    assert abs(d.std().item() - 0.1) < 0.005 and abs(d.mean().item()) < 0.005
    z = GaussianNoise(std=1.0, p=1.0)(x)
    assert z.min() >= 0 and z.max() <= 1
    assert torch.equal(GaussianNoise(std=0.1, p=0.0)(x), x)


def test_normalize_closed_form_and_channel_check() -> None:
    x = torch.rand(2, 3, 4, 4)
    y = Normalize((0.1, 0.2, 0.3), (0.5, 0.25, 2.0))(x)
    mean = torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)
    std = torch.tensor([0.5, 0.25, 2.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(y, (x - mean) / std)
    with pytest.raises(ValueError, match="3 channels"):
        Normalize((0.1, 0.2, 0.3), (1.0, 1.0, 1.0))(torch.rand(2, 1, 4, 4))
    with pytest.raises(ValueError):
        Normalize((0.1,), (0.0,))
