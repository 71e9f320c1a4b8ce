"""Residual MLP backbone: the formula against a float64 hand computation, zero-init residual blocks as the
identity, the Backbone interface (config round trip, export), the config keys that reach it, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from contrastkit.models import ResidualMLP, backbone_from_config, build_backbone, export_backbone, load_backbone
from contrastkit.train.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny_test.yaml"


def test_shapes_and_post_relu_representation() -> None:
    net = ResidualMLP(1, 8, width=16, depth=3)
    x = torch.rand(5, 1, 8, 8)
    r = net(x)
    assert net.num_features == 16 and r.shape == (5, 16) and bool((r >= 0).all())
    assert net.forward_features(x).shape == (5, 16, 1, 1)
    torch.testing.assert_close(net.forward_features(x).flatten(1), r)
    torch.testing.assert_close(r, net.pre_activation(x).relu())
    assert len(net.blocks) == 3 and ResidualMLP(2, (4, 6), width=8).stem.in_features == 2 * 4 * 6


def test_forward_matches_the_formula_in_float64() -> None:
    """r = relu(h_L), h_k = h_{k-1} + W2 relu(W1 h_{k-1} + b1) + b2, h_0 = Ws x + bs (norm none)."""
    torch.manual_seed(0)
    net = ResidualMLP(1, 4, width=6, depth=2, norm="none").double()
    x = torch.rand(3, 1, 4, 4, dtype=torch.float64)
    h = x.flatten(1) @ net.stem.weight.T + net.stem.bias
    for block in net.blocks:
        inner = torch.clamp(h @ block.fc1.weight.T + block.fc1.bias, min=0)
        h = h + inner @ block.fc2.weight.T + block.fc2.bias
    torch.testing.assert_close(net(x), torch.clamp(h, min=0), rtol=0, atol=1e-12)


def test_batch_norm_branches_normalise_over_the_batch_and_have_no_biases() -> None:
    net = ResidualMLP(1, 4, width=6, depth=1, norm="batch").double().train()
    block = net.blocks[0]
    assert isinstance(block.norm1, nn.BatchNorm1d) and block.fc1.bias is None and block.fc2.bias is None
    h = torch.randn(8, 6, dtype=torch.float64)
    a = h @ block.fc1.weight.T
    a = ((a - a.mean(0)) / torch.sqrt(a.var(0, unbiased=False) + block.norm1.eps)).clamp(min=0)
    b = a @ block.fc2.weight.T
    b = (b - b.mean(0)) / torch.sqrt(b.var(0, unbiased=False) + block.norm2.eps)
    torch.testing.assert_close(block(h), h + b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_zero_init_residual_makes_every_block_the_identity(norm: str) -> None:
    torch.manual_seed(1)
    net = ResidualMLP(1, 8, width=12, depth=3, norm=norm, zero_init_residual=True).train()
    x = torch.rand(6, 1, 8, 8)
    torch.testing.assert_close(net(x), net.stem(x.flatten(1)).relu(), rtol=0, atol=0)
    zeroed = [b.norm2.weight if norm == "batch" else b.fc2.weight for b in net.blocks]
    assert all(bool((w == 0).all()) for w in zeroed)
    plain = ResidualMLP(1, 8, width=12, depth=3, norm=norm).train()
    assert (plain(x) - plain.stem(x.flatten(1)).relu()).abs().max() > 1e-3


def test_config_round_trip_and_export(tmp_path: Path) -> None:
    net = build_backbone("residual_mlp", in_channels=1, image_size=8, width=16, depth=2, norm="none",
                         zero_init_residual=True).eval()  # fmt: skip
    config = json.loads(json.dumps(net.config))
    kwargs = {"in_channels": 1, "image_size": [8, 8], "width": 16, "depth": 2, "norm": "none",
              "zero_init_residual": True}  # fmt: skip
    assert config == {"name": "residual_mlp", "kwargs": kwargs}
    again = backbone_from_config(config)
    again.load_state_dict(net.state_dict())
    x = torch.rand(4, 1, 8, 8)
    torch.testing.assert_close(again.eval()(x), net(x))
    loaded = load_backbone(export_backbone(net, tmp_path / "mlp.pt"))
    assert isinstance(loaded, ResidualMLP) and loaded.config == net.config
    torch.testing.assert_close(loaded(x), net(x))


def test_bad_input_is_a_one_line_error() -> None:
    with pytest.raises(ValueError, match=r"norm of the residual MLP must be one of \['batch', 'none'\]"):
        ResidualMLP(1, 8, norm="group")
    with pytest.raises(ValueError, match="width must be a positive int"):
        ResidualMLP(1, 8, width=0)
    with pytest.raises(ValueError, match="depth must be a positive int"):
        ResidualMLP(1, 8, depth=0)
    with pytest.raises(ValueError, match=r"expected \[B, 1, 8, 8\] float images"):
        ResidualMLP(1, 8)(torch.rand(2, 1, 9, 9))


def test_the_model_keys_reach_the_mlp_and_the_resnet() -> None:
    from contrastkit.data import ImageDataset
    from contrastkit.train.builders import build_method

    train = ImageDataset(torch.rand(4, 1, 8, 8), None, [], "noise")
    keys = ["trainer.max_steps=2", "model.backbone=residual_mlp", "model.width=32", "model.depth=3", "model.norm=none",
            "model.zero_init_residual=true"]  # fmt: skip
    backbone = build_method(load_config(TINY, keys), train).backbone
    assert isinstance(backbone, ResidualMLP)
    assert backbone.config["kwargs"] == {"in_channels": 1, "image_size": [8, 8], "width": 32, "depth": 3,
                                         "norm": "none", "zero_init_residual": True}  # fmt: skip
    resnet = build_method(load_config(TINY, ["trainer.max_steps=2", "model.zero_init_residual=true"]), train).backbone
    assert resnet.config["kwargs"]["zero_init_residual"] is True
    assert bool((resnet.layer1[0].bn2.weight == 0).all())
    default = build_method(load_config(TINY, ["trainer.max_steps=2"]), train).backbone
    assert default.config["kwargs"]["zero_init_residual"] is False


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.backbone=residual_mlp", "model.width=0.5"], "model.width is the channel count of the residual_mlp"),
        (["model.backbone=residual_mlp", "model.width=64", "model.norm=group"], "must be batch or none"),
        (["model.backbone=convnet", "model.width=16", "model.zero_init_residual=true"], "has no residuals"),
    ],
)
def test_bad_model_keys_are_config_errors(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(TINY, ["trainer.max_steps=2", *overrides])
