"""ResNet backbones: shapes, parameter counts, stems, norms, zero-init, bf16/channels_last, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from contrastkit.models import BasicBlock, Bottleneck, ResNet, group_norm_groups, resnet18, resnet34, resnet50
from contrastkit.models.resnet import scaled_channels

TINY = 0.125  # 8/16/32/64 channels per stage


@pytest.mark.parametrize("ctor, expansion", [(resnet18, 1), (resnet34, 1), (resnet50, 4)])
@pytest.mark.parametrize("width", [0.125, 0.25])
@pytest.mark.parametrize("small_stem", [True, False])
@pytest.mark.parametrize("in_channels", [1, 3])
def test_output_shapes_and_num_features(ctor, expansion, width, small_stem, in_channels) -> None:
    model = ctor(width=width, small_stem=small_stem, in_channels=in_channels)
    x = torch.randn(2, in_channels, 16, 16)
    out = model(x)
    assert model.num_features == round(512 * width) * expansion
    assert out.shape == (2, model.num_features)
    stages = model.forward_stages(x)
    assert [s.shape[1] for s in stages] == list(model.stage_channels)
    for s, stride in zip(stages, model.stage_strides, strict=True):
        assert s.shape[-2:] == (math.ceil(16 / stride), math.ceil(16 / stride))
    maps = model.forward_features(x)
    assert maps.shape == stages[-1].shape
    torch.testing.assert_close(out, maps.mean(dim=(2, 3)))


def test_width_rounding_has_a_floor_of_eight_channels() -> None:
    assert scaled_channels(64, 0.01) == 8
    assert scaled_channels(64, 0.3) == 19
    model = resnet18(width=0.01, small_stem=True)
    assert model.stage_channels == (8, 8, 8, 8)
    assert model.conv1.out_channels == 8


@pytest.mark.parametrize(
    "ctor, expected",
    [(resnet18, 11_176_512), (resnet34, 21_284_672), (resnet50, 23_508_032)],
)
def test_parameter_count_equals_the_standard_resnet_without_fc(ctor, expected) -> None:
    # the standard ImageNet ResNets (He et al., CVPR 2016) total 11,689,512 / 21,797,672 / 25,557,032
    # minus the fc (512*1000+1000 / 2048*1000+1000).
    model = ctor()
    assert sum(p.numel() for p in model.parameters()) == expected


def test_small_stem_keeps_resolution_standard_stem_divides_by_four() -> None:
    x = torch.randn(2, 3, 16, 16)
    small, standard = resnet18(width=TINY, small_stem=True), resnet18(width=TINY)
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in small.modules())
    assert small.forward_stages(x)[0].shape[-2:] == (16, 16)
    assert standard.forward_stages(x)[0].shape[-2:] == (4, 4)
    assert small.stage_strides == (1, 2, 4, 8) and standard.stage_strides == (4, 8, 16, 32)


def test_dilation_keeps_output_stride_16() -> None:
    model = resnet50(width=TINY, replace_stride_with_dilation=(False, False, True))
    assert model.stage_strides == (4, 8, 16, 16)
    assert model.forward_features(torch.randn(1, 3, 32, 32)).shape == (1, model.num_features, 2, 2)
    dilations = {
        m.dilation for m in model.layer4.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)
    }
    assert dilations == {(1, 1), (2, 2)}  # first block keeps the previous dilation (the usual dilated-ResNet rule)


def test_group_norm_groups() -> None:
    assert [group_norm_groups(c) for c in (64, 16, 12, 8, 4, 2, 1, 19)] == [8, 8, 6, 4, 2, 1, 1, 1]


@pytest.mark.parametrize("norm", ["group", "none"])
def test_batch_independent_norms_have_no_batchnorm(norm: str) -> None:
    model = resnet18(width=TINY, small_stem=True, norm=norm).double().train()
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if norm == "group":
        gns = [m for m in model.modules() if isinstance(m, nn.GroupNorm)]
        assert gns and all(m.num_groups <= 8 and m.num_channels % m.num_groups == 0 for m in gns)
    x = torch.randn(6, 3, 16, 16, dtype=torch.float64)
    full = model(x)
    alone = model(x[:2])
    shuffled_rest = model(torch.cat([x[:2], torch.randn(3, 3, 16, 16, dtype=torch.float64)]))
    torch.testing.assert_close(full[:2], alone, rtol=0, atol=1e-10)
    torch.testing.assert_close(full[:2], shuffled_rest[:2], rtol=0, atol=1e-10)


def test_batchnorm_in_train_mode_depends_on_the_batch() -> None:
    # Negative control for the test above: train-mode BN mixes samples.
    model = resnet18(width=TINY, small_stem=True, norm="batch").double().train()
    x = torch.randn(6, 3, 16, 16, dtype=torch.float64)
    other = torch.cat([x[:2], 3.0 * torch.randn(4, 3, 16, 16, dtype=torch.float64)])
    assert (model(x)[:2] - model(other)[:2]).abs().max() > 1e-3


@pytest.mark.parametrize("norm", ["batch", "group", "none"])
@pytest.mark.parametrize("ctor", [resnet18, resnet50])
def test_zero_init_residual_makes_blocks_start_as_identity(ctor, norm: str) -> None:
    model = ctor(width=TINY, small_stem=True, zero_init_residual=True, norm=norm).double().eval()
    block = model.layer1[1]  # no downsample: output = relu(x) for any x
    assert isinstance(block, (BasicBlock, Bottleneck)) and block.downsample is None
    x = torch.randn(2, block.last_layers()[0].out_channels, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(block(x.clone()), torch.relu(x))
    plain = ctor(width=TINY, small_stem=True, norm=norm).double().eval()
    assert (plain.layer1[1](x.clone()) - torch.relu(x)).abs().max() > 1e-3


@pytest.mark.parametrize("norm", ["batch", "group"])
def test_bf16_autocast_channels_last_is_finite_and_close_to_fp32(norm: str) -> None:
    model = resnet18(width=0.25, small_stem=True, norm=norm).eval()
    x = torch.randn(4, 3, 16, 16)
    ref = model(x)
    model_cl = model.to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model_cl(x_cl)
        maps = model_cl.forward_features(x_cl)
    assert torch.isfinite(out).all() and torch.isfinite(maps).all()
    rel = (out.float() - ref).norm() / ref.norm()
    assert rel < 0.05, f"bf16 relative error {rel:.3f}"


def test_generic_resnet_and_invalid_arguments() -> None:
    model = ResNet("basic", [1, 1, 1, 1], width=TINY, small_stem=True)
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 64)
    assert model.config["name"] == "resnet" and model.config["kwargs"]["layers"] == [1, 1, 1, 1]
    with pytest.raises(ValueError, match="block must be one of"):
        ResNet("wide", [1, 1, 1, 1])
    with pytest.raises(ValueError, match="layers must be 4 positive ints"):
        ResNet("basic", [1, 1, 1])
    with pytest.raises(ValueError, match="width must be"):
        resnet18(width=0.0)
    with pytest.raises(ValueError, match="norm must be one of"):
        resnet18(norm="layer")
    with pytest.raises(ValueError, match="in_channels must be a positive int"):
        resnet18(in_channels=0)
    with pytest.raises(ValueError, match="name must be 'resnet'"):
        ResNet("basic", [1, 1, 1, 1], name="resnet18")


@pytest.mark.parametrize(
    "bad, fragment",
    [
        (
            torch.randn(2, 3, 16, 16),
            r"expected \[B, 1, H, W\] float images for in_channels=1, got shape \(2, 3",
        ),
        (torch.randn(1, 16, 16), r"got shape \(1, 16, 16\)"),
        (torch.zeros(2, 1, 16, 16, dtype=torch.uint8), "dtype torch.uint8"),
        ([[0.0]], "got a list"),
    ],
)
def test_bad_input_raises_one_line_value_error(bad: object, fragment: str) -> None:
    model = resnet18(width=TINY, small_stem=True, in_channels=1)
    for call in (model, model.forward_features, model.forward_stages):
        with pytest.raises(ValueError, match=fragment) as info:
            call(bad)
        assert "\n" not in str(info.value)
