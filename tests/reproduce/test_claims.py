"""The verdict rule: gates (passing and failing), margins, Holm's correction by hand, the tie rule, power, families."""

from __future__ import annotations

import math

import numpy as np
import pytest

from contrastkit.reproduce.claims import Hypothesis, judge
from contrastkit.reproduce.gates import any_arm_at_least, any_arm_at_most, check_gates, mean_at_least, mean_at_most
from contrastkit.reproduce.stats import holm_adjust, mean_std, minimal_detectable_effect, paired_t_test


def _rows(values: dict[str, list[float]], metric: str = "m") -> list[dict]:
    return [{"arm": arm, "setting": {}, "seed": s, "metrics": {metric: v}} for arm, vs in values.items()
            for s, v in enumerate(vs)]  # fmt: skip


def test_holm_matches_a_hand_computation() -> None:
    # sorted: 0.01 (x4 -> 0.04), 0.02 (x3 -> 0.06), 0.03 (x2 -> 0.06), 0.20 (x1 -> 0.20); running max keeps order
    assert holm_adjust([0.03, 0.01, 0.20, 0.02]) == pytest.approx([0.06, 0.04, 0.20, 0.06], abs=1e-15)
    # a large early p carries forward: 0.04 x3 = 0.12, then 0.045 x2 = 0.09 -> max(0.12, 0.09) = 0.12; cap at 1
    assert holm_adjust([0.045, 0.04, 0.9]) == pytest.approx([0.12, 0.12, 0.9], abs=1e-15)
    assert holm_adjust([0.6, 0.7]) == [1.0, 1.0] and holm_adjust([]) == []
    with pytest.raises(ValueError, match="must lie in"):
        holm_adjust([1.5])


def test_paired_t_test_matches_scipy() -> None:
    from scipy.stats import ttest_rel

    a, b = [1.0, 2.0, 3.5, 2.2], [1.4, 2.3, 3.6, 3.0]
    t, p_greater, p_less = paired_t_test([y - x for x, y in zip(a, b, strict=True)])
    assert math.isclose(t, ttest_rel(b, a, alternative="greater").statistic, rel_tol=1e-12)
    assert math.isclose(p_greater, ttest_rel(b, a, alternative="greater").pvalue, rel_tol=1e-10)
    assert math.isclose(p_less, ttest_rel(b, a, alternative="less").pvalue, rel_tol=1e-10)
    assert math.isclose(mean_std(a).std, float(np.std(a, ddof=1)), rel_tol=1e-12) and math.isnan(mean_std([1.0]).std)


def test_minimal_detectable_effect_gives_the_promised_power() -> None:
    from scipy.stats import t as student_t

    n, std, alpha = 5, 0.8, 0.05
    mde = minimal_detectable_effect(std, n, alpha)
    expected = (student_t.ppf(1 - alpha, n - 1) + student_t.ppf(0.8, n - 1)) * std / math.sqrt(n)
    assert math.isclose(mde, expected, rel_tol=1e-12) and minimal_detectable_effect(0.0, n, alpha) == 0.0
    # Simulated: a true gain of mde is detected in roughly 80 % of experiments (the approximation errs a little low)
    rng = np.random.default_rng(0)
    crit = student_t.ppf(1 - alpha, n - 1)
    draws = rng.normal(mde, std, size=(20_000, n))
    t = draws.mean(1) / (draws.std(1, ddof=1) / math.sqrt(n))
    assert 0.70 < float(np.mean(t > crit)) < 0.85
    # With 3 seeds the same std needs a much larger gain than with 10
    assert minimal_detectable_effect(std, 3, alpha) > 2 * minimal_detectable_effect(std, 10, alpha)


def test_gates_pass_fail_and_not_run() -> None:
    rows = _rows({"dc": [0.90, 0.89, 0.91], "dcc": [0.85, 0.86, 0.84]}, "acc")
    outcomes = check_gates(rows, [
        mean_at_least("anchor", "dc", "acc", 0.88, "DC reaches its anchor"),
        mean_at_least("both", "dc*", "acc", 0.88, "every DC arm reaches 88 %"),
        any_arm_at_least("some", "dc*", "acc", 0.88, "some arm reaches 88 %"),
        mean_at_most("ceiling", "dcc", "acc", 0.80, "DCC stays below 80 %"),
        any_arm_at_most("low", "*", "acc", 0.85, "some arm at most 85 %"),
        mean_at_least("ghost", "random", "acc", 0.1, "random reaches 10 %"),
    ])  # fmt: skip
    passed = {o.name: o.passed for o in outcomes}
    assert passed == {"anchor": True, "both": False, "some": True, "ceiling": False, "low": True, "ghost": False}
    assert "dc 0.9 (n=3)" in outcomes[0].evidence and outcomes[-1].evidence.startswith("not run")


