"""Random resized crop (fused flips), flips and the returned crop geometry."""

from __future__ import annotations

import math

import pytest
import torch

from contrastkit.augment import (
    CropParams,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomVerticalFlip,
)


def _identity_crop(size: int, **kw: float) -> RandomResizedCrop:
    return RandomResizedCrop(size, scale=(1.0, 1.0), ratio=(1.0, 1.0), **kw)


@pytest.mark.parametrize("shape", [(4, 1, 28, 28), (3, 3, 16, 16)])
def test_rrc_full_scale_square_ratio_is_identity(shape: tuple[int, ...]) -> None:
    x = torch.rand(shape)
    out = _identity_crop(shape[-1])(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_forced_flips_equal_torch_flip() -> None:
    x = torch.rand(5, 2, 12, 12)
    torch.testing.assert_close(_identity_crop(12, hflip_p=1.0)(x), torch.flip(x, [-1]), atol=1e-5, rtol=0)
    torch.testing.assert_close(_identity_crop(12, vflip_p=1.0)(x), torch.flip(x, [-2]), atol=1e-5, rtol=0)
    both = _identity_crop(12, hflip_p=1.0, vflip_p=1.0)(x)
    torch.testing.assert_close(both, torch.flip(x, [-2, -1]), atol=1e-5, rtol=0)
    assert torch.equal(RandomHorizontalFlip(p=1.0)(x), torch.flip(x, [-1]))
    assert torch.equal(RandomVerticalFlip(p=1.0)(x), torch.flip(x, [-2]))
    assert torch.equal(RandomHorizontalFlip(p=0.0)(x), x)


def test_standalone_flip_is_per_image() -> None:
    x = torch.rand(400, 1, 4, 4)
    y = RandomHorizontalFlip(p=0.5)(x, generator=torch.Generator().manual_seed(3))
    flipped = (y == torch.flip(x, [-1])).flatten(1).all(1)
    kept = (y == x).flatten(1).all(1)
    assert bool((flipped | kept).all())
    assert 0.4 < flipped.float().mean().item() < 0.6


def _gradient_images(b: int, h: int, w: int) -> torch.Tensor:
    """Channel 0 holds the column index, channel 1 the row index (bilinear sampling keeps them exact)."""
    cols = torch.arange(w, dtype=torch.float32).expand(h, w)
    rows = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
    return torch.stack((cols, rows)).expand(b, 2, h, w).contiguous()


@pytest.mark.parametrize("out_size", [(12, 12), (9, 15)])
def test_returned_params_map_view_pixels_back_to_source_pixels(out_size: tuple[int, int]) -> None:
    b, h, w = 64, 20, 24
    x = _gradient_images(b, h, w)
    op = RandomResizedCrop(out_size, scale=(0.1, 1.0), hflip_p=0.5, vflip_p=0.5)
    out, params = op(x, generator=torch.Generator().manual_seed(0), return_params=True)
    assert op.last_params is params
    assert out.shape == (b, 2, *out_size)
    oh, ow = out_size
    vy, vx = torch.meshgrid(torch.arange(oh) + 0.5, torch.arange(ow) + 0.5, indexing="ij")
    centres = torch.stack((vx.flatten(), vy.flatten()), -1).expand(b, -1, -1).double()
    src = params.view_to_source(centres)  # continuous source coords of every view pixel centre
    want_col = (src[..., 0] - 0.5).clamp(0, w - 1).view(b, oh, ow)
    want_row = (src[..., 1] - 0.5).clamp(0, h - 1).view(b, oh, ow)
    torch.testing.assert_close(out[:, 0].double(), want_col, atol=1e-4, rtol=0)
    torch.testing.assert_close(out[:, 1].double(), want_row, atol=1e-4, rtol=0)
    # a flipped view reads its first column from the right edge of its box
    assert params.hflip.any() and (~params.hflip).any() and params.vflip.any()
    back = params.source_to_view(src)
    torch.testing.assert_close(back, centres, atol=1e-9, rtol=0)


def test_boxes_lie_inside_and_follow_scale_and_ratio() -> None:
    scale, ratio = (0.2, 0.6), (0.5, 2.0)
    op = RandomResizedCrop(16, scale=scale, ratio=ratio)
    p = op.sample_params(2000, 30, 30, torch.device("cpu"), torch.Generator().manual_seed(1))
    x0, y0, x1, y1 = p.boxes.unbind(1)
    assert bool((x0 >= 0).all() and (y0 >= 0).all() and (x1 <= 30 + 1e-4).all() and (y1 <= 30 + 1e-4).all())
    area = (x1 - x0) * (y1 - y0) / 900.0
    aspect = (x1 - x0) / (y1 - y0)
    assert bool((area >= scale[0] - 1e-5).all() and (area <= scale[1] + 1e-5).all())
    assert bool((aspect >= ratio[0] - 1e-5).all() and (aspect <= ratio[1] + 1e-5).all())
    # log-aspect is uniform: its mean is near the centre of the log range
    assert abs(aspect.log().mean().item()) < 0.05
    # the corner is spread over the free range, not stuck at a side
    free = 30 - (x1 - x0)
    rel = x0 / free.clamp_min(1e-6)
    assert 0.4 < rel.mean().item() < 0.6


def test_impossible_ratio_falls_back_to_centre_crop() -> None:
    op = RandomResizedCrop(8, scale=(0.5, 1.0), ratio=(3.0, 4.0))
    p = op.sample_params(6, 12, 12, torch.device("cpu"), torch.Generator().manual_seed(0))
    want = torch.tensor([0.0, 4.0, 12.0, 8.0]).expand(6, 4)  # w = 12, h = 12 / 3, centred
    torch.testing.assert_close(p.boxes, want)


def test_nearest_interpolation_only_copies_source_values() -> None:
    x = torch.randint(0, 50, (8, 1, 20, 20)).float()
    out = RandomResizedCrop(13, interpolation="nearest")(x)
    for b in range(8):
        assert bool(torch.isin(out[b], x[b]).all())


def test_apply_reuses_geometry_for_another_tensor() -> None:
    op = RandomResizedCrop(10, hflip_p=0.5)
    x = torch.rand(4, 3, 20, 20)
    out, params = op(x, return_params=True)
    torch.testing.assert_close(op.apply(x[:, :1], params), out[:, :1])
    with pytest.raises(ValueError, match="params were sampled"):
        op.apply(torch.rand(4, 3, 21, 20), params)


def test_params_chunk_splits_the_batch() -> None:
    p = RandomResizedCrop(8).sample_params(6, 10, 10, torch.device("cpu"))
    parts = p.chunk(3)
    assert len(parts) == 3 and all(isinstance(q, CropParams) and q.boxes.shape == (2, 4) for q in parts)
    torch.testing.assert_close(torch.cat([q.boxes for q in parts]), p.boxes)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": 0},
        {"size": (3, 4, 5)},
        {"size": 8, "scale": (0.0, 1.0)},
        {"size": 8, "scale": (0.9, 0.1)},
        {"size": 8, "scale": (0.5, 1.5)},
        {"size": 8, "ratio": (0.0, 1.0)},
        {"size": 8, "hflip_p": 1.5},
        {"size": 8, "interpolation": "bicubic"},
    ],
)
def test_bad_crop_arguments_raise(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        RandomResizedCrop(**kwargs)


@pytest.mark.parametrize(
    "x, match",
    [
        (torch.rand(3, 8, 8), "4 dimensions"),
        (torch.randint(0, 255, (2, 1, 8, 8)), "floating-point"),
        (torch.rand(0, 1, 8, 8), "empty"),
        ([[1.0]], "torch.Tensor"),
    ],
)
def test_bad_images_raise(x: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RandomResizedCrop(8)(x)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=match):
        RandomHorizontalFlip()(x)  # type: ignore[arg-type]


def test_float64_input_keeps_dtype_and_range() -> None:
    x = torch.rand(4, 1, 28, 28, dtype=torch.float64)
    out = RandomResizedCrop(28, hflip_p=0.5)(x)
    assert out.dtype == torch.float64 and out.shape == x.shape
    assert out.min() >= 0 and out.max() <= 1
    assert not math.isnan(out.sum().item())
