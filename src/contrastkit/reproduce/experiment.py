"""What a reproduction is: arms x seeds of a run function, metrics with their protocols, and claims with verdicts.

A method issue adds one module under ``contrastkit/reproduce/experiments/`` that builds an :class:`Experiment` and
calls :func:`register_experiment` at import time; :func:`get_experiment` and :func:`list_experiments` import every
module of that package on first use. Heavy or optional imports (lightning, torch_geometric, data) belong inside
the ``run`` function, so that listing experiments stays cheap::

    def run(arm: Arm, seed: int, quick: bool) -> dict[str, float]:
        ...  # train with arm.setting, evaluate, return {"knn_top1": 0.81, ...}

    register_experiment(Experiment(
        name="hcsc_hard_negatives", description="HCSC Table 2 ablation on Fashion-MNIST",
        arms=[Arm("baseline", {"hard": False}), Arm("hard_negatives", {"hard": True})],
        metrics=[Metric("knn_top1", "kNN top-1 (k=200, T=0.1, cosine, test split)")],
        run=run, primary_metric="knn_top1",
        gates=[mean_at_least("baseline_works", "baseline", "knn_top1", 0.80, "the baseline reaches its anchor")],
        hypotheses=[Hypothesis("Hard negatives raise kNN top-1 (Table 2)", "knn_top1", "hard_negatives",
                               "baseline", margin=0.005, gates=("baseline_works",))]))

The hypotheses and gates are declared in the module, before any run; :func:`contrastkit.reproduce.claims.judge`
turns the rows into verdicts (:mod:`contrastkit.reproduce.claims` gives the rule).
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contrastkit.reproduce.claims import Claim, Hypothesis
from contrastkit.reproduce.gates import Gate

__all__ = [
    "Arm",
    "Metric",
    "Claim",
    "Hypothesis",
    "Experiment",
    "register_experiment",
    "get_experiment",
    "list_experiments",
    "unregister_experiment",
]


@dataclass(frozen=True)
class Arm:
    """One condition of an experiment: a ``name`` and the JSON-able ``setting`` its ``run`` reads."""

    name: str
    setting: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"an arm needs a non-empty name, got {self.name!r}")
        try:
            json.dumps(dict(self.setting), allow_nan=False)
        except (TypeError, ValueError) as err:
            raise ValueError(f"arm {self.name!r}: setting must be JSON-serialisable ({err})") from err


@dataclass(frozen=True)
class Metric:
    """A reported metric: its key in ``run``'s result, how it was measured, and its direction."""

    name: str
    protocol: str
    higher_is_better: bool = True

    def __post_init__(self) -> None:
        if not self.name or not self.protocol:
            raise ValueError(f"metric {self.name!r} needs a name and a protocol text (e.g. 'kNN top-1, k=200, ...')")


RunFn = Callable[[Arm, int, bool], Mapping[str, float]]
FiguresFn = Callable[[dict[str, Any], Path, bool], Sequence[Path]]
ArmCommandFn = Callable[[Arm, int, bool], str]


