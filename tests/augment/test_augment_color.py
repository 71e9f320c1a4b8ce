"""Photometric ops: closed forms on constant / known images, probabilities, channel checks."""

from __future__ import annotations

import math

import pytest
import torch

from contrastkit.augment import (
    BrightnessContrast,
    ColorJitter,
    RandomGrayscale,
    Solarize,
    luma,
    rotate_hue,
)

_W = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)


def _luma64(x: torch.Tensor) -> torch.Tensor:
    return (x.double() * _W.view(1, 3, 1, 1)).sum(1, keepdim=True)


def test_brightness_closed_form_on_constant_image() -> None:
    x = torch.full((3, 1, 5, 5), 0.4)
    y = BrightnessContrast(brightness=(1.5, 1.5), contrast=0.0, p=1.0)(x)
    torch.testing.assert_close(y, torch.full_like(x, 0.6))
    y = ColorJitter(brightness=(3.0, 3.0), contrast=0, saturation=0, hue=0, p=1.0)(x.expand(3, 3, 5, 5))
    torch.testing.assert_close(y, torch.ones(3, 3, 5, 5))  # clamped at 1


def test_brightness_factors_are_per_image_and_span_the_range() -> None:
    x = torch.full((500, 1, 4, 4), 0.5)
    y = BrightnessContrast(brightness=0.4, contrast=0.0, p=1.0)(x, generator=torch.Generator().manual_seed(0))
    per_img = y.flatten(1)
    assert torch.allclose(per_img, per_img[:, :1].expand_as(per_img))  # one factor per image
    f = per_img[:, 0] / 0.5
    assert f.min() >= 0.6 - 1e-6 and f.max() <= 1.4 + 1e-6
    assert f.min() < 0.65 and f.max() > 1.35 and abs(f.mean().item() - 1.0) < 0.05


def test_contrast_matches_the_blend_with_the_grey_mean_formula() -> None:
    x = torch.rand(4, 3, 6, 6, dtype=torch.float64)
    y = ColorJitter(brightness=0, contrast=(0.5, 0.5), saturation=0, hue=0, p=1.0)(x)
    m = _luma64(x).mean(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(y, (0.5 * x + 0.5 * m).clamp(0, 1))
    g = torch.rand(4, 1, 6, 6, dtype=torch.float64)
    yg = BrightnessContrast(brightness=0.0, contrast=(2.0, 2.0), p=1.0)(g)
    torch.testing.assert_close(yg, (2.0 * g - g.mean(dim=(1, 2, 3), keepdim=True)).clamp(0, 1))


def test_saturation_zero_gives_luma_and_two_doubles_chroma() -> None:
    x = torch.rand(4, 3, 6, 6, dtype=torch.float64)
    grey = ColorJitter(brightness=0, contrast=0, saturation=(0.0, 0.0), hue=0, p=1.0)(x)
    torch.testing.assert_close(grey, _luma64(x).expand_as(x))
    sat = ColorJitter(brightness=0, contrast=0, saturation=(2.0, 2.0), hue=0, p=1.0)(x)
    torch.testing.assert_close(sat, (2 * x - _luma64(x)).clamp(0, 1))


def _yiq64(x: torch.Tensor) -> torch.Tensor:
    m = torch.tensor(
        [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]],
        dtype=torch.float64,
    )
    return torch.einsum("ij,bjhw->bihw", m, x.double())


def test_hue_rotation_keeps_luma_and_chroma_and_rotates_by_the_angle() -> None:
    # desaturated colours around grey 0.5 stay inside the RGB cube after any rotation
    x = 0.5 + 0.15 * (torch.rand(6, 3, 4, 4, dtype=torch.float64) * 2 - 1)
    turns = torch.tensor([0.0, 0.1, -0.1, 0.25, 0.5, -0.37], dtype=torch.float64)
    y = rotate_hue(x, turns)
    a, b = _yiq64(x), _yiq64(y)
    torch.testing.assert_close(b[:, 0], a[:, 0], atol=1e-5, rtol=0)
    za = torch.complex(a[:, 1], a[:, 2])
    zb = torch.complex(b[:, 1], b[:, 2])
    torch.testing.assert_close(zb.abs(), za.abs(), atol=1e-5, rtol=0)
    rot = torch.exp(1j * 2 * math.pi * turns).view(-1, 1, 1)
    torch.testing.assert_close(zb, za * rot, atol=1e-5, rtol=0)


