"""DC-style ConvNet: feature sizes, instance-norm formula, classifier/embed, second-order grads, bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from contrastkit.models import ConvNet


@pytest.mark.parametrize(
    "channels, size, depth, first_padding, spatial",
    [
        (1, 28, 3, 1, 3),  # 28 -> 14 -> 7 -> 3
        (3, 32, 3, 1, 4),  # 32 -> 16 -> 8 -> 4
        (1, 28, 3, 3, 4),  # official DC quirk for 1-channel inputs: 28 + 6 - 2 = 32 -> ... -> 4
        (3, 64, 4, 1, 4),  # 64 -> 32 -> 16 -> 8 -> 4
    ],
)
def test_feature_size_is_flattened_maps(channels, size, depth, first_padding, spatial) -> None:
    net = ConvNet(channels, size, width=16, depth=depth, first_padding=first_padding)
    assert net.num_features == 16 * spatial * spatial
    x = torch.randn(2, channels, size, size)
    assert net.forward_features(x).shape == (2, 16, spatial, spatial)
    assert net(x).shape == (2, net.num_features)
    torch.testing.assert_close(net.embed(x), net.forward_features(x).flatten(1))


def test_default_width_feature_sizes() -> None:
    assert ConvNet(1, 28).num_features == 128 * 3 * 3
    assert ConvNet(3, 32).num_features == 128 * 4 * 4 == 2048


@pytest.mark.parametrize("norm", ["instancenorm", "batchnorm", "layernorm", "groupnorm", "none"])
@pytest.mark.parametrize("activation", ["relu", "leakyrelu", "sigmoid"])
@pytest.mark.parametrize("pooling", ["avgpool", "maxpool", "none"])
def test_all_switches_build_and_run(norm: str, activation: str, pooling: str) -> None:
    net = ConvNet(3, (16, 12), width=8, depth=2, norm=norm, activation=activation, pooling=pooling)
    h, w = (4, 3) if pooling != "none" else (16, 12)
    assert net.feature_shape == (8, h, w)
    out = net(torch.randn(2, 3, 16, 12))
    assert out.shape == (2, 8 * h * w) and torch.isfinite(out).all()


def test_instancenorm_is_per_sample_per_channel_normalisation() -> None:
    net = ConvNet(3, 8, width=4, depth=1, norm="instancenorm", pooling="none").double()
    conv, norm = net.features[0], net.features[1]
    assert isinstance(norm, nn.GroupNorm) and norm.num_groups == norm.num_channels == 4
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([0.5, 2.0, -1.0, 1.5]))
        norm.bias.copy_(torch.tensor([0.1, -0.3, 0.2, 0.0]))
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    c = conv(x)
    mean = c.mean(dim=(2, 3), keepdim=True)
    var = ((c - mean) ** 2).mean(dim=(2, 3), keepdim=True)  # biased, as in GroupNorm
    manual = (c - mean) / torch.sqrt(var + norm.eps) * norm.weight.view(1, -1, 1, 1) + norm.bias.view(
        1, -1, 1, 1
    )
    torch.testing.assert_close(net.forward_features(x), torch.relu(manual), rtol=0, atol=1e-12)
    # per-sample: a sample's features do not change with the rest of the batch
    torch.testing.assert_close(net(x)[:1], net(x[:1]), rtol=0, atol=1e-12)


def test_batchnorm_convnet_depends_on_batch_in_train_mode() -> None:
    net = ConvNet(3, 8, width=4, depth=1, norm="batchnorm").double().train()
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    assert (net(x)[:1] - net(torch.cat([x[:1], 5 * x[1:]]))[:1]).abs().max() > 1e-3


def test_classifier_logits_and_embed() -> None:
    net = ConvNet(1, 16, width=8, depth=2, num_classes=5)
    x = torch.randn(3, 1, 16, 16)
    assert net.embed(x).shape == (3, 8 * 4 * 4)
    assert net(x).shape == (3, 5)
    torch.testing.assert_close(net(x), net.classifier(net.embed(x)))


def test_second_order_gradients_flow_for_gradient_matching() -> None:
    # DC/DCC differentiate a parameter gradient w.r.t. the synthetic images (create_graph=True).
    net = ConvNet(3, 8, width=8, depth=2, num_classes=3).double()
    images = torch.randn(4, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    loss = F.cross_entropy(net(images), torch.tensor([0, 1, 2, 0]))
    grads = torch.autograd.grad(loss, list(net.parameters()), create_graph=True)
    matching = sum((g**2).sum() for g in grads)
    (g_images,) = torch.autograd.grad(matching, images)
    assert torch.isfinite(g_images).all() and g_images.abs().max() > 0


def test_bf16_channels_last_forward() -> None:
    net = ConvNet(3, 16, width=16, depth=2).eval()
    x = torch.randn(4, 3, 16, 16)
    ref = net(x)
    net = net.to(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x.contiguous(memory_format=torch.channels_last))
    assert torch.isfinite(out).all()
    assert (out.float() - ref).norm() / ref.norm() < 0.05


def test_bad_input_and_bad_arguments() -> None:
    net = ConvNet(1, 28, width=8)
    with pytest.raises(ValueError, match=r"expected \[B, 1, 28, 28\] float images for in_channels=1"):
        net(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 28, 28\)"):
        net.embed(torch.randn(2, 3, 28, 28))
    with pytest.raises(ValueError, match="norm must be one of"):
        ConvNet(3, 32, norm="instance")
    with pytest.raises(ValueError, match="pooling must be one of"):
        ConvNet(3, 32, pooling="avgpooling")
    with pytest.raises(ValueError, match="multiple of 4"):
        ConvNet(3, 32, width=6, norm="groupnorm")
    with pytest.raises(ValueError, match="too small"):
        ConvNet(3, 4, depth=3)
    with pytest.raises(ValueError, match="image_size must be"):
        ConvNet(3, (32, 32, 3))
