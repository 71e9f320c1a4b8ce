"""Run-config schema: one dataclass per section, the method-config registry and the range checks.

Sections (every key optional, defaults below): ``data``, ``augment``, ``model``, ``method`` (its ``name`` picks
the class in ``METHOD_CONFIGS``; new methods call :func:`register_method_config`), ``optim``, ``schedule``,
``trainer``, ``monitor``, plus a top-level ``name``. Each section has ``check(where)`` for ranges and
cross-key rules; types and ``CHOICES`` are checked when a section is built (``contrastkit.train.config``).
Only the standard library: no torch import here.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

__all__ = [
    "AugmentConfig", "CHOICES", "Config", "ConfigError", "DataConfig", "DEFAULT_METHOD", "DirectCLRConfig",
    "METHOD_CONFIGS", "MethodConfig", "ModelConfig", "MonitorConfig", "OptimConfig", "SECTIONS", "STOP_KEYS",
    "ScheduleConfig", "SimCLRConfig", "TrainerConfig", "USER_DATA", "register_method_config", "require_at_least",
    "require_choice", "require_greater", "require_in_range",
]  # fmt: skip


class ConfigError(ValueError):
    """A bad config: unknown key, wrong type, value out of range, unreadable file. The message is one line."""


# ------------------------------------------------------------------------------------------- range checks


def require_greater(key: str, value: float | None, bound: float) -> None:
    """Raise unless ``value > bound`` (``None`` passes: optional fields)."""
    if value is not None and not value > bound:
        raise ConfigError(f"{key} must be > {bound}, got {value!r}")


def require_at_least(key: str, value: float | None, bound: float) -> None:
    """Raise unless ``value >= bound`` (``None`` passes)."""
    if value is not None and not value >= bound:
        raise ConfigError(f"{key} must be >= {bound}, got {value!r}")


def require_in_range(key: str, value: float | None, low: float, high: float, *, interval: str = "[]") -> None:
    """Raise unless ``value`` lies between ``low`` and ``high``; ``interval`` gives the brackets ("[]", "(]", ...)."""
    if value is None:
        return
    ok_low = value > low if interval[0] == "(" else value >= low
    ok_high = value < high if interval[1] == ")" else value <= high
    if not (ok_low and ok_high):
        raise ConfigError(f"{key} must lie in {interval[0]}{low}, {high}{interval[1]}, got {value!r}")


def require_choice(key: str, value: str, choices: Sequence[str]) -> None:
    """Raise unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}, got {value!r}")


# Literal-like string fields: (section, key) -> allowed values. Later floors may add entries.
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("augment", "preset"): ("simclr", "mocov2", "none"),
    ("model", "backbone"): ("resnet18", "resnet34", "resnet50"),
    ("model", "norm"): ("batch", "group", "none"),
    ("optim", "name"): ("sgd", "adam", "adamw", "lars"),
    ("schedule", "name"): ("cosine", "constant"),
    ("trainer", "accelerator"): ("auto", "cpu", "cuda"),
    ("trainer", "strategy"): ("auto", "ddp"),
    ("trainer", "precision"): ("auto", "32", "bf16"),
}
USER_DATA = ("folder", "npz")  # data.name values that read the user's files at data.path


# ---------------------------------------------------------------------------------------------- sections


@dataclass
class DataConfig:
    """Dataset (a ``contrastkit.data`` registry name, or "folder" / "npz" with ``path``), splits, batch size."""

    name: str = "fashion-mnist"
    path: str | None = None
    train_split: str = "train"
    eval_split: str | None = "test"
    batch_size: int = 256
    label_fraction: float | None = None
    image_size: int | None = None  # None: the dataset's own size
    channels: int | None = None  # None: the dataset's own channel count

    def check(self, where: str = "data") -> None:
        for key in ("name", "train_split", "path", "eval_split"):
            if getattr(self, key) == "":
                raise ConfigError(f"{where}.{key} must not be empty")
        if self.name in USER_DATA and self.path is None:
            raise ConfigError(f"{where}.path is required when {where}.name is {self.name!r} (set {where}.path=DIR)")
        require_at_least(f"{where}.batch_size", self.batch_size, 2)  # a contrastive batch needs negatives
        require_in_range(f"{where}.label_fraction", self.label_fraction, 0, 1, interval="(]")
        require_at_least(f"{where}.image_size", self.image_size, 1)
        require_at_least(f"{where}.channels", self.channels, 1)


@dataclass
class AugmentConfig:
    """View pipeline preset and its knobs (see ``contrastkit.augment.simclr_views`` / ``mocov2_views``)."""

    preset: str = "simclr"
    min_scale: float | None = None  # None: the preset's default
    strength: float = 0.5
    hflip_p: float = 0.5
    blur: bool | None = None  # None: the preset's default

    def check(self, where: str = "augment") -> None:
        require_in_range(f"{where}.min_scale", self.min_scale, 0, 1, interval="(]")
        require_at_least(f"{where}.strength", self.strength, 0)
        require_in_range(f"{where}.hflip_p", self.hflip_p, 0, 1)


