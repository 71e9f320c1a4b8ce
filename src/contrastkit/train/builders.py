"""Turn a :class:`~contrastkit.train.config.Config` into data, a data source, a method, optimisers, a schedule and
the engine that trains them. The harness knows no method: each registers its config and builder
(:mod:`contrastkit.method_registry`) next to its code.

:func:`build_engine` is what ``contrastkit train`` and every reproduction arm run, so an arm and
``contrastkit train`` with the same config train the same weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from contrastkit import accel
from contrastkit.augment import ViewPipeline, mocov2_views, noise_views, simclr_views
from contrastkit.data import (
    GraphDataset,
    GraphSource,
    ImageDataset,
    ImageFolder,
    TensorSource,
    label_fraction_indices,
    load,
    load_npz,
    long_tailed_subset,
    match_classes,
    split_off,
)
from contrastkit.method_registry import BuildContext, recipes
from contrastkit.methods import trainable_parameters
from contrastkit.models import build_backbone, convert_to_global_batchnorm
from contrastkit.train.checkpoint import initial_backbone
from contrastkit.train.config import Config, DataConfig
from contrastkit.train.config_schema import USER_DATA
from contrastkit.train.engine import Engine, StepCallback
from contrastkit.train.graph_builders import build_gcn, is_graph_config, load_graph_data
from contrastkit.train.lars import LARS
from contrastkit.train.monitors import TrainModule
from contrastkit.train.runtime import Runtime, make_runtime


@dataclass
class Data:
    """The training split and the held-out split used by the monitors (or None). Graph data: the graph (a
    ``contrastkit.data.GraphDataset``) and None."""

    train: ImageDataset | GraphDataset
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
    if size is not None and tuple(images.shape[-2:]) != (size, size):
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    if images is ds.images:
        return ds
    return ImageDataset(images.clamp(0, 1), ds.labels, ds.classes, ds.name)


def _read_own_data(d: DataConfig, key: str) -> ImageDataset:
    """The folder or .npz file at ``data.<key>`` (``path`` or ``eval_path``); its errors name the key."""
    path = str(getattr(d, key))
    try:
        if d.name == "folder":
            return ImageFolder(path, labelled=d.labelled, image_size=d.image_size, channels=d.channels)
        return load_npz(path, labels_key="labels" if d.labelled else None)
    except ValueError as err:
        raise ValueError(f"data.{key}: {err}") from None


def _load_splits(cfg: Config) -> tuple[ImageDataset, ImageDataset | None]:
    """The training split and the held-out split (None when ``data.eval_split`` is null), before any subset.

    Folder / npz data: the held-out split is ``data.eval_path`` read like ``data.path`` (labels matched to the
    training classes by name), or ``data.eval_fraction`` of ``data.path`` drawn with ``data.split_seed``
    (:func:`contrastkit.data.split_off`; the training split is the rest). The config check guarantees that one
    of them is set exactly when ``data.eval_split`` is.
    """
    d = cfg.data
    if d.name not in USER_DATA:
        return load(d.name, d.train_split), load(d.name, d.eval_split) if d.eval_split else None
    train = _read_own_data(d, "path")
    if d.eval_split is None:
        return train, None
    if d.eval_fraction is not None:
        try:
            return split_off(train, d.eval_fraction, seed=d.split_seed)
        except ValueError as err:
            raise ValueError(f"data.eval_fraction: {err}") from None
    held_out = _read_own_data(d, "eval_path")
    try:
        return train, match_classes(held_out, train.classes)
    except ValueError as err:
        raise ValueError(f"data.eval_path: {err}") from None


def build_data(cfg: Config) -> Data:
    """Load the train and eval splits named by ``cfg.data`` (registry name, ``folder`` or ``npz``), or its graph."""
    if is_graph_config(cfg):
        return Data(load_graph_data(cfg), None)
    d = cfg.data
    train, held_out = _load_splits(cfg)
    seed = cfg.trainer.seed
    if (d.label_fraction is not None or d.class_counts is not None or d.sampler == "class_balanced") and (
        train.labels is None
    ):
        raise ValueError(
            "data.label_fraction, data.class_counts and data.sampler=class_balanced need labelled data "
            "(data.labelled=true)"
        )
    if d.label_fraction is not None:
        train = train.subset(label_fraction_indices(train.labels, d.label_fraction, seed=seed))
    classes = len(d.class_counts) if d.class_counts is not None else None
    if d.class_counts is not None:
        if len(d.class_counts) > train.num_classes:
            raise ValueError(
                f"data.class_counts has {len(d.class_counts)} entries but {d.name} has {train.num_classes} classes: "
                "give at most one count per class"
            )
        train = long_tailed_subset(train, d.class_counts, seed=seed)
    if held_out is not None and (classes is not None or d.eval_per_class is not None):
        if held_out.labels is None:
            raise ValueError("data.class_counts and data.eval_per_class need a labelled eval split")
        counts = held_out.class_counts().tolist()[: classes or held_out.num_classes]
        per_class = d.eval_per_class or min(counts)
        held_out = long_tailed_subset(held_out, [min(per_class, c) for c in counts], seed=seed)
    train = _resize(train, d.image_size, d.channels)
    if held_out is not None:  # the held-out images take the training images' channels (a folder picks its own)
        held_out = _resize(held_out, d.image_size, d.channels or train.channels)
        if held_out.image_size != train.image_size:
            raise ValueError(
                f"the held-out images are {held_out.image_size[0]}x{held_out.image_size[1]} but the training "
                f"images {train.image_size[0]}x{train.image_size[1]}: set data.image_size to resize both"
            )
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
    if a.preset == "noise":
        return noise_views(image_size, channels, noise_std=a.noise_std, min_scale=a.min_scale, hflip_p=a.hflip_p)
    return ViewPipeline([])


def build_backbone_from_config(cfg: Config, channels: int, image_size: int) -> nn.Module:
    """The configured backbone, with ``model.init_from``'s weights when set."""
    m = cfg.model
    if m.backbone == "convnet":
        norm = {"batch": "batchnorm", "group": "instancenorm", "none": "none"}[m.norm]
        backbone = build_backbone(
            "convnet", in_channels=channels, image_size=image_size, width=int(m.width), depth=m.depth, norm=norm
        )
    elif m.backbone == "residual_mlp":
        backbone = build_backbone("residual_mlp", in_channels=channels, image_size=image_size, width=int(m.width),
                                  depth=m.depth, norm=m.norm, zero_init_residual=m.zero_init_residual)  # fmt: skip
    else:
        backbone = build_backbone(m.backbone, in_channels=channels, small_stem=m.small_stem, width=m.width, norm=m.norm,
                                  zero_init_residual=m.zero_init_residual)  # fmt: skip
    if m.init_from is not None:
        start = initial_backbone(m.init_from)
        if getattr(start, "config", None) != getattr(backbone, "config", None):
            raise ValueError(
                f"model.init_from={m.init_from} holds a {getattr(start, 'config', '?')} backbone, but the config "
                f"builds {getattr(backbone, 'config', '?')}: make the model sections match"
            )
        backbone.load_state_dict(start.state_dict())
    return backbone


