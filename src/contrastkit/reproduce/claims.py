"""Claims declared before a run, and the rule that turns a run's rows into their verdicts.

A :class:`Hypothesis` is fixed in the experiment's module before anything runs: "``better`` beats ``worse`` on
``metric`` by more than ``margin``", the gates it needs, and whether it is one of the few **primary** claims the
reproduction stands on or an **exploratory** one. :func:`judge` gives each a :class:`Claim` with one of four
verdicts. With ``d_s = metric(better, s) - metric(worse, s)`` on each of the ``n`` seeds both arms ran (sign flipped
when lower is better), mean ``d̄`` and standard deviation ``s_d``:

1. **untestable** when a gate the claim names failed (a baseline below its anchor, a premise not met, a classifier
   not converged) or an arm has no rows: the run cannot test the claim, whatever the numbers say;
2. **inconclusive** when fewer than 3 seeds are paired, or every paired difference is exactly 0 (a tie: the arms
   gave identical results on every seed, which is no evidence either way);
3. otherwise the one-sided paired t-tests of ``H0: E[d] <= margin`` (p) and ``H0: E[d] >= margin`` (p_reverse)
   are corrected with Holm's step-down method within the claim's family (the primary claims form one family, the
   exploratory ones another): **reproduced** when the corrected p < α, **not reproduced** when the corrected
   p_reverse < α (the effect is reversed or clearly below the margin), **inconclusive** otherwise.

Each tested claim also states its power: ``mde``, the smallest gain above the margin that its seeds would detect
with probability 0.8 at the strictest Holm level ``α / m``
(:func:`contrastkit.reproduce.stats.minimal_detectable_effect`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from contrastkit.reproduce.gates import Gate, check_gates
from contrastkit.reproduce.stats import (
    MIN_SEEDS_FOR_TEST,
    holm_adjust,
    mean_std,
    metric_values,
    minimal_detectable_effect,
    paired_t_test,
    sign_count,
)

__all__ = ["VERDICTS", "VERDICT_RULE", "POWER", "Hypothesis", "Claim", "judge"]

VERDICTS = ("reproduced", "not reproduced", "inconclusive", "untestable")
POWER = 0.8
VERDICT_RULE = (
    "A claim 'A beats B on m by more than a margin' is judged on the per-seed paired differences d = m(A) - m(B) "
    "(sign flipped when lower is better). **untestable**: a gate the claim depends on failed (or an arm did not "
    "run). **inconclusive**: fewer than 3 paired seeds, or d = 0 on every seed (a tie). Otherwise one-sided paired "
    "t-tests of E[d] <= margin (p) and E[d] >= margin (p reverse), Holm-corrected within the claim's family "
    "(primary and exploratory claims are separate families): **reproduced** when corrected p < alpha, **not "
    "reproduced** when corrected p reverse < alpha, **inconclusive** otherwise. MDE: the smallest gain above the "
    "margin the seeds detect with 80 % power at the strictest Holm level alpha/m."
)
Row = Mapping[str, Any]


@dataclass(frozen=True)
class Hypothesis:
    """ "``better`` beats ``worse`` on ``metric`` by more than ``margin``" (metric units), declared before the run.

    A negative margin states non-inferiority ("``better`` is no worse than ``worse`` by more than ``-margin``").
    ``higher_is_better=None`` takes the direction from the experiment's :class:`Metric`. ``gates`` name the
    experiment's gates this claim needs.
    """

    claim: str
    metric: str
    better: str
    worse: str
    margin: float = 0.0
    primary: bool = True
    gates: tuple[str, ...] = ()
    higher_is_better: bool | None = None

    def __post_init__(self) -> None:
        if not self.claim or not self.metric or not self.better or not self.worse:
            raise ValueError(f"a hypothesis needs claim, metric, better and worse, got {self!r}")
        if self.better == self.worse:
            raise ValueError(f"hypothesis {self.claim!r} compares arm {self.better!r} with itself")
        if isinstance(self.margin, bool) or not isinstance(self.margin, (int, float)) or not math.isfinite(self.margin):
            raise ValueError(f"hypothesis {self.claim!r}: margin must be a finite number, got {self.margin!r}")
        if isinstance(self.gates, str) or not all(isinstance(g, str) for g in self.gates):
            raise ValueError(f"hypothesis {self.claim!r}: gates must be a tuple of gate names, got {self.gates!r}")


@dataclass(frozen=True)
class Claim:
    """A hypothesis with its verdict (one of :data:`VERDICTS`) and the numbers behind it, as in results.json.

    ``mean_difference`` is in the claim's direction (positive favours ``better``); ``p`` / ``p_reverse`` are the raw
    one-sided p-values against the margin, ``p_holm`` / ``p_reverse_holm`` Holm-corrected within the family;
    ``mde`` is the power statement (None where nothing was tested).
    """

    claim: str
    verdict: str
    evidence: str
    primary: bool = True
    metric: str = ""
    better: str = ""
    worse: str = ""
    margin: float = 0.0
    gates: tuple[str, ...] = ()
    failed_gates: tuple[str, ...] = ()
    n: int = 0
    mean_difference: float | None = None
    std_difference: float | None = None
    p: float | None = None
    p_reverse: float | None = None
    p_holm: float | None = None
    p_reverse_holm: float | None = None
    mde: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"claim verdict must be one of {list(VERDICTS)}, got {self.verdict!r}")
        if not self.claim or not self.evidence:
            raise ValueError("a claim needs a non-empty 'claim' and 'evidence'")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["gates"], out["failed_gates"] = list(self.gates), list(self.failed_gates)
        out.pop("extra")
        return out


@dataclass
class _Tested:
    hypothesis: Hypothesis
    diffs: list[float]
    p: float
    p_reverse: float


def _direction(hypothesis: Hypothesis, higher_is_better: Mapping[str, bool]) -> bool:
    if hypothesis.higher_is_better is not None:
        return hypothesis.higher_is_better
    return higher_is_better.get(hypothesis.metric, True)


def _paired(rows: Sequence[Row], h: Hypothesis, higher: bool) -> tuple[list[float], str | None]:
    """Per-seed differences in the claim's direction, or the reason there are none (an arm without rows)."""
    present = {str(r["arm"]) for r in rows}
    missing = [arm for arm in (h.better, h.worse) if arm not in present]
    if missing:
        return [], f"arm {missing[0]!r} has no finished rows (not run)"
    a, b = metric_values(rows, h.metric, h.better), metric_values(rows, h.metric, h.worse)
    diffs = [(a[s] - b[s]) * (1.0 if higher else -1.0) for s in a if s in b]
    return diffs, None if diffs else f"arms {h.better!r} and {h.worse!r} share no seed"


