"""Backbones (ResNet-18/34/50, DC ConvNet), heads and the backbone registry. Pure torch."""

from __future__ import annotations

from contrastkit.models.backbone import Backbone, check_image_batch
from contrastkit.models.convnet import ConvNet
from contrastkit.models.heads import (
    LinearClassifier,
    MoCoV2ProjectionHead,
    PredictionHead,
    ProjectionHead,
    SimCLRProjectionHead,
)
from contrastkit.models.norm import group_norm_groups, make_norm2d
from contrastkit.models.registry import BACKBONES, backbone_from_config, build_backbone
from contrastkit.models.resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50

__all__ = [
    "BACKBONES",
    "Backbone",
    "BasicBlock",
    "Bottleneck",
    "ConvNet",
    "LinearClassifier",
    "MoCoV2ProjectionHead",
    "PredictionHead",
    "ProjectionHead",
    "ResNet",
    "SimCLRProjectionHead",
    "backbone_from_config",
    "build_backbone",
    "check_image_batch",
    "group_norm_groups",
    "make_norm2d",
    "resnet18",
    "resnet34",
    "resnet50",
]
