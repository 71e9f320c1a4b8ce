"""Registry: build by name, config round trip through JSON + state_dict, clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from contrastkit.models import BACKBONES, Backbone, backbone_from_config, build_backbone

CASES = [
    ("resnet18", {"width": 0.125, "small_stem": True, "in_channels": 1, "norm": "group"}, (2, 1, 16, 16)),
    ("resnet34", {"width": 0.125, "zero_init_residual": True}, (2, 3, 16, 16)),
    ("resnet50", {"width": 0.125, "replace_stride_with_dilation": (False, True, True)}, (2, 3, 16, 16)),
    (
        "resnet",
        {"block": "bottleneck", "layers": [1, 1, 1, 1], "width": 0.125, "norm": "none"},
        (2, 3, 16, 16),
    ),
    (
        "convnet",
        {"in_channels": 3, "image_size": 16, "width": 8, "depth": 2, "num_classes": 4},
        (2, 3, 16, 16),
    ),
]


@pytest.mark.parametrize("name, kwargs, shape", CASES)
def test_config_round_trip_rebuilds_identical_model(name: str, kwargs: dict, shape: tuple[int, ...]) -> None:
    model = build_backbone(name, **kwargs)
    assert isinstance(model, Backbone)
    config = json.loads(json.dumps(model.config))  # must be JSON-serialisable
    assert config == model.config and config["name"] == name
    torch.manual_seed(123)  # a different init than `model`
    rebuilt = backbone_from_config(config)
    assert type(rebuilt) is type(model) and rebuilt.num_features == model.num_features
    assert str(rebuilt) == str(model)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert shapes == {k: v.shape for k, v in rebuilt.state_dict().items()}
    x = torch.randn(*shape)
    model.eval(), rebuilt.eval()
    assert (model(x) - rebuilt(x)).abs().max() > 0  # different weights before loading
    rebuilt.load_state_dict(model.state_dict())
    torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)
    assert rebuilt.config == model.config


def test_unknown_name_lists_known_backbones() -> None:
    with pytest.raises(ValueError, match="unknown backbone 'vit'; known backbones: ") as info:
        build_backbone("vit")
    for name in ("resnet18", "resnet34", "resnet50", "convnet"):
        assert name in str(info.value)
    assert set(BACKBONES) >= {"resnet18", "resnet34", "resnet50", "convnet"}


def test_bad_kwargs_and_bad_config() -> None:
    with pytest.raises(ValueError, match="bad arguments for backbone 'resnet18'"):
        build_backbone("resnet18", depth=3)
    with pytest.raises(ValueError, match="bad arguments for backbone 'convnet'"):
        build_backbone("convnet", width=8)  # in_channels / image_size missing
    with pytest.raises(ValueError, match="config must be a dict"):
        backbone_from_config({"kwargs": {}})
    with pytest.raises(ValueError, match="config\\['kwargs'\\] must be a dict"):
        backbone_from_config({"name": "resnet18", "kwargs": [1]})