def judge(
    rows: Sequence[Row],
    hypotheses: Sequence[Hypothesis],
    gates: Sequence[Gate] = (),
    *,
    alpha: float = 0.05,
    higher_is_better: Mapping[str, bool] | None = None,
) -> list[Claim]:
    """The verdict of every hypothesis on ``rows`` (see the module docstring), in declaration order.

    ``higher_is_better`` maps metric names to their direction (the experiment's metrics; default higher).
    """
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must lie in (0, 0.5), got {alpha!r}")
    directions = dict(higher_is_better or {})
    outcomes = {o.name: o for o in check_gates(rows, gates)}
    unknown = sorted({g for h in hypotheses for g in h.gates} - set(outcomes))
    if unknown:
        raise ValueError(f"hypotheses name undeclared gates {unknown}; declared: {sorted(outcomes)}")
    claims: dict[int, Claim] = {}
    tested: dict[bool, list[tuple[int, _Tested]]] = {True: [], False: []}
    for i, h in enumerate(hypotheses):
        base = {"claim": h.claim, "primary": h.primary, "metric": h.metric, "better": h.better, "worse": h.worse,
                "margin": float(h.margin), "gates": tuple(h.gates)}  # fmt: skip
        failed = tuple(g for g in h.gates if not outcomes[g].passed)
        if failed:
            why = "; ".join(f"gate {g} failed: {outcomes[g].evidence}" for g in failed)
            claims[i] = Claim(verdict="untestable", evidence=why, failed_gates=failed, **base)
            continue
        diffs, missing = _paired(rows, h, _direction(h, directions))
        if missing is not None:
            claims[i] = Claim(verdict="untestable", evidence=missing, **base)
            continue
        stats = mean_std(diffs)
        numbers = {"n": stats.n, "mean_difference": stats.mean,
                   "std_difference": None if math.isnan(stats.std) else stats.std}  # fmt: skip
        head = _head(h, diffs)
        if stats.n < MIN_SEEDS_FOR_TEST:
            claims[i] = Claim(verdict="inconclusive", evidence=f"{head}; fewer than {MIN_SEEDS_FOR_TEST} seeds, no "
                              "test", **base, **numbers)  # fmt: skip
            continue
        if all(d == 0.0 for d in diffs):
            claims[i] = Claim(verdict="inconclusive", evidence=f"{head}; tie: identical on every seed, no evidence "
                              "either way", **base, **numbers)  # fmt: skip
            continue
        _, p, p_reverse = paired_t_test(diffs, h.margin)
        tested[h.primary].append((i, _Tested(h, diffs, p, p_reverse)))
    for family in tested.values():
        p_holm = holm_adjust([t.p for _, t in family])
        p_reverse_holm = holm_adjust([t.p_reverse for _, t in family])
        for (i, t), adj, adj_reverse in zip(family, p_holm, p_reverse_holm, strict=True):
            stats = mean_std(t.diffs)
            mde = minimal_detectable_effect(stats.std, stats.n, alpha / len(family), POWER)
            verdict = "reproduced" if adj < alpha else "not reproduced" if adj_reverse < alpha else "inconclusive"
            evidence = (
                f"{_head(t.hypothesis, t.diffs)}; one-sided paired t-test vs the margin over {len(family)} "
                f"{'primary' if t.hypothesis.primary else 'exploratory'} claims: p={t.p:.3g} (Holm {adj:.3g}), "
                f"p reverse={t.p_reverse:.3g} (Holm {adj_reverse:.3g}); detectable gain at 80 % power: margin + "
                f"{mde:.3g}"
            )
            claims[i] = Claim(
                claim=t.hypothesis.claim, verdict=verdict, evidence=evidence, primary=t.hypothesis.primary,
                metric=t.hypothesis.metric, better=t.hypothesis.better, worse=t.hypothesis.worse,
                margin=float(t.hypothesis.margin), gates=tuple(t.hypothesis.gates), n=stats.n,
                mean_difference=stats.mean, std_difference=stats.std, p=t.p, p_reverse=t.p_reverse, p_holm=adj,
                p_reverse_holm=adj_reverse, mde=mde,
            )  # fmt: skip
    return [claims[i] for i in range(len(hypotheses))]


def _head(h: Hypothesis, diffs: Sequence[float]) -> str:
    stats = mean_std(diffs)
    std = "n/a" if math.isnan(stats.std) else f"{stats.std:.4g}"
    return (
        f"{h.metric}: {h.better} vs {h.worse} paired over {stats.n} seeds, gain {stats.mean:+.4g} ± {std} "
        f"({sign_count(diffs, 'better')}), margin {h.margin:g}"
    )
