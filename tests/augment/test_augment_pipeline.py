"""ViewPipeline, multi_view, presets: shapes, reproducibility, independence, no per-image Python loop."""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode

from contrastkit.augment import (
    BrightnessContrast,
    ColorJitter,
    CropParams,
    GaussianBlur,
    GaussianNoise,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Solarize,
    ViewPipeline,
    local_crop_pipeline,
    mocov2_views,
    multi_view,
    simclr_views,
)

PRESET_CASES = [(28, 1), (32, 3), (64, 3), (32, 4)]


@pytest.mark.parametrize("preset", [simclr_views, mocov2_views])
@pytest.mark.parametrize("size, channels", PRESET_CASES)
def test_presets_keep_shape_dtype_and_range(preset: object, size: int, channels: int) -> None:
    pipe = preset(size, channels)  # type: ignore[operator]
    assert isinstance(pipe, ViewPipeline)
    x = torch.rand(6, channels, size + 4, size + 2)
    y = pipe(x)
    assert y.shape == (6, channels, size, size) and y.dtype == x.dtype
    assert y.min() >= 0 and y.max() <= 1


def test_simclr_preset_composition() -> None:
    grey = simclr_views(28, 1)
    kinds = [type(op) for op in grey.ops]
    assert kinds == [RandomResizedCrop, BrightnessContrast]
    assert grey.ops[0].scale == (0.2, 1.0) and grey.ops[0].hflip_p == 0.5
    assert grey.ops[1].p == 0.8 and grey.ops[1].brightness == pytest.approx((0.6, 1.4))
    rgb = simclr_views(32, 3)
    assert [type(op) for op in rgb.ops] == [RandomResizedCrop, ColorJitter, RandomGrayscale]
    assert rgb.ops[0].scale == (0.08, 1.0)
    jit = rgb.ops[1]
    assert jit.p == 0.8 and jit.hue == pytest.approx((-0.1, 0.1)) and jit.saturation == pytest.approx((0.6, 1.4))
    assert rgb.ops[2].p == 0.2
    big = simclr_views(96, 3)
    assert isinstance(big.ops[-1], GaussianBlur) and big.ops[-1].kernel_size == 9
    assert not any(isinstance(op, GaussianBlur) for op in simclr_views(32, 3, blur=False).ops)


def test_mocov2_preset_composition() -> None:
    rgb = mocov2_views(32, 3)
    assert [type(op) for op in rgb.ops] == [RandomResizedCrop, ColorJitter, RandomGrayscale, GaussianBlur]
    assert rgb.ops[0].scale == (0.2, 1.0) and rgb.ops[-1].p == 0.5 and rgb.ops[-1].sigma == (0.1, 2.0)
    grey = mocov2_views(28, 1)
    assert [type(op) for op in grey.ops] == [RandomResizedCrop, BrightnessContrast, GaussianBlur]


@pytest.mark.parametrize("size, channels", [(28, 1), (32, 3)])
def test_same_seed_same_views_other_seed_other_views(size: int, channels: int) -> None:
    pipe = mocov2_views(size, channels)
    x = torch.rand(8, channels, size, size)
    a = multi_view(x, 2, pipe, generator=torch.Generator().manual_seed(7))
    b = multi_view(x, 2, pipe, generator=torch.Generator().manual_seed(7))
    c = multi_view(x, 2, pipe, generator=torch.Generator().manual_seed(8))
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert not torch.allclose(a[0], c[0])


def test_global_rng_state_reproduces_views() -> None:
    pipe = simclr_views(32, 3)
    x = torch.rand(8, 3, 32, 32)
    torch.manual_seed(123)
    a = pipe(x)
    state = torch.get_rng_state()
    a2 = pipe(x)
    torch.set_rng_state(state)
    b2 = pipe(x)
    torch.manual_seed(123)
    b = pipe(x)
    assert torch.equal(a, b) and torch.equal(a2, b2) and not torch.equal(a, a2)


