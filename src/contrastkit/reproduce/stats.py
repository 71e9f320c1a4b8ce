"""Statistics over seeds for reproduction reports: mean ± std, paired differences, paired t-tests, Holm's step-down
correction and the smallest effect a run could detect.

Rows are the result rows of :func:`contrastkit.reproduce.run_experiment`:
``{"arm": str, "setting": {...}, "seed": int, "metrics": {name: float}}``. Arms are compared *paired by seed*
(the same seed drives data order, initialisation and views in every arm), which removes the seed-to-seed variance
shared by the arms. How these numbers become verdicts is :mod:`contrastkit.reproduce.claims`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

__all__ = [
    "MIN_SEEDS_FOR_TEST",
    "MeanStd",
    "mean_std",
    "metric_values",
    "paired_differences",
    "paired_t_test",
    "holm_adjust",
    "minimal_detectable_effect",
    "sign_count",
]

MIN_SEEDS_FOR_TEST = 3

Row = Mapping[str, Any]


class MeanStd(NamedTuple):
    """Sample mean, sample standard deviation (ddof=1; NaN when ``n < 2``) and count."""

    mean: float
    std: float
    n: int

    def __str__(self) -> str:
        std = "n/a" if math.isnan(self.std) else f"{self.std:.4g}"
        return f"{self.mean:.4g} ± {std} (n={self.n})"


def mean_std(values: Sequence[float]) -> MeanStd:
    """``MeanStd(mean, std with ddof=1, n)`` of a non-empty sequence of numbers."""
    xs = [float(v) for v in values]
    if not xs:
        raise ValueError("mean_std needs at least one value; did every run of the arm fail?")
    mean = math.fsum(xs) / len(xs)
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else math.nan
    return MeanStd(mean, std, len(xs))


def metric_values(rows: Sequence[Row], metric: str, arm: str) -> dict[int, float]:
    """``{seed: value}`` of ``metric`` for ``arm``; ValueError for an unknown arm, a missing metric, a repeated seed."""
    arms = list(dict.fromkeys(str(r["arm"]) for r in rows))
    if arm not in arms:
        raise ValueError(f"no rows for arm {arm!r}; arms present: {arms}")
    values: dict[int, float] = {}
    for row in rows:
        if row["arm"] != arm:
            continue
        if metric not in row["metrics"]:
            have = sorted(row["metrics"])
            raise ValueError(f"arm {arm!r} seed {row['seed']} has no metric {metric!r}; it has {have}")
        if row["seed"] in values:
            raise ValueError(f"arm {arm!r} has seed {row['seed']} twice; give each setting its own arm name")
        values[int(row["seed"])] = float(row["metrics"][metric])
    return dict(sorted(values.items()))


def paired_differences(rows: Sequence[Row], metric: str, arm: str, baseline: str) -> dict[int, float]:
    """``{seed: metric(arm, seed) - metric(baseline, seed)}`` over the seeds both arms ran, sorted by seed."""
    a, b = metric_values(rows, metric, arm), metric_values(rows, metric, baseline)
    return {seed: a[seed] - b[seed] for seed in a if seed in b}


def paired_t_test(differences: Sequence[float], margin: float = 0.0) -> tuple[float, float, float]:
    """One-sided paired t-test of the mean of ``differences`` against ``margin``: ``(t, p_greater, p_less)``.

    ``t = (d̄ - margin) / (s_d / √n)`` with ``n - 1`` degrees of freedom; ``p_greater = P(T >= t)`` tests
    ``H0: E[d] <= margin`` and ``p_less = P(T <= t)`` tests ``H0: E[d] >= margin``. A zero standard deviation gives
    ``t = ±inf`` (p 0 or 1) or, when ``d̄ == margin``, ``t = 0`` with both p-values 1. Needs ``n >= 2``.
    """
    from scipy.stats import t as student_t  # scipy ships with scikit-learn

    stats = mean_std(differences)
    if stats.n < 2:
        raise ValueError(f"a paired t-test needs at least 2 differences, got {stats.n}; run more seeds")
    gap = stats.mean - margin
    if stats.std == 0.0:
        if gap == 0.0:
            return 0.0, 1.0, 1.0
        return math.copysign(math.inf, gap), float(gap < 0), float(gap > 0)
    t = gap / (stats.std / math.sqrt(stats.n))
    return t, float(student_t.sf(t, stats.n - 1)), float(student_t.cdf(t, stats.n - 1))


def sign_count(differences: Sequence[float], higher: str = "higher") -> str:
    """``"k/n seeds higher"``: how many differences are > 0 (ties and reversals make up the rest)."""
    positive = sum(1 for d in differences if d > 0)
    return f"{positive}/{len(differences)} seeds {higher}"


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979), in the input order.

    With the ``m`` p-values sorted ascending, ``p_(1) <= ... <= p_(m)``, the adjusted value of the ``i``-th is
    ``max_{j <= i} min(1, (m - j + 1) · p_(j))``. Rejecting every hypothesis whose adjusted p is below ``α``
    controls the family-wise error rate at ``α`` under any dependence between the tests. ``[]`` gives ``[]``.
    """
    ps = [float(p) for p in p_values]
    if any(not 0.0 <= p <= 1.0 for p in ps):
        raise ValueError(f"p-values must lie in [0, 1], got {ps}")
    m = len(ps)
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(sorted(range(m), key=lambda i: ps[i])):
        running = max(running, min(1.0, (m - rank) * ps[index]))
        adjusted[index] = running
    return adjusted


def minimal_detectable_effect(std: float, n: int, alpha: float, power: float = 0.8) -> float:
    """The smallest true mean paired difference (above the margin) that a one-sided paired t-test at level
    ``alpha`` detects with probability ``power``, for ``n`` seeds whose differences have standard deviation ``std``:
    ``(t_{1-α, n-1} + t_{power, n-1}) · std / √n`` (the usual normal-shift approximation with Student quantiles).
    0 when ``std == 0``; needs ``n >= 2``."""
    from scipy.stats import t as student_t

    if n < 2:
        raise ValueError(f"a detectable effect needs at least 2 seeds, got {n}")
    if not (0.0 < alpha < 1.0 and 0.0 < power < 1.0):
        raise ValueError(f"alpha and power must lie in (0, 1), got alpha={alpha}, power={power}")
    if std == 0.0:
        return 0.0
    quantiles = float(student_t.ppf(1.0 - alpha, n - 1)) + float(student_t.ppf(power, n - 1))
    return quantiles * std / math.sqrt(n)
