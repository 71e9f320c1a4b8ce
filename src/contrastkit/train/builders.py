"""Turn a :class:`~contrastkit.train.config.Config` into data, a method, an optimiser and a learning-rate schedule.

Each method registers a builder here (``register_method_builder``); the harness itself knows no method.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from contrastkit.augment import ViewPipeline, mocov2_views, simclr_views
from contrastkit.data import ImageDataset, ImageFolder, label_fraction_indices, load, load_npz
from contrastkit.methods import DirectCLR, SimCLR
from contrastkit.models import build_backbone, convert_to_global_batchnorm
from contrastkit.train.config import Config, SimCLRConfig
from contrastkit.train.config_schema import DirectCLRConfig
from contrastkit.train.lars import LARS


@dataclass
class Data:
    """The training split, the held-out split used by the monitors (or None), and a description for reports."""

    train: ImageDataset
    eval: ImageDataset | None


def _resize(ds: ImageDataset, size: int | None, channels: int | None) -> ImageDataset:
    images = ds.images
    if channels is not None and channels != images.shape[1]:
        if images.shape[1] == 1 and channels == 3:
            images = images.expand(-1, 3, -1, -1).contiguous()
        elif channels == 1 and images.shape[1] == 3:
            images = (images * images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        else:
            raise ValueError(
                f"data.channels={channels} cannot be made from {images.shape[1]}-channel images: "
                "use 1 or 3, or leave data.channels unset"
            )
    if size is not None and size != images.shape[-1]:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    if images is ds.images:
        return ds
    return ImageDataset(images.clamp(0, 1), ds.labels, ds.classes, ds.name)


def build_data(cfg: Config) -> Data:
    """Load the train and eval splits named by ``cfg.data`` (registry name, ``folder`` or ``npz``)."""
    d = cfg.data
    if d.name == "folder":
        train, held_out = ImageFolder(str(d.path), labelled=True, image_size=d.image_size, channels=d.channels), None
    elif d.name == "npz":
        train, held_out = load_npz(str(d.path)), None
    else:
        train = load(d.name, d.train_split)
        held_out = load(d.name, d.eval_split) if d.eval_split else None
    if d.label_fraction is not None:
        if train.labels is None:
            raise ValueError("data.label_fraction needs a labelled dataset")
        train = train.subset(label_fraction_indices(train.labels, d.label_fraction, seed=cfg.trainer.seed))
    train = _resize(train, d.image_size, d.channels)
    held_out = _resize(held_out, d.image_size, d.channels) if held_out is not None else None
    if len(train) < d.batch_size:
        raise ValueError(
            f"data.batch_size={d.batch_size} is larger than the {len(train)} training images: lower data.batch_size"
        )
    return Data(train, held_out)


def build_views(cfg: Config, image_size: int, channels: int) -> ViewPipeline:
    a = cfg.augment
    if a.preset == "simclr":
        return simclr_views(
            image_size, channels, min_scale=a.min_scale, strength=a.strength, hflip_p=a.hflip_p, blur=a.blur
        )
    if a.preset == "mocov2":
        kwargs = {} if a.min_scale is None else {"min_scale": a.min_scale}
        return mocov2_views(image_size, channels, hflip_p=a.hflip_p, blur=True if a.blur is None else a.blur, **kwargs)
    return ViewPipeline([])


def build_backbone_from_config(cfg: Config, channels: int) -> nn.Module:
    m = cfg.model
    return build_backbone(m.backbone, in_channels=channels, small_stem=m.small_stem, width=m.width, norm=m.norm)


MethodBuilder = Callable[[Config, nn.Module, ViewPipeline], nn.Module]
_METHOD_BUILDERS: dict[str, MethodBuilder] = {}


def register_method_builder(name: str, builder: MethodBuilder) -> None:
    """Make ``method.name: NAME`` buildable by the harness."""
    _METHOD_BUILDERS[name] = builder


def _build_simclr(cfg: Config, backbone: nn.Module, views: ViewPipeline) -> nn.Module:
    method_cfg = cfg.method
    assert isinstance(method_cfg, SimCLRConfig)
    return SimCLR(
        backbone,
        views,
        projection_dim=cfg.model.projection_dim,
        hidden_dim=cfg.model.hidden_dim,
        temperature=method_cfg.temperature,
        gather_distributed=method_cfg.gather_distributed,
        projector=method_cfg.projector,
        negatives=method_cfg.negatives,
    )


register_method_builder("simclr", _build_simclr)


def _build_directclr(cfg: Config, backbone: nn.Module, views: ViewPipeline) -> nn.Module:
    method_cfg = cfg.method
    assert isinstance(method_cfg, DirectCLRConfig)
    return DirectCLR(
        backbone,
        views,
        d0=method_cfg.d0,
        temperature=method_cfg.temperature,
        negatives=method_cfg.negatives,
        gather_distributed=method_cfg.gather_distributed,
    )


register_method_builder("directclr", _build_directclr)


def build_method(cfg: Config, image_size: int, channels: int) -> nn.Module:
    """The method named by ``cfg.method.name`` on the configured backbone and views."""
    if cfg.method.name not in _METHOD_BUILDERS:
        raise ValueError(
            f"method {cfg.method.name!r} has no training recipe yet (known: {', '.join(sorted(_METHOD_BUILDERS))})"
        )
    backbone = build_backbone_from_config(cfg, channels)
    method = _METHOD_BUILDERS[cfg.method.name](cfg, backbone, build_views(cfg, image_size, channels))
    return convert_to_global_batchnorm(method) if cfg.model.sync_batchnorm else method


def _is_bias_or_norm(name: str, param: torch.Tensor) -> bool:
    return param.ndim <= 1


def build_optimizer(cfg: Config, module: nn.Module, extra_groups: list[dict] | None = None) -> torch.optim.Optimizer:
    """The configured optimiser; with ``exclude_bias_and_norm``, biases and norm weights get no weight decay (and
    no LARS scaling). ``extra_groups`` (e.g. the online classifier) are appended as given."""
    o = cfg.optim
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if p.requires_grad:
            (no_decay if o.exclude_bias_and_norm and _is_bias_or_norm(name, p) else decay).append(p)
    groups: list[dict] = [{"params": decay, "weight_decay": o.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, "lars_exclude": True})
    if o.name != "lars":
        for g in groups:
            g.pop("lars_exclude", None)
    groups += extra_groups or []
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov)
    if o.name == "adam":
        return torch.optim.Adam(groups, lr=o.lr)
    if o.name == "adamw":
        return torch.optim.AdamW(groups, lr=o.lr)
    return LARS(groups, lr=o.lr, momentum=o.momentum, eta=o.lars_eta, nesterov=o.nesterov)


def lr_factor(cfg: Config, progress: float) -> float:
    """Multiplier of the base learning rate at training progress ``progress`` in [0, 1]: linear warm-up over
    ``warmup_fraction``, then cosine from 1 to ``final_lr_fraction`` (or constant)."""
    s = cfg.schedule
    progress = min(max(progress, 0.0), 1.0)
    if s.warmup_fraction > 0 and progress < s.warmup_fraction:
        return progress / s.warmup_fraction
    if s.name == "constant":
        return 1.0
    t = (progress - s.warmup_fraction) / max(1.0 - s.warmup_fraction, 1e-12)
    return s.final_lr_fraction + (1.0 - s.final_lr_fraction) * 0.5 * (1.0 + math.cos(math.pi * t))