def build_source(cfg: Config, train: ImageDataset | GraphDataset) -> TensorSource | GraphSource:
    """The engine's data source over ``train`` with ``data.sampler`` (a graph: its nodes, batch = induced
    subgraph)."""
    if isinstance(train, GraphDataset):
        return GraphSource(train.graph)
    return TensorSource.from_dataset(train, sampler=cfg.data.sampler)


def build_method(cfg: Config, train: ImageDataset | GraphDataset) -> nn.Module:
    """The method named by ``cfg.method.name`` on the configured backbone and views, for training data ``train``."""
    recipe = recipes()[cfg.method.name]
    if recipe.needs_labels and train.labels is None:
        raise ValueError(
            f"method {cfg.method.name!r} needs labelled training data: use a labelled dataset (data.labelled=true)"
        )
    labelled = train.labels is not None
    if isinstance(train, GraphDataset):
        backbone, views = build_gcn(cfg, train.num_features), None
    else:
        channels, image_size = train.images.shape[1], train.images.shape[-1]
        backbone, views = build_backbone_from_config(cfg, channels, image_size), build_views(cfg, image_size, channels)
    ctx = BuildContext(
        backbone=backbone,
        views=views,
        projection_dim=cfg.model.projection_dim,
        hidden_dim=cfg.model.hidden_dim,
        num_classes=train.num_classes if labelled else 0,
        class_counts=tuple(train.class_counts().tolist()) if labelled else None,
    )
    method = recipe.build(cfg.method, ctx)
    return convert_to_global_batchnorm(method) if cfg.model.sync_batchnorm else method


