"""Training harness (Lightning-based floor above methods/evaluate). Configs need only the stdlib and PyYAML."""

from __future__ import annotations

from contrastkit.train.config import (
    METHOD_CONFIGS,
    AugmentConfig,
    Config,
    ConfigError,
    DataConfig,
    MethodConfig,
    ModelConfig,
    MonitorConfig,
    OptimConfig,
    ScheduleConfig,
    SimCLRConfig,
    TrainerConfig,
    config_from_dict,
    config_to_dict,
    dump_config,
    load_config,
    register_method_config,
    validate_config,
)

__all__ = [
    "METHOD_CONFIGS",
    "AugmentConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "MethodConfig",
    "ModelConfig",
    "MonitorConfig",
    "OptimConfig",
    "ScheduleConfig",
    "SimCLRConfig",
    "TrainerConfig",
    "config_from_dict",
    "config_to_dict",
    "dump_config",
    "load_config",
    "register_method_config",
    "validate_config",
]
