"""The reproduction runner on a toy experiment: contract, report, verdicts, crash safety, registry, statistics."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from contrastkit.cli import main
from contrastkit.reproduce import (
    Arm,
    Claim,
    Experiment,
    Hypothesis,
    Metric,
    get_experiment,
    list_experiments,
    mean_std,
    merge_runs,
    paired_differences,
    register_experiment,
    rerun_command,
    run_experiment,
    unregister_experiment,
)
from contrastkit.reproduce.validate import results_problems

EFFECT = {"a": 0.0, "b": 1.0, "null": 0.0, "worse": -1.0}


def _toy_run(arm: Arm, seed: int, quick: bool) -> dict[str, float]:
    """Score = seed-level noise shared by all arms (sd 1) + the arm's effect + arm-specific noise (sd 0.05)."""
    shared = np.random.default_rng(seed).normal()
    own = np.random.default_rng([seed, list(EFFECT).index(arm.name)]).normal(scale=0.05)
    score = 10.0 + shared + arm.setting["effect"] + (0.0 if arm.name == "a" else own)
    return {"score": float(score), "seconds": 0.01}


TOY_HYPOTHESES = [Hypothesis(f"{arm} beats a on score", "score", arm, "a") for arm in ("b", "null", "worse")] + [
    Hypothesis("b beats a by more than 5 points", "score", "b", "a", margin=5.0)
]


def _toy(name: str = "toy_effect", run=_toy_run) -> Experiment:
    return Experiment(
        name=name,
        description="Toy: arm b = a + 1, null = a, worse = a - 1, plus small per-arm noise.",
        arms=[Arm(n, {"effect": e}) for n, e in EFFECT.items()],
        metrics=[Metric("score", "toy score: 10 + seed noise + arm effect")],
        run=run,
        hypotheses=TOY_HYPOTHESES,
        primary_metric="score",
    )


def test_run_writes_contract_report_and_verdicts(tmp_path: Path) -> None:
    results = run_experiment(_toy(), seeds=3, out=tmp_path, command="contrastkit reproduce toy_effect --seeds 3")
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk == results
    assert set(on_disk) == {"experiment", "command", "commands", "quick", "seconds", "alpha", "rows", "gates", "claims"}
    assert on_disk["quick"] is False
    assert [(r["arm"], r["seed"]) for r in on_disk["rows"][:5]] == [
        ("a", 0),
        ("b", 0),
        ("null", 0),
        ("worse", 0),
        ("a", 1),
    ]
    assert on_disk["rows"][1]["setting"] == {"effect": 1.0}
    assert results_problems(tmp_path / "results.json") == []
    verdicts = {c["claim"]: c["verdict"] for c in on_disk["claims"]}
    assert verdicts["b beats a on score"] == "reproduced"
    assert verdicts["null beats a on score"] in ("not reproduced", "inconclusive")
    assert verdicts["worse beats a on score"] == "not reproduced"
    assert verdicts["b beats a by more than 5 points"] == "not reproduced"

    report = (tmp_path / "report.md").read_text()
    b_scores = [r["metrics"]["score"] for r in on_disk["rows"] if r["arm"] == "b"]
    stats = mean_std(b_scores)
    assert f"| b | {stats.mean:.4g} ± {stats.std:.4g} | 3 |" in report
    diffs = list(paired_differences(on_disk["rows"], "score", "b", "a").values())
    d = mean_std(diffs)
    assert f"| b − a | {d.mean:+.4g} ± {d.std:.4g} | 3 | 3/3 seeds higher |" in report
    assert "| worse − a |" in report and "0/3 seeds higher" in report
    assert "**reproduced**" in report and "## Verdict rule" in report
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report):
        assert (tmp_path / link).read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "plots" / "score.png").exists() and (tmp_path / "plots" / "seconds.png").exists()


def test_crash_keeps_finished_rows_and_propagates(tmp_path: Path) -> None:
    def flaky(arm: Arm, seed: int, quick: bool) -> dict[str, float]:
        if seed == 2 and arm.name == "b":
            raise RuntimeError("out of memory")
        return _toy_run(arm, seed, quick)

    with pytest.raises(RuntimeError, match="out of memory"):
        run_experiment(_toy("toy_flaky", flaky), seeds=3, out=tmp_path, command="cmd")
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [(r["arm"], r["seed"]) for r in saved["rows"]] == [(a, s) for s in (0, 1) for a in EFFECT] + [("a", 2)]
    assert saved["claims"] == [] and saved["seconds"] > 0
    assert "Run incomplete: RuntimeError at arm 'b' seed 2: out of memory" in (tmp_path / "report.md").read_text()