def test_a_failed_gate_makes_its_claims_untestable_and_leaves_the_others() -> None:
    rows = _rows({"dc": [0.80, 0.81, 0.79], "dcc": [0.90, 0.91, 0.92], "random": [0.5, 0.52, 0.51]}, "acc")
    gates = [mean_at_least("dc_anchor", "dc", "acc", 0.88, "DC reaches its published anchor")]
    hypotheses = [
        Hypothesis("DCC beats DC", "acc", "dcc", "dc", margin=0.01, gates=("dc_anchor",)),
        Hypothesis("DC beats random", "acc", "dc", "random", margin=0.1),
    ]
    gated, free = judge(rows, hypotheses, gates)
    assert gated.verdict == "untestable" and gated.failed_gates == ("dc_anchor",) and gated.p is None
    assert "gate dc_anchor failed" in gated.evidence and "0.8" in gated.evidence
    assert free.verdict == "reproduced"
    # the same rows with DC at its anchor: the DCC claim is tested (and reproduced: +0.02..0.03 > 0.01)
    rows = _rows({"dc": [0.88, 0.885, 0.89], "dcc": [0.91, 0.912, 0.915], "random": [0.5, 0.52, 0.51]}, "acc")
    assert judge(rows, hypotheses, gates)[0].verdict == "reproduced"
    with pytest.raises(ValueError, match="undeclared gates"):
        judge(rows, [Hypothesis("x", "acc", "dcc", "dc", gates=("nope",))], gates)


def test_an_arm_that_did_not_run_is_untestable() -> None:
    (claim,) = judge(_rows({"a": [1.0, 2.0, 3.0]}), [Hypothesis("b beats a", "m", "b", "a")])
    assert claim.verdict == "untestable" and "not run" in claim.evidence and claim.n == 0


def test_tie_rule_and_too_few_seeds() -> None:
    h = [Hypothesis("same beats base by 0.5", "m", "same", "base", margin=0.5)]
    (tie,) = judge(_rows({"base": [1.0, 2.0, 3.0], "same": [1.0, 2.0, 3.0]}), h)
    assert tie.verdict == "inconclusive" and "tie" in tie.evidence and tie.p is None
    # the same null, but with seed noise: now the data rule out a gain of 0.5
    (null,) = judge(_rows({"base": [1.0, 2.0, 3.0], "same": [1.01, 1.99, 3.0]}), h)
    assert null.verdict == "not reproduced" and null.p_reverse_holm < 0.05
    (few,) = judge(_rows({"base": [1.0, 2.0], "same": [2.0, 3.1]}), h)
    assert few.verdict == "inconclusive" and "fewer than 3 seeds" in few.evidence


def test_margin_direction_and_non_inferiority() -> None:
    rows = _rows({"base": [0.20, 0.30, 0.25], "new": [0.10, 0.16, 0.12]})
    lower = {"m": False}
    assert judge(rows, [Hypothesis("new lowers the error", "m", "new", "base")], higher_is_better=lower)[0].verdict \
        == "reproduced"  # fmt: skip
    assert judge(rows, [Hypothesis("new raises m", "m", "new", "base")])[0].verdict == "not reproduced"
    # gain 0.11..0.14 is below a margin of 0.5: not reproduced; a margin of 0.05 is passed
    assert judge(rows, [Hypothesis("big", "m", "new", "base", 0.5)], higher_is_better=lower)[0].verdict \
        == "not reproduced"  # fmt: skip
    # non-inferiority: "random is no worse than dc by more than 0.05" with random 0.01 below dc on every seed
    rows = _rows({"dc": [0.40, 0.42, 0.41], "random": [0.39, 0.405, 0.40]})
    (claim,) = judge(rows, [Hypothesis("random no worse than dc by 0.05", "m", "random", "dc", margin=-0.05)])
    assert claim.verdict == "reproduced" and claim.mean_difference == pytest.approx(-0.0117, abs=1e-3)


def test_holm_is_applied_within_each_family_and_changes_a_verdict() -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(0, 1, 5)
    # a modest effect (raw p a little below 0.05) and four pure-noise comparisons in the same family
    values = {"base": list(base), "modest": list(base + 0.3 + np.array([0.35, -0.25, 0.25, -0.2, -0.15]))}
    values.update({f"noise{i}": list(base + rng.normal(0, 0.3, 5)) for i in range(4)})
    rows = _rows(values)
    modest = Hypothesis("modest beats base", "m", "modest", "base")
    noise = [Hypothesis(f"noise{i} beats base", "m", f"noise{i}", "base") for i in range(4)]
    (alone,) = judge(rows, [modest])
    assert alone.p < 0.05 and alone.verdict == "reproduced" and alone.p_holm == alone.p
    crowded = judge(rows, [modest, *noise])
    assert crowded[0].p == alone.p and crowded[0].p_holm > 0.05 and crowded[0].verdict == "inconclusive"
    expected = holm_adjust([c.p for c in crowded])
    assert [c.p_holm for c in crowded] == pytest.approx(expected)
    # exploratory claims form their own family: the primary claim keeps its uncorrected p
    separate = judge(rows, [modest] + [Hypothesis(h.claim, h.metric, h.better, h.worse, primary=False) for h in noise])
    assert separate[0].p_holm == alone.p and separate[0].verdict == "reproduced"
    assert separate[0].mde < crowded[0].mde  # one test at alpha, not five at alpha/5
