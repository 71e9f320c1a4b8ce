"""Run-config schema: one dataclass per section and their range checks.

Sections (every key optional, defaults below): ``data``, ``augment``, ``model``, ``method`` (its ``name`` picks
the config class registered by the method, :mod:`contrastkit.method_registry`), ``optim``, ``schedule``,
``trainer``, ``monitor``, plus a top-level ``name``. Each section has ``check(where)`` for ranges and
cross-key rules; types and ``CHOICES`` are checked when a section is built (``contrastkit.train.config``).
Only the standard library: no torch import here.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field

from contrastkit._graph_names import GRAPH_DATASETS, GRAPH_FEATURES
from contrastkit.method_registry import (
    ConfigError,
    MethodConfig,
    recipes,
    require_at_least,
    require_choice,
    require_greater,
    require_in_range,
)

__all__ = [
    "AugmentConfig", "CHOICES", "Config", "ConfigError", "DataConfig", "DEFAULT_METHOD", "MethodConfig",
    "HELD_OUT_KEYS", "ModelConfig", "MonitorConfig", "OptimConfig", "SECTIONS", "STOP_KEYS", "ScheduleConfig",
    "TrainerConfig", "USER_DATA", "require_at_least", "require_choice", "require_greater", "require_in_range",
]  # fmt: skip

# Literal-like string fields: (section, key) -> allowed values. Later floors may add entries.
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("augment", "preset"): ("simclr", "mocov2", "noise", "none"),
    ("data", "sampler"): ("shuffle", "class_balanced"),
    ("data", "node_features"): GRAPH_FEATURES,
    ("model", "backbone"): ("resnet18", "resnet34", "resnet50", "convnet", "residual_mlp", "gcn"),
    ("model", "activation"): ("prelu", "relu", "rrelu"),
    ("model", "gcn_init"): ("glorot", "uniform"),
    ("model", "norm"): ("batch", "group", "none"),
    ("optim", "name"): ("sgd", "adam", "adamw", "lars"),
    ("schedule", "name"): ("cosine", "constant"),
    ("trainer", "accelerator"): ("auto", "cpu", "cuda"),
    ("trainer", "strategy"): ("auto", "ddp"),
    ("trainer", "precision"): ("auto", "32", "bf16"),
}
USER_DATA = ("folder", "npz")  # data.name values that read the user's files at data.path
# Where the held-out split of folder / npz data comes from: its own folder or .npz file, or a share of data.path.
HELD_OUT_KEYS = ("eval_path", "eval_fraction")


# ---------------------------------------------------------------------------------------------- sections


@dataclass
class DataConfig:
    """Dataset (a ``contrastkit.data`` registry name, or "folder" / "npz" with ``path``), splits, batch size,
    the sampler (``shuffle`` or ``class_balanced``), and subsets: ``label_fraction`` (stratified),
    ``class_counts`` (a long-tailed training subset with ``class_counts[c]`` images of class c; classes beyond
    the list are dropped from both splits) and ``eval_per_class`` (a balanced evaluation subset).

    Folder / npz data (``USER_DATA``): ``labelled`` false reads images without labels (a folder: every image at any
    depth; an .npz file: no ``labels`` array). The held-out split named ``eval_split`` comes from one of
    ``HELD_OUT_KEYS``: ``eval_path`` (a folder, or an .npz file, read like ``path``) or ``eval_fraction`` (the share
    ``f`` of ``path``'s images held out, ``round_half_up(f * N)`` drawn per class in proportion to its size with
    ``split_seed``; the training split is the rest). ``train_split`` and ``eval_split`` then only name the splits
    in reports, and ``eval_split: null`` means no held-out split.

    Graph data (``GRAPH_DATASETS``, :func:`contrastkit.data.graph_datasets.load_graph`): the items are the nodes of
    one graph and a batch is the subgraph that ``batch_size`` nodes induce (``batch_size`` = the node count: the
    whole graph every step). ``num_nodes`` sizes the kNN image graphs and the CSBM, ``knn_k`` is the kNN graphs'
    neighbour count, ``node_features`` the features of featureless graphs, ``path`` a Planetoid folder. The graph
    is labelled and has no held-out split (``eval_split: null``): node classification evaluates it."""

    name: str = "fashion-mnist"
    path: str | None = None
    train_split: str = "train"
    eval_split: str | None = "test"
    batch_size: int = 256
    label_fraction: float | None = None
    image_size: int | None = None  # None: the dataset's own size
    channels: int | None = None  # None: the dataset's own channel count
    sampler: str = "shuffle"
    class_counts: list[int] | None = None  # a long-tailed training subset: images of class c (seeded by trainer.seed)
    eval_per_class: int | None = None  # a balanced evaluation subset: images per class (seeded by trainer.seed)
    labelled: bool = True  # folder / npz: false reads the images without labels
    eval_path: str | None = None  # folder / npz: the held-out images (a folder, or an .npz file)
    eval_fraction: float | None = None  # folder / npz: the share of data.path's images held out (stratified)
    split_seed: int = 0  # the seed of the eval_fraction draw (independent of trainer.seed)
    num_nodes: int | None = None  # graph data: the kNN graphs' / CSBM's node count (None: the dataset's default)
    knn_k: int = 10  # graph data: neighbours per node of the kNN image graphs
    node_features: str = "default"  # graph data: the features of featureless graphs (default: one-hot degree)

    def check(self, where: str = "data") -> None:
        for key in ("name", "train_split", "path", "eval_split", "eval_path"):
            if getattr(self, key) == "":
                raise ConfigError(f"{where}.{key} must not be empty")
        if self.name in USER_DATA and self.path is None:
            raise ConfigError(f"{where}.path is required when {where}.name is {self.name!r} (set {where}.path=DIR)")
        require_at_least(f"{where}.num_nodes", self.num_nodes, 2)
        require_at_least(f"{where}.knn_k", self.knn_k, 1)
        if self.name in GRAPH_DATASETS:
            self._check_graph(where)
            return
        for key, default in (("num_nodes", None), ("knn_k", 10), ("node_features", "default")):
            if getattr(self, key) != default:
                raise ConfigError(f"{where}.{key} is for graph data ({', '.join(GRAPH_DATASETS)}); remove it")
        require_at_least(f"{where}.batch_size", self.batch_size, 2)  # a contrastive batch needs negatives
        require_in_range(f"{where}.label_fraction", self.label_fraction, 0, 1, interval="(]")
        require_at_least(f"{where}.image_size", self.image_size, 1)
        require_at_least(f"{where}.channels", self.channels, 1)
        require_at_least(f"{where}.eval_per_class", self.eval_per_class, 1)
        require_in_range(f"{where}.eval_fraction", self.eval_fraction, 0, 1, interval="()")
        require_in_range(f"{where}.split_seed", self.split_seed, 0, 2**32 - 1)
        if self.class_counts is not None:
            if not self.class_counts or min(self.class_counts) < 1:
                raise ConfigError(f"{where}.class_counts must be a non-empty list of counts >= 1")
            if self.label_fraction is not None:
                raise ConfigError(f"{where}: set class_counts or label_fraction, not both")
        self._check_held_out(where)

    def _check_graph(self, where: str) -> None:
        """Graph data: no held-out split and none of the image-only keys."""
        require_at_least(f"{where}.batch_size", self.batch_size, 2)
        if self.eval_split is not None:
            raise ConfigError(
                f"{where}.eval_split: graph data have no held-out split (node classification evaluates the graph): "
                f"set {where}.eval_split=null"
            )
        image_keys = ("label_fraction", "image_size", "channels", "class_counts", "eval_per_class", "eval_path",
                      "eval_fraction")  # fmt: skip
        for key in image_keys:
            if getattr(self, key) is not None:
                raise ConfigError(f"{where}.{key} is for image data, not the graph {self.name}: remove it")
        if self.sampler != "shuffle" or not self.labelled:
            raise ConfigError(f"{where}: graph data take sampler=shuffle and labelled=true")
        if (
            self.path is not None
            and self.name != "planetoid"
            and self.name not in ("football", "polblogs", "polbooks", "adjnoun")
        ):
            raise ConfigError(f"{where}.path is read only for planetoid, football, polblogs, polbooks and adjnoun")

    def _check_held_out(self, where: str) -> None:
        """``labelled`` and ``HELD_OUT_KEYS`` are for folder / npz data; such data with an ``eval_split`` needs
        exactly one of them."""
        chosen = [key for key in HELD_OUT_KEYS if getattr(self, key) is not None]
        if self.split_seed != 0 and self.eval_fraction is None:
            raise ConfigError(f"{where}.split_seed seeds {where}.eval_fraction, which is not set: set both or neither")
        if self.name not in USER_DATA:
            if chosen:
                raise ConfigError(
                    f"{where}.{chosen[0]} is for folder and npz data; {self.name} has its own splits: "
                    f"name one with {where}.eval_split"
                )
            if not self.labelled:
                raise ConfigError(f"{where}.labelled=false is for folder and npz data; {self.name} is always labelled")
            return
        if len(chosen) > 1:
            raise ConfigError(f"{where}: set {' or '.join(HELD_OUT_KEYS)}, not both")
        if chosen and self.eval_split is None:
            raise ConfigError(
                f"{where}.{chosen[0]} needs {where}.eval_split, the held-out split's name (e.g. test), not null"
            )
        if self.eval_split is not None and not chosen:
            stored = "FOLDER" if self.name == "folder" else "FILE.npz"
            raise ConfigError(
                f"{where}.eval_split={self.eval_split!r} needs held-out {self.name} data: set {where}.eval_path="
                f"{stored} or {where}.eval_fraction=0.2 (a stratified share of {where}.path), or "
                f"{where}.eval_split=null"
            )


@dataclass
class AugmentConfig:
    """View pipeline preset and its knobs (see ``contrastkit.augment.simclr_views`` / ``mocov2_views`` /
    ``noise_views``). ``noise_std`` is the standard deviation of the additive pixel noise of the ``noise`` preset
    (its only photometric op; ``min_scale`` there adds a random resized crop, ``null`` none)."""

    preset: str = "simclr"
    min_scale: float | None = None  # None: the preset's default
    strength: float = 0.5
    hflip_p: float = 0.5
    blur: bool | None = None  # None: the preset's default
    noise_std: float = 0.0

    def check(self, where: str = "augment") -> None:
        require_in_range(f"{where}.min_scale", self.min_scale, 0, 1, interval="(]")
        require_at_least(f"{where}.strength", self.strength, 0)
        require_in_range(f"{where}.hflip_p", self.hflip_p, 0, 1)
        require_at_least(f"{where}.noise_std", self.noise_std, 0)
        if self.noise_std > 0 and self.preset != "noise":
            raise ConfigError(f"{where}.noise_std is used only by {where}.preset=noise, got preset {self.preset!r}")


@dataclass
class ModelConfig:
    """Backbone (``contrastkit.models.build_backbone``), projection head sizes, and ``init_from``: a run directory
    (its ``checkpoints/last.ckpt``) or a checkpoint or exported backbone file whose backbone weights start the run
    (SuperCon's stage 2 from its stage 1). ResNets take ``width`` as a multiplier and ``small_stem``; the DC
    ``convnet`` takes ``width`` as its channel count and ``depth``; ``norm`` maps to its batch norm, instance norm
    (``group``) or none. The ``residual_mlp`` takes ``width`` as its width ``D``, ``depth`` as its number of
    residual blocks and ``norm`` batch or none. ``zero_init_residual`` starts every residual block of a ResNet or
    of the residual MLP as the identity (the last norm's gamma, or the last layer without a norm, is zeroed)."""

    backbone: str = "resnet18"
    width: float = 0.25
    depth: int = 3
    small_stem: bool = True
    norm: str = "batch"
    sync_batchnorm: bool = False
    projection_dim: int = 128
    hidden_dim: int | None = None  # None: the backbone's feature size
    init_from: str | None = None
    zero_init_residual: bool = False
    activation: str = "prelu"  # gcn: the activation after every layer (GRACE / ARIEL: prelu, relu or rrelu)
    gcn_init: str = "glorot"  # gcn: torch_geometric's initialisation (GRACE's code) or uniform (ARIEL's layer)

    def check(self, where: str = "model") -> None:
        require_greater(f"{where}.width", self.width, 0)
        require_at_least(f"{where}.depth", self.depth, 1)
        if self.init_from == "":
            raise ConfigError(f"{where}.init_from must be a run directory or checkpoint file, or null")
        if self.backbone in ("convnet", "residual_mlp") and self.width != int(self.width):
            raise ConfigError(
                f"{where}.width is the channel count of the {self.backbone}: use a whole number, got {self.width}"
            )
        if self.backbone == "residual_mlp" and self.norm == "group":
            raise ConfigError(f"{where}.norm of the residual_mlp must be batch or none, got {self.norm!r}")
        if self.zero_init_residual and self.backbone == "convnet":
            raise ConfigError(f"{where}.zero_init_residual needs a residual backbone; the convnet has no residuals")
        require_at_least(f"{where}.projection_dim", self.projection_dim, 1)
        require_at_least(f"{where}.hidden_dim", self.hidden_dim, 1)
        if self.sync_batchnorm and self.norm != "batch":
            raise ConfigError(f"{where}.sync_batchnorm needs {where}.norm=batch, got norm {self.norm!r}")
        for key, default in (("activation", "prelu"), ("gcn_init", "glorot")):
            if self.backbone != "gcn" and getattr(self, key) != default:
                raise ConfigError(f"{where}.{key} is for model.backbone=gcn; remove it for {self.backbone}")


@dataclass
class OptimConfig:
    """Optimiser; ``exclude_bias_and_norm`` leaves biases and norm weights out of weight decay (and LARS)."""

    name: str = "adam"
    lr: float = 2e-3
    weight_decay: float = 1e-6
    momentum: float = 0.9
    nesterov: bool = False
    lars_eta: float = 0.001
    exclude_bias_and_norm: bool = True

    def check(self, where: str = "optim") -> None:
        require_greater(f"{where}.lr", self.lr, 0)
        require_at_least(f"{where}.weight_decay", self.weight_decay, 0)
        require_in_range(f"{where}.momentum", self.momentum, 0, 1, interval="[)")
        require_greater(f"{where}.lars_eta", self.lars_eta, 0)
        if self.nesterov and (self.name not in ("sgd", "lars") or self.momentum == 0):
            raise ConfigError(f"{where}.nesterov needs {where}.name sgd or lars and {where}.momentum > 0")


@dataclass
class ScheduleConfig:
    """Learning-rate schedule per step: linear warm-up over ``warmup_fraction`` of the run, then cosine to
    ``final_lr_fraction * lr`` (or constant)."""

    name: str = "cosine"
    warmup_fraction: float = 0.03
    final_lr_fraction: float = 0.0

    def check(self, where: str = "schedule") -> None:
        require_in_range(f"{where}.warmup_fraction", self.warmup_fraction, 0, 1, interval="[)")
        require_in_range(f"{where}.final_lr_fraction", self.final_lr_fraction, 0, 1)


STOP_KEYS = ("max_epochs", "max_steps", "time_budget_minutes")


@dataclass
class TrainerConfig:
    """Devices, precision, length of the run (at least one of ``STOP_KEYS``; with several, the run stops at
    whichever limit comes first; a step is one optimiser step), seed, checkpoint/log cadence, gradient
    accumulation over ``accumulate_grad_batches`` batches of ``data.batch_size`` and clipping of the gradients'
    global norm to ``gradient_clip_norm``; divergence: the ``keep_checkpoints`` newest checkpoints are kept and,
    with ``loss_explosion_factor``, a loss above that multiple of its running median for ``loss_explosion_steps``
    steps in a row stops the run (:mod:`contrastkit.train.divergence`)."""

    accelerator: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "auto"
    max_epochs: int | None = None
    max_steps: int | None = None
    time_budget_minutes: float | None = None
    seed: int = 0
    checkpoint_every_steps: int = 200
    log_every_steps: int = 20
    channels_last: bool = True
    progress_bar: bool = True
    accumulate_grad_batches: int = 1
    gradient_clip_norm: float | None = None
    collective_timeout: float = 600.0  # seconds a DDP process waits for the others before stopping with one line
    keep_checkpoints: int = 1  # the newest saves kept: last.ckpt, and with > 1 also step-NNNNNNNN.ckpt files
    loss_explosion_factor: float | None = None  # stop when the loss stays above factor x its running median ...
    loss_explosion_steps: int = 20  # ... for this many steps in a row (None factor: off)

    def check(self, where: str = "trainer") -> None:
        if all(getattr(self, key) is None for key in STOP_KEYS):
            raise ConfigError(
                f"{where}: set at least one of {', '.join(STOP_KEYS)} (with several, the run stops at whichever "
                "comes first)"
            )
        keys = ("devices", "num_nodes", "max_epochs", "max_steps", "checkpoint_every_steps", "log_every_steps")
        for key in (*keys, "accumulate_grad_batches"):
            require_at_least(f"{where}.{key}", getattr(self, key), 1)
        require_greater(f"{where}.time_budget_minutes", self.time_budget_minutes, 0)
        require_greater(f"{where}.gradient_clip_norm", self.gradient_clip_norm, 0)
        require_in_range(f"{where}.seed", self.seed, 0, 2**32 - 1)
        require_in_range(f"{where}.collective_timeout", self.collective_timeout, 1, 86_400)
        require_in_range(f"{where}.keep_checkpoints", self.keep_checkpoints, 1, 1000)
        require_greater(f"{where}.loss_explosion_factor", self.loss_explosion_factor, 1)
        require_at_least(f"{where}.loss_explosion_steps", self.loss_explosion_steps, 1)


@dataclass
class MonitorConfig:
    """Online monitors: kNN accuracy on ``data.eval_split`` every ``knn_every_epochs`` (0 disables), an online
    linear probe on detached features, the effective rank of the embedding; ``collapse`` switches on the
    dimensional-collapse callback (spectrum, effective rank, collapsed and dead dimensions of the representation and
    of the loss space; ``collapse_rel`` is the eigenvalue threshold relative to the largest)."""

    knn_every_epochs: float = 1.0
    knn_k: int = 200
    knn_temperature: float = 0.1
    knn_max_train: int | None = None  # subsample the kNN memory bank to this many training images
    online_linear: bool = True
    effective_rank: bool = True
    collapse: bool = False
    collapse_rel: float = 1e-4

    def check(self, where: str = "monitor") -> None:
        require_in_range(f"{where}.collapse_rel", self.collapse_rel, 0, 1, interval="(]")
        require_at_least(f"{where}.knn_every_epochs", self.knn_every_epochs, 0)
        require_at_least(f"{where}.knn_k", self.knn_k, 1)
        require_greater(f"{where}.knn_temperature", self.knn_temperature, 0)
        require_at_least(f"{where}.knn_max_train", self.knn_max_train, 1)


@dataclass
class Config:
    """A whole run: ``name`` plus one object per section."""

    name: str = "run"
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=lambda: default_method_config())
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)

    def check(self) -> None:
        if not self.name or "\n" in self.name:
            raise ConfigError(f"name must be a non-empty one-line string, got {self.name!r}")
        if self.monitor.knn_every_epochs > 0 and self.data.eval_split is None:
            raise ConfigError("monitor.knn_every_epochs needs data.eval_split (or set monitor.knn_every_epochs=0)")
        graph_data = self.data.name in GRAPH_DATASETS
        graph_method = recipes()[self.method.name].inputs == "graph"
        if graph_data != graph_method or graph_data != (self.model.backbone == "gcn"):
            raise ConfigError(
                f"data.name={self.data.name}, method.name={self.method.name} and model.backbone={self.model.backbone} "
                "do not fit together: graph data (" + ", ".join(GRAPH_DATASETS) + ") train a graph method (grace, "
                "ariel) on model.backbone=gcn; image data an image method on an image backbone"
            )
        if graph_data and self.monitor.online_linear:
            raise ConfigError("monitor.online_linear needs image batches: set monitor.online_linear=false for graphs")


SECTIONS: dict[str, type] = {name: cls for name, cls in typing.get_type_hints(Config).items() if name != "name"}

DEFAULT_METHOD = "simclr"


def default_method_config() -> MethodConfig:
    """The registered config of ``DEFAULT_METHOD`` with its defaults (imports the method code on first use)."""
    return recipes()[DEFAULT_METHOD].config()
