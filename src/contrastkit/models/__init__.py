"""Backbones (ResNet-18/34/50, DC ConvNet, residual MLP), heads, the backbone registry and backbone export.
Pure torch."""

from __future__ import annotations

from contrastkit._io import CheckpointError
from contrastkit.models.activations import ReLU
from contrastkit.models.backbone import Backbone, check_image_batch
from contrastkit.models.batch_norm import BatchNorm2d, norm_act, set_fused_batch_norm
from contrastkit.models.convnet import ConvNet
from contrastkit.models.export import (
    export_backbone,
    load_backbone,
    read_backbone_file,
    strip_wrapper_prefixes,
    unwrap_model,
)
from contrastkit.models.graph import GCNEncoder, GraphProjectionHead
from contrastkit.models.heads import (
    LinearClassifier,
    MoCoV2ProjectionHead,
    PredictionHead,
    ProjectionHead,
    SimCLRProjectionHead,
)
from contrastkit.models.mlp import ResidualMLP, residual_mlp
from contrastkit.models.native import native_kernels
from contrastkit.models.norm import group_norm_groups, make_norm2d
from contrastkit.models.registry import BACKBONES, backbone_from_config, build_backbone
from contrastkit.models.resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50
from contrastkit.models.sync_batchnorm import GlobalBatchNorm, convert_to_global_batchnorm

__all__ = [
    "BACKBONES",
    "Backbone",
    "BasicBlock",
    "BatchNorm2d",
    "Bottleneck",
    "CheckpointError",
    "ConvNet",
    "GlobalBatchNorm",
    "LinearClassifier",
    "MoCoV2ProjectionHead",
    "PredictionHead",
    "ProjectionHead",
    "ReLU",
    "ResNet",
    "ResidualMLP",
    "SimCLRProjectionHead",
    "backbone_from_config",
    "build_backbone",
    "check_image_batch",
    "convert_to_global_batchnorm",
    "export_backbone",
    "group_norm_groups",
    "load_backbone",
    "make_norm2d",
    "native_kernels",
    "norm_act",
    "read_backbone_file",
    "residual_mlp",
    "resnet18",
    "resnet34",
    "resnet50",
    "set_fused_batch_norm",
    "strip_wrapper_prefixes",
    "unwrap_model",
]
__all__ += ["GCNEncoder", "GraphProjectionHead"]  # graph encoders (torch_geometric, the graph extra)