@dataclass(frozen=True)
class Experiment:
    """A reproduction: ``run(arm, seed, quick) -> {metric: value}`` over ``arms`` x seeds, then its hypotheses
    judged (gates first) by :func:`contrastkit.reproduce.claims.judge` at level ``alpha``.

    ``arms[0]`` is the baseline that the report pairs every other arm against. ``hypotheses`` and ``gates`` are
    declared before the run; every hypothesis names arms, a metric and gates of this experiment. ``quick=True``
    asks ``run`` for a smoke-test budget (seconds, not minutes).

    ``figures(results, directory, quick) -> [png paths]`` (optional) draws what is not a per-arm bar chart (spectra,
    per-class recalls, image grids) into ``directory / "plots"`` after the claims, usually from what ``run`` saved
    with :func:`contrastkit.reproduce.save_artifact_json`; the report links every returned path.

    ``duration`` (optional) says what a full run costs, e.g. "15 minutes on 2 CPU cores"; ``contrastkit reproduce``
    lists it.

    ``arm_command(arm, seed, quick) -> str`` (optional) is the command that trains an arm by hand (for arms that are
    config overlays, ``contrastkit train BASE.yaml --set ...``: :func:`contrastkit.reproduce.arms.arm_command`).
    """

    name: str
    description: str
    arms: Sequence[Arm]
    metrics: Sequence[Metric]
    run: RunFn
    hypotheses: Sequence[Hypothesis]
    primary_metric: str
    gates: Sequence[Gate] = ()
    alpha: float = 0.05
    duration: str = ""
    figures: FiguresFn | None = None
    arm_command: ArmCommandFn | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"experiment name must be letters, digits, '_' or '-', got {self.name!r}")
        arm_names = [arm.name for arm in self.arms]
        if not arm_names or len(set(arm_names)) != len(arm_names):
            raise ValueError(f"experiment {self.name!r} needs at least one arm and unique arm names, got {arm_names}")
        metric_names = [m.name for m in self.metrics]
        if not metric_names or len(set(metric_names)) != len(metric_names):
            raise ValueError(f"experiment {self.name!r} needs unique metrics, got {metric_names}")
        if self.primary_metric not in metric_names:
            raise ValueError(f"primary_metric {self.primary_metric!r} is not among the metrics {metric_names}")
        if not callable(self.run):
            raise ValueError(f"experiment {self.name!r}: run must be a callable")
        self._check_hypotheses(arm_names, metric_names)
        if self.figures is not None and not callable(self.figures):
            raise ValueError(f"experiment {self.name!r}: figures must be a callable or None")

    def _check_hypotheses(self, arm_names: list[str], metric_names: list[str]) -> None:
        """Every hypothesis names declared arms, metric and gates; gate names are unique; alpha in (0, 0.5)."""
        if not self.hypotheses or not all(isinstance(h, Hypothesis) for h in self.hypotheses):
            raise ValueError(f"experiment {self.name!r} needs a non-empty list of Hypothesis: what the paper claims")
        gate_names = [g.name for g in self.gates]
        if len(set(gate_names)) != len(gate_names) or not all(isinstance(g, Gate) for g in self.gates):
            raise ValueError(f"experiment {self.name!r}: gates must be Gate objects with unique names: {gate_names}")
        if not 0.0 < self.alpha < 0.5:
            raise ValueError(f"experiment {self.name!r}: alpha must lie in (0, 0.5), got {self.alpha!r}")
        for h in self.hypotheses:
            unknown = [a for a in (h.better, h.worse) if a not in arm_names]
            unknown += [h.metric] if h.metric not in metric_names else []
            unknown += [g for g in h.gates if g not in gate_names]
            if unknown:
                raise ValueError(f"experiment {self.name!r}: hypothesis {h.claim!r} names undeclared {unknown}")
        claims = [h.claim for h in self.hypotheses]
        if len(set(claims)) != len(claims):
            raise ValueError(f"experiment {self.name!r}: two hypotheses share a claim text; make each distinct")

    def rerun_command(self, arm: Arm, seed: int, quick: bool) -> str:
        """``contrastkit reproduce NAME --arms ARM --only-seed SEED``: one arm and seed of this experiment."""
        return f"contrastkit reproduce {self.name} --arms {arm.name} --only-seed {seed}" + (" --quick" if quick else "")

    def select_arms(self, patterns: Sequence[str]) -> list[Arm]:
        """The arms whose names match any of the shell-style ``patterns`` (declaration order)."""
        chosen = [arm for arm in self.arms if any(fnmatch.fnmatchcase(arm.name, p) for p in patterns)]
        if not chosen:
            raise ValueError(
                f"no arm matches {list(patterns)} in experiment {self.name!r}; its {len(self.arms)} arms look like "
                f"{', '.join(a.name for a in self.arms[:3])}"
            )
        return chosen

    def metric(self, name: str) -> Metric | None:
        """The declared :class:`Metric` called ``name`` (None for an undeclared extra metric)."""
        return next((m for m in self.metrics if m.name == name), None)


_REGISTRY: dict[str, Experiment] = {}
_DISCOVERED = False


def _discover() -> None:
    """Import every module of ``contrastkit.reproduce.experiments`` once (they register themselves)."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    package = importlib.import_module("contrastkit.reproduce.experiments")
    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{module.name}")


def register_experiment(experiment: Experiment, *, replace: bool = False) -> Experiment:
    """Add ``experiment`` to the registry under its name (ValueError on a duplicate unless ``replace``)."""
    if not isinstance(experiment, Experiment):
        raise ValueError(f"register_experiment takes an Experiment, got {type(experiment).__name__}")
    if experiment.name in _REGISTRY and not replace and _REGISTRY[experiment.name] is not experiment:
        raise ValueError(f"experiment {experiment.name!r} is already registered; pick another name or replace=True")
    _REGISTRY[experiment.name] = experiment
    return experiment


def unregister_experiment(name: str) -> None:
    """Remove ``name`` from the registry (no-op when absent); for tests."""
    _REGISTRY.pop(name, None)


def list_experiments() -> list[str]:
    """Sorted names of the registered experiments (built-in ones included)."""
    _discover()
    return sorted(_REGISTRY)


def get_experiment(name: str) -> Experiment:
    """The registered experiment ``name``; ValueError listing the registered names when unknown."""
    _discover()
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY)) or "none yet"
        raise ValueError(f"unknown experiment {name!r}; registered: {known}")
    return _REGISTRY[name]
