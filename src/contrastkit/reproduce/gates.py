"""Gates: the premises and calibrations a claim needs before its verdict means anything.

A claim such as "DCC beats DC" is only worth testing when DC itself works (it reaches its published anchor), and
"DirectCLR prevents dimensional collapse" only when some arm collapses at all. An :class:`Experiment` declares its
gates beside its hypotheses; each hypothesis names the gates it depends on, and a claim with a failed gate is judged
**untestable** (:mod:`contrastkit.reproduce.claims`), never "not reproduced".

A :class:`Gate` is a name, a sentence and ``check(rows) -> (passed, evidence)``. The constructors below cover the
usual cases; ``arms`` is a shell-style pattern over arm names (or a tuple of them) and "mean" is the mean over an
arm's seeds::

    mean_at_least("dc_anchor_mnist", "dc-mnist-ipc1", "test_acc", 0.88, "DC reaches its MNIST ipc-1 anchor")
    any_arm_at_least("collapse_seen", "*-strong", "collapsed_dims_representation", 1, "some arm collapses")

A gate whose pattern matches no finished row fails with "not run", so a partial run can never pass a gate.
"""

from __future__ import annotations

import fnmatch
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from contrastkit.reproduce.stats import mean_std

__all__ = [
    "Gate",
    "GateOutcome",
    "check_gates",
    "mean_at_least",
    "mean_at_most",
    "any_arm_at_least",
    "any_arm_at_most",
    "beats_reference",
]

Row = Mapping[str, Any]
Patterns = str | Sequence[str]
GateCheck = Callable[[list[dict[str, Any]]], tuple[bool, str]]


@dataclass(frozen=True)
class Gate:
    """A premise or calibration check: ``check(rows) -> (passed, evidence)`` over the finished result rows."""

    name: str
    description: str
    check: GateCheck

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"a gate name must be letters, digits, '_' or '-', got {self.name!r}")
        if not self.description:
            raise ValueError(f"gate {self.name!r} needs a description: what must hold, and why")
        if not callable(self.check):
            raise ValueError(f"gate {self.name!r}: check must be a callable rows -> (passed, evidence)")


@dataclass(frozen=True)
class GateOutcome:
    """A gate's result on one run, as recorded in results.json."""

    name: str
    description: str
    passed: bool
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "passed": self.passed, "evidence": self.evidence}


def check_gates(rows: Sequence[Row], gates: Sequence[Gate]) -> list[GateOutcome]:
    """Every gate's outcome on ``rows``; a check that raises fails its gate with the error as evidence."""
    out = []
    for gate in gates:
        try:
            passed, evidence = gate.check([dict(r) for r in rows])
        except (KeyError, ValueError) as err:
            passed, evidence = False, f"check failed: {err}"
        out.append(GateOutcome(gate.name, gate.description, bool(passed), str(evidence)))
    return out


def _arm_means(rows: Sequence[Row], arms: Patterns, metric: str) -> dict[str, tuple[float, int]]:
    """``{arm: (mean over seeds, n)}`` of ``metric`` for the arms matching a pattern (rows lacking it skipped)."""
    patterns = (arms,) if isinstance(arms, str) else tuple(arms)
    values: dict[str, list[float]] = {}
    for row in rows:
        if any(fnmatch.fnmatchcase(str(row["arm"]), p) for p in patterns) and metric in row["metrics"]:
            values.setdefault(str(row["arm"]), []).append(float(row["metrics"][metric]))
    return {arm: (mean_std(v).mean, len(v)) for arm, v in values.items()}


def _threshold_gate(name: str, arms: Patterns, metric: str, threshold: float, description: str, *, at_least: bool,
                    every: bool) -> Gate:  # fmt: skip
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold)):
        raise ValueError(f"gate {name!r}: threshold must be a finite number, got {threshold!r}")
    compare, sign = (operator.ge, ">=") if at_least else (operator.le, "<=")

    def check(rows: list[dict[str, Any]]) -> tuple[bool, str]:
        means = _arm_means(rows, arms, metric)
        if not means:
            return False, f"not run: no finished row of an arm matching {arms!r} has {metric!r}"
        held = {arm: compare(mean, threshold) for arm, (mean, _) in means.items()}
        passed = all(held.values()) if every else any(held.values())
        shown = ", ".join(f"{arm} {mean:.4g} (n={n})" for arm, (mean, n) in means.items())
        rule = f"{'every' if every else 'some'} arm's mean {metric} {sign} {threshold:g}"
        return passed, f"{rule}: {shown}"

    return Gate(name, description, check)


def mean_at_least(name: str, arms: Patterns, metric: str, threshold: float, description: str) -> Gate:
    """Passes when every arm matching ``arms`` has a mean ``metric`` ``>= threshold`` (e.g. a baseline's anchor)."""
    return _threshold_gate(name, arms, metric, threshold, description, at_least=True, every=True)


def mean_at_most(name: str, arms: Patterns, metric: str, threshold: float, description: str) -> Gate:
    """Passes when every arm matching ``arms`` has a mean ``metric`` ``<= threshold`` (e.g. a convergence gap)."""
    return _threshold_gate(name, arms, metric, threshold, description, at_least=False, every=True)


def any_arm_at_least(name: str, arms: Patterns, metric: str, threshold: float, description: str) -> Gate:
    """Passes when some arm matching ``arms`` has a mean ``metric`` ``>= threshold`` (e.g. a premise is met)."""
    return _threshold_gate(name, arms, metric, threshold, description, at_least=True, every=False)


def any_arm_at_most(name: str, arms: Patterns, metric: str, threshold: float, description: str) -> Gate:
    """Passes when some arm matching ``arms`` has a mean ``metric`` ``<= threshold``."""
    return _threshold_gate(name, arms, metric, threshold, description, at_least=False, every=False)


def beats_reference(name: str, arms: Patterns, metric: str, reference: str, excess: float, description: str, *,
                    every: bool = True) -> Gate:  # fmt: skip
    """Passes when every (``every=False``: some) arm matching ``arms`` has a mean ``metric`` at least ``excess``
    above the mean of the ``reference`` arm, e.g. trained encoders against the same network untrained (a premise:
    training shows in the measure at all). Fails ("not run") when the reference or every matching arm lacks rows."""
    if not (isinstance(excess, (int, float)) and math.isfinite(excess)):
        raise ValueError(f"gate {name!r}: excess must be a finite number, got {excess!r}")

    def check(rows: list[dict[str, Any]]) -> tuple[bool, str]:
        means = {a: m for a, m in _arm_means(rows, arms, metric).items() if a != reference}
        ref = _arm_means(rows, reference, metric).get(reference)
        if not means or ref is None:
            return False, f"not run: no finished rows with {metric!r} for {arms!r} and {reference!r}"
        held = [mean >= ref[0] + excess for mean, _ in means.values()]
        shown = ", ".join(f"{arm} {mean:.4g}" for arm, (mean, _) in means.items())
        rule = f"{'every' if every else 'some'} arm's mean {metric} >= {reference} {ref[0]:.4g} + {excess:g}"
        return (all(held) if every else any(held)), f"{rule}: {shown}"

    return Gate(name, description, check)