@dataclass
class ModelConfig:
    """Backbone (``contrastkit.models.build_backbone``) and projection head sizes."""

    backbone: str = "resnet18"
    width: float = 0.25
    small_stem: bool = True
    norm: str = "batch"
    sync_batchnorm: bool = False
    projection_dim: int = 128
    hidden_dim: int | None = None  # None: the backbone's feature size

    def check(self, where: str = "model") -> None:
        require_greater(f"{where}.width", self.width, 0)
        require_at_least(f"{where}.projection_dim", self.projection_dim, 1)
        require_at_least(f"{where}.hidden_dim", self.hidden_dim, 1)
        if self.sync_batchnorm and self.norm != "batch":
            raise ConfigError(f"{where}.sync_batchnorm needs {where}.norm=batch, got norm {self.norm!r}")


@dataclass
class MethodConfig:
    """Base of the method configs; ``name`` selects the subclass through ``METHOD_CONFIGS``."""

    name: str = ""

    def check(self, where: str = "method") -> None:
        """Range checks of the method's own keys (types are checked before)."""


@dataclass
class SimCLRConfig(MethodConfig):
    """SimCLR (Chen et al. 2020): NT-Xent temperature; ``gather_distributed`` contrasts against all ranks;
    ``projector`` ``mlp | linear | none`` and ``negatives`` ``ntxent | cross_view`` are the DirectCLR paper's
    baseline switches (Jing et al., ICLR 2022)."""

    name: str = "simclr"
    temperature: float = 0.2
    gather_distributed: bool = True
    projector: str = "mlp"
    negatives: str = "ntxent"

    def check(self, where: str = "method") -> None:
        require_greater(f"{where}.temperature", self.temperature, 0)
        require_choice(f"{where}.projector", self.projector, ("mlp", "linear", "none"))
        require_choice(f"{where}.negatives", self.negatives, ("ntxent", "cross_view"))


@dataclass
class DirectCLRConfig(MethodConfig):
    """DirectCLR (Jing et al., ICLR 2022): InfoNCE on the first ``d0`` backbone dimensions, no projector;
    ``negatives`` is ``cross_view`` (official, symmetric) or ``ntxent``."""

    name: str = "directclr"
    d0: int = 64
    temperature: float = 0.1
    negatives: str = "cross_view"
    gather_distributed: bool = True

    def check(self, where: str = "method") -> None:
        require_at_least(f"{where}.d0", self.d0, 1)
        require_greater(f"{where}.temperature", self.temperature, 0)
        require_choice(f"{where}.negatives", self.negatives, ("cross_view", "ntxent"))


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
    """Devices, precision, length of the run (exactly one of ``STOP_KEYS``), seed, checkpoint/log cadence."""

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
    deterministic: bool = False

    def check(self, where: str = "trainer") -> None:
        if sum(getattr(self, key) is not None for key in STOP_KEYS) != 1:
            raise ConfigError(f"{where}: set exactly one of {', '.join(STOP_KEYS)} (set the others to null)")
        for key in ("devices", "num_nodes", "max_epochs", "max_steps", "checkpoint_every_steps", "log_every_steps"):
            require_at_least(f"{where}.{key}", getattr(self, key), 1)
        require_greater(f"{where}.time_budget_minutes", self.time_budget_minutes, 0)
        require_in_range(f"{where}.seed", self.seed, 0, 2**32 - 1)


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
    method: MethodConfig = field(default_factory=SimCLRConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)

    def check(self) -> None:
        if not self.name or "\n" in self.name:
            raise ConfigError(f"name must be a non-empty one-line string, got {self.name!r}")
        if self.monitor.knn_every_epochs > 0 and self.data.eval_split is None:
            raise ConfigError("monitor.knn_every_epochs needs data.eval_split (or set monitor.knn_every_epochs=0)")


SECTIONS: dict[str, type] = {name: cls for name, cls in typing.get_type_hints(Config).items() if name != "name"}

# ------------------------------------------------------------------------------------------ method registry

METHOD_CONFIGS: dict[str, type[MethodConfig]] = {}
M = TypeVar("M", bound=type[MethodConfig])


def register_method_config(cls: M) -> M:
    """Register a ``MethodConfig`` dataclass under the default of its ``name`` field (usable as a decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, MethodConfig) and dataclasses.is_dataclass(cls)):
        raise ValueError(f"register_method_config needs a @dataclass subclass of MethodConfig, got {cls!r}")
    name = cls().name
    if not name:
        raise ValueError(f"{cls.__name__} needs a default for `name` (the key used in YAML: method.name)")
    if METHOD_CONFIGS.get(name, cls) is not cls:
        raise ValueError(f"method config {name!r} is already registered by {METHOD_CONFIGS[name].__name__}")
    METHOD_CONFIGS[name] = cls
    return cls


register_method_config(SimCLRConfig)
register_method_config(DirectCLRConfig)
DEFAULT_METHOD = "simclr"