def test_views_of_the_same_batch_differ_per_image() -> None:
    x = torch.rand(16, 1, 28, 28)
    v1, v2 = multi_view(x, 2, simclr_views(28, 1))
    per_image_diff = (v1 - v2).abs().flatten(1).mean(1)
    assert bool((per_image_diff > 1e-3).all())


def test_multi_view_returns_per_view_params() -> None:
    x = torch.rand(5, 3, 20, 20)
    pipe = ViewPipeline([RandomResizedCrop(12, hflip_p=0.5), ColorJitter()])
    views, params = multi_view(x, 3, pipe, return_params=True)
    assert len(views) == 3 and len(params) == 3
    assert all(v.shape == (5, 3, 12, 12) for v in views)
    assert all(isinstance(p, CropParams) and p.boxes.shape == (5, 4) for p in params)
    assert not torch.equal(params[0].boxes, params[1].boxes)
    assert pipe.last_params is params[-1]
    _, none_params = multi_view(x, 2, ViewPipeline([Solarize()]), return_params=True)
    assert none_params == [None, None]
    with pytest.raises(ValueError, match="positive int"):
        multi_view(x, 0, pipe)


def test_pipeline_params_reproduce_the_geometry() -> None:
    x = torch.rand(4, 1, 16, 16)
    crop = RandomResizedCrop(10, hflip_p=0.5)
    pipe = ViewPipeline([crop])
    y, params = pipe(x, return_params=True)
    assert params is not None
    torch.testing.assert_close(crop.apply(x, params), y)


class _CountTorchCalls(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        self.calls += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize(
    "pipe, channels",
    [
        (simclr_views(28, 1), 1),
        (simclr_views(64, 3), 3),
        (
            ViewPipeline(
                [
                    RandomResizedCrop(16, hflip_p=0.5, vflip_p=0.5),
                    RandomHorizontalFlip(),
                    Solarize(),
                    GaussianNoise(),
                ]
            ),
            2,
        ),
    ],
)
def test_work_does_not_loop_over_images(pipe: ViewPipeline, channels: int) -> None:
    """The number of torch calls is the same for 2 and 33 images: no Python loop over the batch."""
    counts = []
    for b in (2, 33):
        x = torch.rand(b, channels, 24, 24)
        with _CountTorchCalls() as mode:
            pipe(x, generator=torch.Generator().manual_seed(0))
        counts.append(mode.calls)
    assert counts[0] == counts[1] and counts[0] > 0


def test_pipeline_rejects_bad_input() -> None:
    pipe = simclr_views(28, 1)
    with pytest.raises(ValueError, match="4 dimensions"):
        pipe(torch.rand(28, 28))
    with pytest.raises(ValueError, match="floating-point"):
        pipe(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="3 channels"):
        simclr_views(32, 3)(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="nn.Module"):
        ViewPipeline([lambda x: x])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="image_size"):
        simclr_views(0, 1)
    with pytest.raises(ValueError, match="channels"):
        mocov2_views(32, 0)


def test_local_crop_pipeline_scales_the_crop_and_leaves_the_original() -> None:
    crop = RandomResizedCrop(size=(12, 16), scale=(0.2, 1.0), hflip_p=0.5)
    original = ViewPipeline([crop])
    local = local_crop_pipeline(original, 0.5)
    view = local(torch.rand(3, 1, 24, 32), generator=torch.Generator().manual_seed(0))
    assert view.shape == (3, 1, 6, 8) and local.ops[0].scale == (0.1, 0.5) and local.ops[0].hflip_p == 0.5
    assert crop.size == (12, 16) and crop.scale == (0.2, 1.0) and local.ops[0] is not crop
    with pytest.raises(ValueError, match="RandomResizedCrop"):
        local_crop_pipeline(ViewPipeline([]), 0.5)
    with pytest.raises(ValueError, match="ratio must be in"):
        local_crop_pipeline(original, 1.5)
