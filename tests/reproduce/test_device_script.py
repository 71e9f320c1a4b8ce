"""scripts/device_reproduce.py at a tiny size on the CPU: shards side by side, a deadline that stops them, a second
call that continues them, and one judged results.json that equals a plain run's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from contrastkit.reproduce.validate import results_problems

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "device_reproduce.py"


def _script(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cli = [sys.executable, str(SCRIPT), "--experiments", "directclr-toy", "--seeds", "2", "--workers", "2",
           "--threads", "1", "--quick", "--out", str(out), *extra]  # fmt: skip
    return subprocess.run(cli, capture_output=True, text=True, timeout=600, check=False)


def test_deadline_stops_shards_and_a_second_call_finishes_and_judges(tmp_path: Path) -> None:
    stopped = _script(tmp_path, "--minutes", "0.005")  # 0.3 s: the shards are stopped while they start
    assert stopped.returncode == 3, stopped.stdout + stopped.stderr
    assert "deadline reached" in stopped.stdout and not (tmp_path / "directclr-toy" / "results.json").exists()
    done = _script(tmp_path, "--minutes", "5")
    assert done.returncode == 0, done.stdout + done.stderr
    merged = tmp_path / "directclr-toy" / "results.json"
    assert results_problems(merged, min_seeds=2) == []
    results = json.loads(merged.read_text())
    assert sorted({r["seed"] for r in results["rows"]}) == [0, 1] and len(results["rows"]) == 8
    assert results["quick"] is True and len(results["claims"]) == 3
    # the same rows as a plain run of both seeds (training is seeded; only the timings differ)
    plain = subprocess.run(
        [sys.executable, "-c", "import sys; from contrastkit.cli import main; sys.exit(main())", "reproduce",
         "directclr-toy", "--seeds", "2", "--quick", "--out", str(tmp_path / "plain")],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    assert plain.returncode == 0
    reference = json.loads((tmp_path / "plain" / "results.json").read_text())

    def key(rows: list[dict]) -> list[tuple]:
        return [(r["arm"], r["seed"], r["metrics"]["effective_rank"]) for r in rows]

    assert key(results["rows"]) == key(reference["rows"])
    assert [c["verdict"] for c in results["claims"]] == [c["verdict"] for c in reference["claims"]]


def test_bad_arguments_are_one_line_errors(tmp_path: Path) -> None:
    bad = _script(tmp_path, "--minutes", "0")
    assert bad.returncode == 2 and "--minutes > 0" in bad.stderr