def test_hue_jitter_alone_is_identity_on_grey_images() -> None:
    g = torch.rand(5, 1, 6, 6).expand(5, 3, 6, 6)
    y = ColorJitter(brightness=0, contrast=0, saturation=0, hue=0.5, p=1.0)(g)
    torch.testing.assert_close(y, g, atol=1e-5, rtol=0)


def test_grayscale_weights() -> None:
    x = torch.rand(5, 3, 7, 7, dtype=torch.float64)
    y = RandomGrayscale(p=1.0)(x)
    torch.testing.assert_close(y, _luma64(x).expand_as(x))
    red = torch.zeros(1, 3, 1, 1)
    red[:, 0] = 1.0
    torch.testing.assert_close(luma(red).flatten(), torch.tensor([0.299]))
    assert torch.equal(RandomGrayscale(p=0.0)(x), x)


def test_solarize_closed_form() -> None:
    x = torch.rand(4, 2, 8, 8)
    y = Solarize(threshold=0.5, p=1.0)(x)
    assert torch.equal(y, torch.where(x >= 0.5, 1 - x, x))
    assert torch.equal(Solarize(threshold=0.5, p=0.0)(x), x)


@pytest.mark.parametrize(
    "op, channels",
    [
        (ColorJitter(p=0.5), 3),
        (BrightnessContrast(p=0.5), 1),
        (RandomGrayscale(p=0.5), 3),
        (Solarize(p=0.5), 1),
    ],
)
def test_probability_selects_whole_images(op: torch.nn.Module, channels: int) -> None:
    x = torch.rand(1000, channels, 4, 4) * 0.6 + 0.2
    y = op(x, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert y.min() >= 0 and y.max() <= 1
    changed = (y != x).flatten(1).any(1).float().mean().item()
    assert 0.43 < changed < 0.57


def test_unselected_images_are_returned_exactly() -> None:
    x = torch.rand(6, 3, 5, 5)
    for op in (ColorJitter(p=0.0), BrightnessContrast(p=0.0), RandomGrayscale(p=0.0), Solarize(p=0.0)):
        assert torch.equal(op(x), x)


def test_three_channel_ops_reject_grey_images() -> None:
    g = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match="3 channels"):
        ColorJitter()(g)
    with pytest.raises(ValueError, match="3 channels"):
        RandomGrayscale()(g)


@pytest.mark.parametrize(
    "make",
    [
        lambda: ColorJitter(brightness=-0.1),
        lambda: ColorJitter(hue=0.6),
        lambda: ColorJitter(contrast=(1.5, 0.5)),
        lambda: ColorJitter(p=2.0),
        lambda: BrightnessContrast(brightness="a"),
        lambda: Solarize(threshold=1.5),
        lambda: RandomGrayscale(p=-0.1),
    ],
)
def test_bad_colour_arguments_raise(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


def test_jitter_is_differentiable() -> None:
    x = torch.rand(3, 3, 6, 6, requires_grad=True)
    ColorJitter(p=1.0)(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_jitter_gradient_matches_finite_differences() -> None:
    """In-place updates inside ColorJitter must keep autograd exact (away from the clamp kinks)."""
    x = (0.4 + 0.2 * torch.rand(2, 3, 3, 3, dtype=torch.float64)).requires_grad_(True)
    op = ColorJitter(brightness=0.1, contrast=0.1, saturation=0.1, hue=0.05, p=1.0)

    def fn(inp: torch.Tensor) -> torch.Tensor:
        return op(inp, generator=torch.Generator().manual_seed(0))

    assert torch.autograd.gradcheck(fn, (x,))
