"""The registry of method recipes: each method declares its typed config and its builder next to its code.

A method module (``contrastkit/methods/NAME.py``) ends with::

    @dataclass
    class NameConfig(MethodConfig):
        name: str = "name"                  # the YAML key method.name
        temperature: float = 0.1
        def check(self, where: str = "method") -> None:
            require_greater(f"{where}.temperature", self.temperature, 0)

    def build_name(cfg: NameConfig, ctx: BuildContext) -> nn.Module:
        return Name(ctx.backbone, ctx.views, temperature=cfg.temperature)

    register_method(NameConfig, build_name)

``contrastkit train`` then trains it from YAML (``method: {name: name, temperature: 0.2}``). This module holds only
the standard library (configs are validated without importing torch); :func:`recipes` imports
:mod:`contrastkit.methods` on first use, so that every built-in method has registered itself.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BuildContext",
    "ConfigError",
    "METHOD_INPUTS",
    "MethodConfig",
    "Recipe",
    "recipes",
    "register_method",
    "require_at_least",
    "require_choice",
    "require_greater",
    "require_in_range",
]


class ConfigError(ValueError):
    """A bad config: unknown key, wrong type, value out of range, unreadable file. The message is one line."""


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


@dataclass
class MethodConfig:
    """Base of the method configs; ``name`` selects the subclass through the registry."""

    name: str = ""

    def check(self, where: str = "method") -> None:
        """Range checks of the method's own keys (types are checked before)."""


@dataclass(frozen=True)
class BuildContext:
    """What a builder gets besides its config: the configured ``backbone`` and training ``views``
    (a ``contrastkit.augment.ViewPipeline``), the head sizes of the ``model`` section, and the training data's
    ``num_classes`` (0 when unlabelled) and ``class_counts`` (labelled items per class, or None)."""

    backbone: Any
    views: Any
    projection_dim: int
    hidden_dim: int | None
    num_classes: int
    class_counts: tuple[int, ...] | None


METHOD_INPUTS = ("images", "graph")  # what a method trains on: image batches, or node-induced subgraphs


@dataclass(frozen=True)
class Recipe:
    """A registered method: its config class, its builder, whether it needs labelled training data and what it
    trains on (``METHOD_INPUTS``)."""

    config: type[MethodConfig]
    build: Callable[[Any, BuildContext], Any]
    needs_labels: bool = False
    inputs: str = "images"


_RECIPES: dict[str, Recipe] = {}


def register_method(
    config: type[MethodConfig],
    build: Callable[[Any, BuildContext], Any],
    *,
    needs_labels: bool = False,
    inputs: str = "images",
) -> Recipe:
    """Register ``config`` (a ``@dataclass`` subclass of :class:`MethodConfig`) under the default of its ``name``
    field, with the ``build(cfg, ctx) -> nn.Module`` that makes the method and what it trains on (``inputs``:
    ``"images"``, or ``"graph"`` for node-level methods on a graph source and the ``gcn`` backbone)."""
    if inputs not in METHOD_INPUTS:
        raise ValueError(f"inputs must be one of {METHOD_INPUTS}, got {inputs!r}")
    if not (isinstance(config, type) and issubclass(config, MethodConfig) and dataclasses.is_dataclass(config)):
        raise ValueError(f"register_method needs a @dataclass subclass of MethodConfig, got {config!r}")
    name = config().name
    if not name:
        raise ValueError(f"{config.__name__} needs a default for `name` (the key used in YAML: method.name)")
    if name in _RECIPES and _RECIPES[name].config is not config:
        raise ValueError(f"method {name!r} is already registered by {_RECIPES[name].config.__name__}")
    if not callable(build):
        raise ValueError(f"the builder of method {name!r} must be callable, got {build!r}")
    _RECIPES[name] = Recipe(config, build, needs_labels, inputs)
    return _RECIPES[name]


def recipes() -> dict[str, Recipe]:
    """Every registered method by name (the built-in ones are imported on first use)."""
    importlib.import_module("contrastkit.methods")
    return dict(_RECIPES)
