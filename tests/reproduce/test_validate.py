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


def _good() -> dict:
    rows = [{"arm": arm, "setting": {"x": 1}, "seed": s, "metrics": {"acc": 0.5 + s / 10}} for arm in "ab"
            for s in range(3)]  # fmt: skip
    claims = [{"claim": "b beats a", "verdict": "inconclusive", "evidence": "paired over 3 seeds"}]
    return {"experiment": "toy", "command": "contrastkit reproduce toy", "seconds": 1.5, "rows": rows, "claims": claims}


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
