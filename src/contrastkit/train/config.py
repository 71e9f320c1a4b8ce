"""Typed run configuration: dataclasses for every section, YAML loading, ``--set a.b=c`` overrides, validation.

A config file is a YAML mapping of sections (every section and every key is optional; defaults are below)::

    name: simclr_fashion_mnist
    data: {name: fashion-mnist, batch_size: 256}
    model: {backbone: resnet18, width: 0.25}
    method: {name: simclr, temperature: 0.2}     # `name` picks the config class the method registered
    optim: {name: adam, lr: 2.0e-3}
    trainer: {time_budget_minutes: 10}           # at least one of max_epochs, max_steps, time_budget_minutes;
                                                 # several: whichever comes first

``load_config(path, ["optim.lr=0.1", "trainer.max_steps=5", "trainer.time_budget_minutes=null"])`` reads the
file, applies the overrides in order (values parsed as YAML) and validates. Every problem is a one-line
:class:`ConfigError` that names the key path and the fix. Only stdlib + PyYAML: no torch import here.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from contrastkit.method_registry import recipes
from contrastkit.train.config_schema import (
    CHOICES,
    DEFAULT_METHOD,
    SECTIONS,
    STOP_KEYS,
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
    require_at_least,
    require_choice,
    require_greater,
    require_in_range,
)

__all__ = [
    "AugmentConfig", "CHOICES", "Config", "ConfigError", "DataConfig", "MethodConfig", "ModelConfig",
    "MonitorConfig", "OptimConfig", "STOP_KEYS", "ScheduleConfig", "TrainerConfig", "apply_overrides",
    "config_from_dict", "config_to_dict", "dump_config", "load_config", "method_config_class", "parse_override",
    "require_at_least", "require_greater", "require_in_range", "validate_config",
]  # fmt: skip

# ---------------------------------------------------------------------------------------- dict <-> Config


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(hint: Any) -> str:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in args)
    if typing.get_origin(hint) in (list, tuple):
        return f"list of {_type_name(args[0])}"
    return getattr(hint, "__name__", str(hint))


def _coerce(value: object, hint: Any, key: str, choices: Sequence[str] = (), shown: Any = None) -> Any:
    """Check ``value`` against the type hint: int counts as float, bool never counts as a number."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _coerce(value, inner[0], key, choices, shown=hint)
    elif origin in (list, tuple) and isinstance(value, (list, tuple)):
        items = [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
        return list(items) if origin is list else tuple(items)
    elif hint is bool and isinstance(value, bool):
        return value
    elif hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite float, got {value!r}")
        return float(value)
    elif hint is str and isinstance(value, str):
        return value
    elif hint is str and isinstance(value, int) and not isinstance(value, bool) and str(value) in choices:
        return str(value)  # precision: 32 reads as an int in YAML
    raise ConfigError(f"{key}: expected {_type_name(shown or hint)}, got {type(value).__name__} {_show(value)}")


def _unknown_key(where: str, key: object, known: Sequence[str]) -> ConfigError:
    close = difflib.get_close_matches(str(key), known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    path = f"{where}.{key}" if where else str(key)
    return ConfigError(f"unknown key {path!r} ({hint}known: {', '.join(known)})")


def _build(cls: type, raw: object, where: str) -> Any:
    """One section (a dataclass) from a mapping: unknown keys and wrong types raise, missing keys keep defaults."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a mapping of keys, got {type(raw).__name__} {_show(raw)}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        if key not in known:
            raise _unknown_key(where, key, known)
        choices = CHOICES.get((where, key), ())
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}", choices)
        if choices and kwargs[key] is not None:
            require_choice(f"{where}.{key}", kwargs[key], choices)
    obj = cls(**kwargs)
    obj.check(where)
    return obj


def method_config_class(raw: object) -> type[MethodConfig]:
    """The config class of the method section ``raw`` (its ``name``, default simclr), from the method registry."""
    name = raw.get("name", DEFAULT_METHOD) if isinstance(raw, Mapping) else DEFAULT_METHOD
    known = recipes()
    if not isinstance(name, str) or name not in known:
        raise ConfigError(f"method.name must be one of {', '.join(sorted(known))}, got {_show(name)}")
    return known[name].config


def config_from_dict(d: Mapping[str, Any]) -> Config:
    """Build and validate a :class:`Config` from nested mappings (as read from YAML); absent keys keep defaults."""
    if not isinstance(d, Mapping):
        raise ConfigError(f"a config must be a mapping of sections ({', '.join(SECTIONS)}), got {type(d).__name__}")
    known = ["name", *SECTIONS]
    for key in d:
        if key not in known:
            raise _unknown_key("", key, known)
    sections = {}
    for section, cls in SECTIONS.items():
        raw = d.get(section)
        sections[section] = _build(method_config_class(raw) if section == "method" else cls, raw, section)
    cfg = Config(name=_coerce(d.get("name", "run"), str, "name"), **sections)
    cfg.check()
    return cfg


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """Nested plain dicts (YAML-ready); ``config_from_dict(config_to_dict(cfg)) == cfg``."""
    return dataclasses.asdict(cfg)


def validate_config(cfg: Config) -> Config:
    """Check a config built in Python (types, ranges, choices); returns the normalised copy (ints -> floats)."""
    return config_from_dict(config_to_dict(cfg))


# --------------------------------------------------------------------------------------------- YAML files


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-3`` as a float (YAML 1.1 needs ``1.0e-3``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _yaml_problem(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return f"{problem}{where}".replace("\n", " ")


def parse_override(text: str) -> tuple[list[str], object]:
    """``"optim.lr=0.1"`` -> ``(["optim", "lr"], 0.1)``; the value is parsed as YAML (``null``, ``[1, 2]``...)."""
    key, sep, value = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(p.strip() for p in parts) or "\n" in text:
        raise ConfigError(f"bad override {_show(text)} (expected key=value, e.g. optim.lr=0.1)")
    try:
        parsed = yaml.load(value, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as err:
        raise ConfigError(f"bad override {_show(text)}: value is not valid YAML: {_yaml_problem(err)}") from None
    return [p.strip() for p in parts], parsed


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key=value`` overrides in order to a copy of the raw nested dict.

    Setting ``method.name`` to another method keeps the method keys that the new method config also has and
    drops the others.
    """
    if isinstance(overrides, str):
        overrides = [overrides]
    out: dict[str, Any] = {k: dict(v) if isinstance(v, Mapping) else v for k, v in raw.items()}
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"bad override {_show(text)}: {'.'.join(parts[: i + 1])} is not a section")
            node = child
        if parts == ["method", "name"] and isinstance(node, dict):
            new_cls = method_config_class({"name": value})
            keep = {f.name for f in dataclasses.fields(new_cls)}
            for key in [k for k in node if k not in keep]:
                del node[key]
        node[parts[-1]] = value
    return out


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Read a YAML config file, apply ``--set`` style overrides (``a.b=c``), validate, return the Config.

    ``name`` defaults to the file's stem. Raises ConfigError (one line) for every problem.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"config file not found: {path}" if not path.exists() else f"config path is not a file: {path}"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read config file {path}: {type(err).__name__}: {str(err).splitlines()[0]}") from None
    try:
        raw = yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {_yaml_problem(err)}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"config file {path} must hold a mapping of sections ({', '.join(SECTIONS)}), got {type(raw).__name__}"
        )
    raw = {"name": path.stem, **raw}
    return config_from_dict(apply_overrides(raw, overrides))


def dump_config(cfg: Config, path: str | Path) -> None:
    """Write ``cfg`` as YAML with the one atomic writer, :func:`contrastkit._io.atomic_write_text` (temporary
    file fsynced, renamed onto ``path``, directory fsynced; mode of the replaced file, else ``0o666 & ~umask``)."""
    from contrastkit._io import atomic_write_text  # imported here: _io imports torch, this module must not

    text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=False)
    atomic_write_text(Path(path), text)
