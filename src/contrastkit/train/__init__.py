"""Training: typed configs (stdlib and PyYAML only), the one engine (:mod:`contrastkit.train.engine`), the
run-directory shell ``fit`` (:mod:`contrastkit.train.loop`), callbacks, checkpoints and reports."""

from __future__ import annotations

from contrastkit.train.config import (
    AugmentConfig,
    Config,
    ConfigError,
    DataConfig,
    MethodConfig,
    ModelConfig,
    MonitorConfig,
    OptimConfig,
    ScheduleConfig,
    TrainerConfig,
    config_from_dict,
    config_to_dict,
    dump_config,
    load_config,
    method_config_class,
    validate_config,
)

__all__ = [
    "AugmentConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "MethodConfig",
    "ModelConfig",
    "MonitorConfig",
    "OptimConfig",
    "ScheduleConfig",
    "TrainerConfig",
    "config_from_dict",
    "config_to_dict",
    "dump_config",
    "load_config",
    "method_config_class",
    "validate_config",
]