def _is_bias_or_norm(param: torch.Tensor) -> bool:
    return param.ndim <= 1


def build_optimizer(cfg: Config, module: nn.Module) -> torch.optim.Optimizer:
    """The configured optimiser over the method's ``parameter_groups()`` (default: every parameter that requires a
    gradient); with ``exclude_bias_and_norm``, biases and norm weights get no weight decay (and no LARS scaling).
    A group's own ``weight_decay`` or ``lr_scale`` (x ``optim.lr``) overrides the config."""
    o = cfg.optim
    hook = getattr(module, "parameter_groups", None)
    method_groups = hook() if callable(hook) else [{"params": list(trainable_parameters(module))}]
    groups: list[dict] = []
    for method_group in method_groups:
        options = {k: v for k, v in method_group.items() if k not in ("params", "lr_scale")}
        lr = o.lr * float(method_group.get("lr_scale", 1.0))
        decay, no_decay = [], []
        for p in method_group["params"]:
            (no_decay if o.exclude_bias_and_norm and _is_bias_or_norm(p) else decay).append(p)
        groups.append({"params": decay, "weight_decay": o.weight_decay, "lr": lr, **options})
        if no_decay:
            extra = {"lars_exclude": True} if o.name == "lars" else {}
            groups.append({"params": no_decay, **options, "weight_decay": 0.0, "lr": lr, **extra})
    groups = [g for g in groups if g["params"]]
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


def total_steps(cfg: Config, steps_per_epoch: int) -> int | None:
    """The step limit of the run: the smaller of ``max_steps`` and ``max_epochs * steps_per_epoch`` (whichever
    comes first), None when only ``time_budget_minutes`` is set."""
    t = cfg.trainer
    by_epochs = t.max_epochs * steps_per_epoch if t.max_epochs is not None else None
    limits = [n for n in (t.max_steps, by_epochs) if n is not None]
    return min(limits) if limits else None


def build_engine(
    cfg: Config,
    data: Data | None = None,
    *,
    runtime: Runtime | None = None,
    callbacks: Sequence[StepCallback] = (),
) -> tuple[Engine, TrainModule, Data]:
    """Data, method (wrapped with the online probe when ``monitor.online_linear`` and the data are labelled),
    optimisers and the :class:`~contrastkit.train.engine.Engine` of ``cfg``; nothing has run yet.

    ``torch.manual_seed(trainer.seed)`` is set before the method is built, so its initialisation is the seed's.
    """
    t = cfg.trainer
    runtime = runtime or make_runtime(t.accelerator, 1, 1, "auto", t.precision)  # one process (fit: DDP too)
    data = data or build_data(cfg)
    torch.manual_seed(t.seed)
    method = build_method(cfg, data.train)
    labelled = data.train.labels is not None and data.eval is not None
    probe_classes = data.train.num_classes if cfg.monitor.online_linear and labelled else None
    sample = data.train.images[:2] if isinstance(data.train, ImageDataset) else None
    module = TrainModule(method, probe_classes, sample=sample)
    use_channels_last = t.channels_last and (runtime.precision == "bf16" or runtime.device.type == "cuda")
    accel.channels_last(module, use_channels_last)
    optimizers = [build_optimizer(cfg, method)]
    if module.online_classifier is not None:
        optimizers.append(torch.optim.Adam(module.online_classifier.parameters(), lr=1e-3))
    source = build_source(cfg, data.train)
    steps_per_epoch = source.num_batches(cfg.data.batch_size) // t.accumulate_grad_batches
    engine = Engine(
        module,
        source,
        optimizers,
        batch_size=cfg.data.batch_size,
        seed=t.seed,
        max_steps=total_steps(cfg, max(steps_per_epoch, 1)),
        time_budget_s=t.time_budget_minutes * 60.0 if t.time_budget_minutes is not None else None,
        lr_factor=lambda progress: lr_factor(cfg, progress),
        runtime=runtime,
        accumulate_grad_batches=t.accumulate_grad_batches,
        gradient_clip_norm=t.gradient_clip_norm,
        channels_last=use_channels_last,
        callbacks=callbacks,
    )
    return engine, module, data