def test_resume_runs_only_the_missing_rows_and_gives_the_same_results(tmp_path: Path) -> None:
    calls: list[tuple[str, int]] = []

    def flaky(arm: Arm, seed: int, quick: bool) -> dict[str, float]:
        if seed == 1 and arm.name == "null" and not calls:
            raise RuntimeError("killed")
        return _toy_run(arm, seed, quick)

    def counted(arm: Arm, seed: int, quick: bool) -> dict[str, float]:
        calls.append((arm.name, seed))
        return _toy_run(arm, seed, quick)

    with pytest.raises(RuntimeError, match="killed"):
        run_experiment(_toy("toy_resume", flaky), seeds=3, out=tmp_path / "r", command="cmd")
    first = json.loads((tmp_path / "r" / "results.json").read_text())
    resumed = run_experiment(_toy("toy_resume", counted), seeds=3, out=tmp_path / "r", command="cmd", resume=True)
    assert calls == [("null", 1), ("worse", 1)] + [(a, 2) for a in EFFECT]  # only the missing rows ran
    fresh = run_experiment(_toy("toy_resume", _toy_run), seeds=3, out=tmp_path / "fresh", command="cmd")
    key = [(r["arm"], r["seed"], r["metrics"]["score"]) for r in fresh["rows"]]
    assert [(r["arm"], r["seed"], r["metrics"]["score"]) for r in resumed["rows"]] == key  # same rows, run order
    assert resumed["claims"] == fresh["claims"] and resumed["seconds"] >= first["seconds"]
    assert main(["validate", str(tmp_path / "r" / "results.json")]) == 0
    # fewer seeds keep only those rows; a changed setting reruns the arm; another experiment's file is refused
    calls.clear()
    fewer = run_experiment(_toy("toy_resume", counted), seeds=2, out=tmp_path / "r", command="cmd", resume=True)
    assert calls == [] and len(fewer["rows"]) == 2 * len(EFFECT)
    toy = _toy("toy_resume", counted)
    changed = replace(toy, arms=[Arm(a.name, {**a.setting, "v": 2}) if a.name == "b" else a for a in toy.arms])
    run_experiment(changed, seeds=2, out=tmp_path / "r", command="cmd", resume=True)
    assert calls == [("b", 0), ("b", 1)]
    with pytest.raises(ValueError, match="holds experiment 'toy_resume'"):
        run_experiment(_toy("toy_other", _toy_run), seeds=1, out=tmp_path / "r", command="cmd", resume=True)
    with pytest.raises(ValueError, match="is a full run and this one is quick"):
        run_experiment(_toy("toy_resume", counted), seeds=2, quick=True, out=tmp_path / "r", command="cmd",
                       resume=True)  # fmt: skip
    with pytest.raises(ValueError, match="a --quick run never replaces it"):
        run_experiment(_toy("toy_resume", _toy_run), seeds=1, quick=True, out=tmp_path / "r", command="cmd")
    quick = run_experiment(_toy("toy_resume", _toy_run), seeds=1, quick=True, out=tmp_path / "q", command="cmd")
    assert quick["quick"] is True
    with pytest.raises(ValueError, match="different budgets"):
        merge_runs(tmp_path / "r", [tmp_path / "q"])


