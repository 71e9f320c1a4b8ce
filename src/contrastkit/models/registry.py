"""Backbones by name, and the inverse of ``Backbone.config``.

``build_backbone("resnet18", width=0.5, small_stem=True)`` and
``backbone_from_config(model.config)`` (a ``{"name": str, "kwargs": dict}`` dict, e.g. read back from JSON)
build the same architecture, so a backbone checkpoint is
``{"config": model.config, "state_dict": model.state_dict()}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from contrastkit.models.backbone import Backbone
from contrastkit.models.convnet import convnet
from contrastkit.models.graph import GCNEncoder
from contrastkit.models.mlp import residual_mlp
from contrastkit.models.resnet import ResNet, resnet18, resnet34, resnet50

BACKBONES: dict[str, Callable[..., Backbone]] = {
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "convnet": convnet,
    "residual_mlp": residual_mlp,
    "gcn": GCNEncoder,  # node encoder of graph methods: forward(x [n, F], edge_index [2, E])
    "resnet": ResNet,  # generic: kwargs carry block and layers
}


def build_backbone(name: str, **kwargs: Any) -> Backbone:
    """Build the backbone registered as ``name`` (one of ``BACKBONES``) with its keyword arguments."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; known backbones: {', '.join(sorted(BACKBONES))}")
    try:
        return BACKBONES[name](**kwargs)
    except TypeError as err:  # unexpected / missing keyword: make it a one-line ValueError
        raise ValueError(f"bad arguments for backbone {name!r}: {err}") from err


def backbone_from_config(config: Mapping[str, Any]) -> Backbone:
    """Rebuild a backbone from ``Backbone.config`` (``{"name": str, "kwargs": dict}``); no weights loaded."""
    if not isinstance(config, Mapping) or not isinstance(config.get("name"), str):
        raise ValueError(f"config must be a dict {{'name': str, 'kwargs': dict}} (Backbone.config), got {config!r}")
    kwargs = config.get("kwargs", {})
    if not isinstance(kwargs, Mapping):
        raise ValueError(f"config['kwargs'] must be a dict, got {type(kwargs).__name__}")
    return build_backbone(config["name"], **dict(kwargs))
