"""`contrastkit reproduce ariel` / `ariel-csbm`: the arms share everything but the method's switches and the
subgraph size, the claims turn untestable when a gate fails, and a quick run evaluates every arm alike."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch_geometric")

from contrastkit.reproduce import get_experiment  # noqa: E402
from contrastkit.reproduce.arms import arm_config  # noqa: E402
from contrastkit.reproduce.claims import judge  # noqa: E402
from contrastkit.reproduce.experiments import _ariel_claims as claims  # noqa: E402
from contrastkit.reproduce.experiments import _ariel_setup as setup  # noqa: E402
from contrastkit.reproduce.runner import run_experiment  # noqa: E402


@pytest.mark.parametrize("dataset", setup.DATASETS)
def test_arms_share_the_base_and_differ_only_in_the_method(dataset: str) -> None:
    configs = {arm.name: arm_config(f"ariel_{dataset}", arm, seed=3, quick=False) for arm in setup.ARMS[dataset]}

    def shared(cfg: Any) -> dict[str, Any]:
        out = dataclasses.asdict(cfg)
        out.pop("method")
        out["data"].pop("batch_size")
        return out

    base = shared(configs[f"ariel-{dataset}"])
    for name, cfg in configs.items():
        assert shared(cfg) == base, name
    nodes = setup.NODES[dataset]
    grace, sub, ariel = (configs[f"{m}-{dataset}"] for m in ("grace-full", "grace-sub", "ariel"))
    assert grace.method.name == "grace" and grace.data.batch_size == nodes
    assert (sub.method.name, sub.method.eps, sub.method.lamb) == ("ariel", 0.0, 0.0)
    assert sub.data.batch_size == ariel.data.batch_size < nodes
    assert (ariel.method.eps, ariel.method.lamb, ariel.method.attack_variant) == (0.5, 0.0, "current")
    assert configs[f"ariel-reg-{dataset}"].method.lamb == 1.0
    for field in ("temperature", "edge_drop", "feature_mask"):  # the shared GRACE part is identical
        assert getattr(grace.method, field) == getattr(ariel.method, field)
    assert ariel.trainer.max_steps == 500 and ariel.trainer.seed == 3


def _rows(dataset: str, grace_gain: float, ariel_gain: float, pgd_drop: float) -> list[dict[str, Any]]:
    rows = []
    for seed in range(5):
        for arm in setup.ARMS[dataset]:
            method = arm.name.rsplit("-", 1)[0]
            accuracy = {"random-init": 0.70, "raw-features": 0.70, "grace-full": 0.70 + grace_gain}.get(method, 0.72)
            accuracy += ariel_gain if method == "ariel" else 0.0
            metrics = {m.name: 0.0 for m in setup.METRICS}
            drop = (pgd_drop if method == "grace-full" else 0.0) + 0.001 * (seed % 2)
            metrics.update(accuracy=accuracy + 0.001 * seed, drop_pgd20=drop)
            rows.append({"arm": arm.name, "seed": seed, "metrics": metrics})
    return rows


def _verdicts(rows: list[dict[str, Any]]) -> dict[str, str]:
    higher = {m.name: m.higher_is_better for m in setup.METRICS}  # as the runner judges: drops are lower-better
    verdicts = judge(rows, claims.HYPOTHESES["csbm"], claims.GATES["csbm"], higher_is_better=higher)
    return {c.claim: c.verdict for c in verdicts}


def test_a_collapsed_ariel_makes_the_robustness_claims_untestable() -> None:
    collapsed = _rows("csbm", 0.05, 0.0, 0.05)
    for row in collapsed:  # ARIEL at the untrained encoder's accuracy, losing nothing to the attack
        if row["arm"] == "ariel-csbm":
            row["metrics"]["accuracy"] = 0.70 + 0.001 * row["seed"]
    verdicts = _verdicts(collapsed)
    assert verdicts[next(k for k in verdicts if "PGD edge attack (20 %)" in k)] == "untestable"
    assert verdicts[next(k for k in verdicts if k.startswith("ARIEL beats GRACE (whole graph)"))] == "not reproduced"


def test_claims_are_untestable_when_grace_does_not_work_or_the_attack_does_not_bite() -> None:
    broken = _verdicts(_rows("csbm", 0.0, 0.05, 0.05))  # GRACE no better than the untrained encoder
    assert broken[next(k for k in broken if k.startswith("ARIEL beats GRACE (whole graph)"))] == "untestable"
    working = _verdicts(_rows("csbm", 0.05, 0.05, 0.0))  # GRACE works, the attack costs it nothing
    assert working[next(k for k in working if k.startswith("ARIEL beats GRACE (whole graph)"))] == "reproduced"
    assert working[next(k for k in working if "PGD edge attack" in k)] == "untestable"
    robust = _verdicts(_rows("csbm", 0.05, 0.05, 0.05))
    assert robust[next(k for k in robust if "PGD edge attack" in k)] == "reproduced"


def test_quick_run_evaluates_every_arm_and_draws_the_figure(tmp_path: Path) -> None:
    results = run_experiment(get_experiment("ariel-csbm"), seeds=1, quick=True, out=tmp_path, command="test")
    rows = {r["arm"]: r["metrics"] for r in results["rows"]}
    assert set(rows) == {a.name for a in setup.ARMS["csbm"]}
    assert all(0 < m["accuracy"] <= 1 for m in rows.values())
    raw = rows["raw-features-csbm"]
    assert raw["drop_random20"] == raw["drop_pgd20"] == 0.0  # the features do not see the graph
    assert rows["ariel-csbm"]["feature_box_ratio"] > 0 == rows["grace-full-csbm"]["feature_box_ratio"]
    assert (tmp_path / "plots" / "accuracy.png").is_file() and (tmp_path / "report.md").is_file()
