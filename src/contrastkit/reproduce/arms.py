"""Arms as config overlays, and the one generic arm runner.

An arm of a config-driven experiment is a base YAML (shipped in ``contrastkit/reproduce/configs/``) plus
``key=value`` overrides, exactly what ``contrastkit train BASE.yaml --set ...`` reads::

    Arm("directclr-d16-strong", {"overrides": ["method.name=directclr", "method.d0=16", "augment.min_scale=0.08"]})

:func:`train_arm` builds the run with :func:`contrastkit.train.builders.build_engine` (the call ``contrastkit
train`` makes) and runs the engine, so an arm and ``contrastkit train`` with the same config and seed end with the
same weights. :func:`arm_command` prints that command; the reproduction report lists it for every arm.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from contrastkit.reproduce.experiment import Arm

__all__ = [
    "arm_command",
    "arm_config",
    "arm_overrides",
    "base_config_path",
    "config_arm_runner",
    "train_arm",
    "train_command",
]

EvaluateFn = Callable[[Any, Any, Arm, int, bool], Mapping[str, float]]


def base_config_path(name: str) -> Path:
    """The shipped base YAML ``contrastkit/reproduce/configs/NAME.yaml``."""
    path = Path(str(resources.files("contrastkit.reproduce") / "configs" / f"{name}.yaml"))
    if not path.is_file():
        raise ValueError(f"no base config {name!r} in {path.parent}")
    return path


def _strings(arm: Arm, key: str) -> list[str]:
    value = arm.setting.get(key, [])
    if not isinstance(value, (list, tuple)) or not all(isinstance(o, str) for o in value):
        raise ValueError(f"arm {arm.name!r}: setting[{key!r}] must be a list of 'key=value' strings")
    return list(value)


def arm_overrides(
    arm: Arm, seed: int, quick: bool, quick_overrides: Sequence[str] = (), stage: str = "overrides"
) -> list[str]:
    """The ``--set`` overrides of ``arm`` at ``seed``: ``setting[stage]``, the seed, and with ``quick`` the
    smoke-test budget (``quick_overrides`` of the experiment, then the arm's ``setting[stage + "_quick"]``).
    ``stage`` names another list of the setting for a run that precedes the arm's own (e.g. ``"stage1"``)."""
    quick_part = [*quick_overrides, *_strings(arm, f"{stage}_quick")] if quick else []
    return [*_strings(arm, stage), f"trainer.seed={seed}", *quick_part]


def arm_config(
    base: str, arm: Arm, seed: int, quick: bool, quick_overrides: Sequence[str] = (), extra: Sequence[str] = ()
) -> Any:
    """The :class:`~contrastkit.train.Config` of ``arm`` (base YAML ``base`` + overrides + ``extra``)."""
    from contrastkit.train import load_config

    return load_config(base_config_path(base), [*arm_overrides(arm, seed, quick, quick_overrides), *extra])


def train_command(base: str, overrides: Sequence[str], out: str | None = None) -> str:
    """``contrastkit train src/contrastkit/reproduce/configs/BASE.yaml --set ...`` (``--out`` when given)."""
    shown = f"src/contrastkit/reproduce/configs/{base_config_path(base).name}"
    tail = f" --out {shlex.quote(out)}" if out else ""
    return f"contrastkit train {shown} --set " + " ".join(shlex.quote(o) for o in overrides) + tail


def arm_command(base: str, arm: Arm, seed: int, quick: bool, quick_overrides: Sequence[str] = ()) -> str:
    """The ``contrastkit train`` command that trains ``arm`` at ``seed`` by hand."""
    return train_command(base, arm_overrides(arm, seed, quick, quick_overrides))


def train_arm(cfg: Any, *, train: bool = True) -> tuple[Any, Any]:
    """Train ``cfg`` through the engine (no run directory) and return ``(method in eval mode, data)``; with
    ``train=False`` the method keeps its seed's initialisation (a random-init reference)."""
    from contrastkit.train.builders import build_engine

    engine, module, data = build_engine(cfg)  # one process on trainer.accelerator, as contrastkit train
    if train:
        engine.run()
    return module.method.eval(), data


def config_arm_runner(
    base: str, evaluate: EvaluateFn, quick_overrides: Sequence[str] = ()
) -> Callable[[Arm, int, bool], dict[str, float]]:
    """The ``run(arm, seed, quick)`` of a config-overlay experiment: build the arm's config, train it through the
    engine (not when ``setting["train"]`` is false), then ``evaluate(method, data, quick) -> {metric: value}``.
    ``seconds`` (training + evaluation) is added."""
    import time

    def run(arm: Arm, seed: int, quick: bool) -> dict[str, float]:
        start = time.perf_counter()
        cfg = arm_config(base, arm, seed, quick, quick_overrides)
        method, data = train_arm(cfg, train=bool(arm.setting.get("train", True)))
        metrics = dict(evaluate(method, data, arm, seed, quick))
        metrics["seconds"] = time.perf_counter() - start
        return metrics

    return run
