"""Statistics over seeds for reproduction reports: mean ± std, paired differences, and claim verdicts.

Rows are the result rows of :func:`contrastkit.reproduce.run_experiment`:
``{"arm": str, "setting": {...}, "seed": int, "metrics": {name: float}}``. Arms are compared *paired by seed*
(the same seed drives data order, initialisation and views in every arm), which removes the seed-to-seed variance
shared by the arms.

Verdict rule of :func:`compare_arms` (claim: "``better_arm`` beats ``worse_arm`` on ``metric`` by more than
``min_margin``"). With ``d_s = metric(better_arm, s) - metric(worse_arm, s)`` on each of the ``n`` seeds both arms
ran (sign flipped when lower is better), mean ``d̄``, standard deviation ``s_d`` (ddof=1) and the one-sided
Student-t bounds ``LCB/UCB = d̄ ∓ t_{1-α, n-1} · s_d / √n`` (α = 0.05):

* **reproduced** when ``LCB > min_margin``, i.e. ``d̄ > min_margin`` and the one-sided paired t-test of
  ``H0: E[d] <= min_margin`` gives ``p < α``;
* **not reproduced** when ``UCB <= min_margin``, i.e. the one-sided test in the other direction
  (``H0: E[d] >= min_margin``) gives ``p < α``: the data rule out the claimed effect (a reversed effect, or one
  clearly smaller than the margin; identical results on every seed count as a clear null);
* **inconclusive** otherwise, and always when ``n < 3`` (too few seeds for a test).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

__all__ = [
    "VERDICTS",
    "MeanStd",
    "mean_std",
    "metric_values",
    "paired_differences",
    "paired_t_test",
    "sign_count",
    "compare_arms",
    "VERDICT_RULE",
]

VERDICTS = ("reproduced", "not reproduced", "inconclusive")
MIN_SEEDS_FOR_TEST = 3
VERDICT_RULE = (
    "A claim 'A beats B on m by more than a margin' is judged on the per-seed paired differences d = m(A) - m(B) "
    "(n seeds, sign flipped when lower is better) with one-sided paired Student-t bounds "
    "d̄ ∓ t(0.95, n-1)·std(d)/√n: **reproduced** when the lower bound exceeds the margin (mean above the margin "
    "and one-sided p < 0.05), **not reproduced** when the upper bound is at or below the margin (the test in the "
    "other direction has p < 0.05: the effect is reversed or clearly smaller than claimed), **inconclusive** "
    "otherwise and whenever n < 3."
)

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


def compare_arms(
    rows: Sequence[Row],
    metric: str,
    better_arm: str,
    worse_arm: str,
    min_margin: float = 0.0,
    *,
    higher_is_better: bool = True,
    alpha: float = 0.05,
) -> tuple[str, str]:
    """Verdict and evidence for "``better_arm`` beats ``worse_arm`` on ``metric`` by more than ``min_margin``".

    See the module docstring for the rule (one-sided paired t-test at level ``alpha`` on per-seed differences,
    "inconclusive" with fewer than 3 paired seeds). ``higher_is_better=False`` for losses and error rates (then
    ``d = worse - better``). Returns ``(verdict, evidence)``; the evidence gives the mean ± std of the paired
    differences, the sign count, t, p and the one-sided bounds.
    """
    if not (isinstance(min_margin, (int, float)) and math.isfinite(min_margin)):
        raise ValueError(f"min_margin must be a finite number, got {min_margin!r}")
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must lie in (0, 0.5), got {alpha!r}")
    raw = paired_differences(rows, metric, better_arm, worse_arm)
    if not raw:
        raise ValueError(f"arms {better_arm!r} and {worse_arm!r} share no seed; run both with the same seeds")
    diffs = [d if higher_is_better else -d for d in raw.values()]
    stats = mean_std(diffs)
    direction = "higher" if higher_is_better else "lower"
    head = (
        f"{metric} ({direction} is better): {better_arm} - {worse_arm} paired over {stats.n} seeds = "
        f"{_signed(stats.mean if higher_is_better else -stats.mean)} ± {_std(stats.std)}, "
        f"{sign_count(diffs, 'better')}; claimed margin {min_margin:g}"
    )
    if stats.n < MIN_SEEDS_FOR_TEST:
        return "inconclusive", f"{head}; fewer than {MIN_SEEDS_FOR_TEST} seeds, no test"
    from scipy.stats import t as student_t

    t, p_greater, p_less = paired_t_test(diffs, min_margin)
    half = float(student_t.ppf(1 - alpha, stats.n - 1)) * stats.std / math.sqrt(stats.n)
    lower, upper = stats.mean - half, stats.mean + half
    tail = (
        f"; one-sided paired t-test vs margin: t={t:.3g}, p(better by > margin)={p_greater:.3g}, "
        f"p(not)={p_less:.3g}; {1 - alpha:.0%} one-sided bounds of the gain [{lower:.4g}, {upper:.4g}]"
    )
    if lower > min_margin:
        return "reproduced", head + tail
    if upper <= min_margin:
        return "not reproduced", head + tail
    return "inconclusive", head + tail


def _signed(x: float) -> str:
    return f"{x:+.4g}"


def _std(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.4g}"