def test_merged_shards_equal_one_run(tmp_path: Path) -> None:
    toy = _toy("toy_shards", _toy_run)
    shard_a = replace(toy, arms=toy.arms[:2], hypotheses=[Hypothesis("b beats a", "score", "b", "a")])
    shard_b = replace(toy, arms=toy.arms[2:], hypotheses=[Hypothesis("null beats worse", "score", "null", "worse")])
    run_experiment(shard_a, seeds=3, out=tmp_path / "a", command="cmd --arms a b")
    run_experiment(shard_b, seeds=3, out=tmp_path / "b", command="cmd --arms null worse")
    (tmp_path / "b" / "artifacts").mkdir(exist_ok=True)
    (tmp_path / "b" / "artifacts" / "x.json").write_text("{}")
    assert merge_runs(tmp_path / "a", [tmp_path / "b"]) == 3 * 2
    assert (tmp_path / "a" / "artifacts" / "x.json").is_file()
    merged = run_experiment(toy, seeds=3, out=tmp_path / "a", command="cmd", resume=True)
    assert merged["commands"] == ["cmd --arms a b", "cmd --arms null worse", "cmd"]  # every command with rows here
    assert "rows made by: `cmd --arms null worse`" in (tmp_path / "a" / "report.md").read_text()
    whole = run_experiment(toy, seeds=3, out=tmp_path / "whole", command="cmd")
    assert merged["rows"] == whole["rows"] and merged["claims"] == whole["claims"]
    before = (tmp_path / "a" / "results.json").read_bytes()
    with pytest.raises(ValueError, match="in both"):
        merge_runs(tmp_path / "a", [tmp_path / "b"])
    # a refused merge changes nothing: the clash in the second source stops the copy of the first one's artifacts
    run_experiment(shard_b, seeds=1, out=tmp_path / "c", command="cmd")
    (tmp_path / "c" / "artifacts").mkdir(exist_ok=True)
    (tmp_path / "c" / "artifacts" / "y.json").write_text("{}")
    rows = json.loads((tmp_path / "c" / "results.json").read_text())
    rows["rows"] = [{**r, "seed": 7} for r in rows["rows"]]
    (tmp_path / "c" / "results.json").write_text(json.dumps(rows))
    with pytest.raises(ValueError, match="in both"):
        merge_runs(tmp_path / "a", [tmp_path / "c", tmp_path / "b"])
    assert (tmp_path / "a" / "results.json").read_bytes() == before
    assert not (tmp_path / "a" / "artifacts" / "y.json").exists()
    with pytest.raises(ValueError, match="cannot read the run in"):
        merge_runs(tmp_path / "a", [tmp_path / "missing"])
    assert merge_runs(tmp_path / "new", [tmp_path / "b"]) == 3 * 2  # into an empty folder
    assert json.loads((tmp_path / "new" / "results.json").read_text())["experiment"] == "toy_shards"


def test_rerun_command_drops_only_how_the_run_was_continued() -> None:
    argv = ["--arms", "*-ipc1", "--resume", "--merge", "a", "b c", "--seeds", "3", "--merge=d", "--out", "x"]
    assert rerun_command("python -m m", argv) == "python -m m --arms '*-ipc1' --seeds 3 --out x"
    assert rerun_command("contrastkit", ["reproduce", "dcc"]) == "contrastkit reproduce dcc"


def test_non_finite_or_missing_metric_is_rejected(tmp_path: Path) -> None:
    def diverged(arm: Arm, seed: int, quick: bool) -> dict[str, float]:
        return {"score": math.nan}

    with pytest.raises(ValueError, match="must be finite numbers"):
        run_experiment(_toy("toy_nan", diverged), seeds=1, out=tmp_path, command="cmd")
    with pytest.raises(ValueError, match="declared metrics \\['score'\\]"):
        run_experiment(
            _toy("toy_missing", lambda arm, seed, quick: {"other": 1.0}), seeds=1, out=tmp_path, command="cmd"
        )


def test_registry_lookup_and_errors() -> None:
    experiment = register_experiment(_toy("toy_registered"))
    try:
        assert get_experiment("toy_registered") is experiment
        assert "toy_registered" in list_experiments()
        with pytest.raises(ValueError, match="unknown experiment 'nope'; registered: .*toy_registered"):
            get_experiment("nope")
        with pytest.raises(ValueError, match="already registered"):
            register_experiment(_toy("toy_registered"))
    finally:
        unregister_experiment("toy_registered")
    with pytest.raises(ValueError, match="primary_metric"):
        Experiment("x", "", [Arm("a")], [Metric("m", "p")], _toy_run, TOY_HYPOTHESES, primary_metric="other")
    with pytest.raises(ValueError, match="unique arm names"):
        Experiment("x", "", [Arm("a"), Arm("a")], [Metric("m", "p")], _toy_run, TOY_HYPOTHESES, primary_metric="m")
    with pytest.raises(ValueError, match="names undeclared \\['ghost'\\]"):
        Experiment("x", "", [Arm("a"), Arm("b")], [Metric("m", "p")], _toy_run,
                   [Hypothesis("b beats ghost", "m", "b", "ghost")], primary_metric="m")  # fmt: skip
    with pytest.raises(ValueError, match="names undeclared \\['anchor'\\]"):
        Experiment("x", "", [Arm("a"), Arm("b")], [Metric("m", "p")], _toy_run,
                   [Hypothesis("b beats a", "m", "b", "a", gates=("anchor",))], primary_metric="m")  # fmt: skip
    with pytest.raises(ValueError, match="non-empty list of Hypothesis"):
        Experiment("x", "", [Arm("a"), Arm("b")], [Metric("m", "p")], _toy_run, [], primary_metric="m")
    with pytest.raises(ValueError, match="verdict must be one of"):
        Claim("c", "probably", "e")
