"""The results.json contract check (`contrastkit validate`): each breach is one line; the CLI exits 0, 1 or 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contrastkit.cli import main
from contrastkit.reproduce.validate import results_problems


def _write(directory: Path, results: object, report: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "results.json").write_text(json.dumps(results))
    if report:
        (directory / "report.md").write_text("# report\n")
    return directory / "results.json"


def _claim(verdict: str, **numbers: object) -> dict:
    base = {"claim": "b beats a", "verdict": verdict, "evidence": "paired over 3 seeds", "primary": True,
            "metric": "acc", "better": "b", "worse": "a", "margin": 0.0, "gates": ["anchor"], "failed_gates": [],
            "n": 3, "mean_difference": 0.0, "std_difference": 0.1, "p": 0.5, "p_reverse": 0.5, "p_holm": 0.5,
            "p_reverse_holm": 0.5, "mde": 0.2}  # fmt: skip
    return base | numbers


def _good() -> dict:
    rows = [{"arm": arm, "setting": {"x": 1}, "seed": s, "metrics": {"acc": 0.5 + s / 10}} for arm in "ab"
            for s in range(3)]  # fmt: skip
    gates = [{"name": "anchor", "description": "a reaches 50 %", "passed": True, "evidence": "a 0.6"}]
    return {"experiment": "toy", "command": "contrastkit reproduce toy", "seconds": 1.5, "alpha": 0.05,
            "rows": rows, "gates": gates, "claims": [_claim("inconclusive")]}  # fmt: skip


def test_a_complete_run_holds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, _good())
    assert results_problems(path) == []
    assert main(["validate", str(path)]) == 0 and "holds" in capsys.readouterr().out


def test_each_breach_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _good()
    bad["seconds"] = "long"
    bad["rows"][0]["metrics"]["acc"] = float("nan")
    bad["rows"][1]["seed"] = True
    bad["rows"].append({"arm": "c", "setting": {}, "seed": 0, "metrics": {"acc": 1.0}})
    bad["claims"][0]["verdict"] = "probably"
    path = _write(tmp_path, bad, report=False)
    found = results_problems(path)
    expected = ["'seconds' missing or not a number", "rows[0].metrics.acc: not a finite number",
                "rows[1]: 'seed' must be an int", "arm 'c' setting {}: 1 seeds, need 3", "claims[0]: verdict",
                "report.md missing"]  # fmt: skip
    for text in expected:
        assert sum(text in line for line in found) == 1, (text, found)
    assert results_problems(path, min_seeds=1) != found  # the seed rule follows min_seeds
    assert main(["validate", str(path)]) == 1
    assert f"{len(found)} problems" in capsys.readouterr().out
    unfinished = _good() | {"claims": []}
    assert results_problems(_write(tmp_path / "u", unfinished)) == [
        "no claims: say what the paper claims and whether it was reproduced"
    ]


def test_unreadable_and_missing_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "results.json").write_text("{not json")
    (line,) = results_problems(tmp_path / "results.json")
    assert line.startswith("cannot read") and "JSONDecodeError" in line
    assert main(["validate", str(tmp_path / "none.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("contrastkit: error: results file not found") and err.count("\n") == 1


def test_a_verdict_must_follow_from_its_numbers_and_gates(tmp_path: Path) -> None:
    def problems(claim: dict, gate_passed: bool = True) -> list[str]:
        results = _good()
        results["gates"][0]["passed"] = gate_passed
        results["claims"] = [claim]
        return results_problems(_write(tmp_path / "v", results))

    assert problems(_claim("reproduced", p_holm=0.01)) == []
    assert problems(_claim("not reproduced", p_reverse_holm=0.001)) == []
    assert problems(_claim("untestable", failed_gates=["anchor"], p=None, p_holm=None), gate_passed=False) == []
    assert problems(_claim("untestable", n=0, gates=[], p=None)) == []  # an arm that did not run
    (line,) = problems(_claim("reproduced", p_holm=0.2))
    assert "'reproduced' needs a Holm-corrected p below alpha" in line
    (line,) = problems(_claim("not reproduced", p_reverse_holm=0.3))
    assert "'not reproduced' needs" in line
    (line,) = problems(_claim("reproduced", p_holm=0.01), gate_passed=False)
    assert "gates ['anchor'] failed, so the verdict must be 'untestable'" in line
    (line,) = problems(_claim("untestable"))
    assert "'untestable' needs a failed gate" in line
    (line,) = problems(_claim("inconclusive", gates=["ghost"]))
    assert "names gates ['ghost']" in line
    found = problems(_claim("inconclusive", primary="yes", margin=None, p=float("inf")) | {"n": 2.5})
    assert len(found) == 4 and all(line.startswith("claims[0]: ") for line in found)
