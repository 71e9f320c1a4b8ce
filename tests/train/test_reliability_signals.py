"""Issue 18 item 7: SIGTERM / SIGINT finish the step, save ``last.ckpt`` and the report, print one line and exit
with 143 / 130; nothing is lost and the run resumes from the saved step."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cli_runs
from contrastkit.train.checkpoint import load_training_checkpoint
from contrastkit.train.run_lock import LOCK_FILE

LONG = [*cli_runs.FAST, "schedule.name=constant", "trainer.max_steps=100000", "trainer.checkpoint_every_steps=100000"]


def _logged_steps(run: Path) -> list[int]:
    try:
        with open(run / "metrics.csv", newline="") as f:
            return [int(float(row["step"])) for row in csv.DictReader(f) if row.get("step")]
    except (FileNotFoundError, KeyError, ValueError):
        return []


def _interrupt(run: Path, signum: int, after_steps: int = 3, extra: tuple[str, ...] = ()) -> tuple[int, str]:
    """Start a long tiny run, send ``signum`` once ``after_steps`` rows are logged; its exit code and stderr."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(
        [sys.executable, "-m", "contrastkit.cli", "train", cli_runs.TINY, "--out", str(run), "--set", *LONG, *extra],
        cwd=cli_runs.ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(_logged_steps(run)) < after_steps and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.05)
        child.send_signal(signum)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return child.returncode, err.strip()


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_saves_the_step_and_exits_with_128_plus_its_number(
    tmp_path: Path, signum: signal.Signals, code: int
) -> None:
    run = tmp_path / "run"
    returncode, err = _interrupt(run, signum)
    assert returncode == code, err[-3000:]
    assert "\n" not in err and err.startswith(f"contrastkit: stopped by {signum.name} after step "), err
    steps = int(err.split("after step ")[1].split(":")[0])
    assert load_training_checkpoint(run / "checkpoints" / "last.ckpt")["step"] == steps >= 3
    assert max(_logged_steps(run)) == steps  # every finished step is logged, none beyond the checkpoint
    results = json.loads((run / "results.json").read_text())
    assert results["steps"] == steps and results["stopped_by"] == signum.name
    assert (run / "report.md").is_file() and not (run / LOCK_FILE).exists()
    assert not list((run / "checkpoints").glob(".*.tmp"))
    if signum == signal.SIGINT:  # the saved step continues
        resumed = cli_runs.cli("train", cli_runs.TINY, "--out", str(run), "--resume", "--set", *LONG[:-2],
                               f"trainer.max_steps={steps + 1}", "trainer.checkpoint_every_steps=100000")  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert load_training_checkpoint(run / "checkpoints" / "last.ckpt")["step"] == steps + 1


def test_sigterm_to_the_launching_ddp_process_stops_both_at_the_same_step(tmp_path: Path) -> None:
    run = tmp_path / "run"
    returncode, err = _interrupt(run, signal.SIGTERM, extra=("trainer.devices=2", "trainer.strategy=ddp"))
    lines = [line for line in err.splitlines() if line.startswith("contrastkit:")]  # Fabric's banner aside
    assert returncode == 143 and len(lines) == 1 and "Traceback" not in err, err[-3000:]
    steps = int(lines[0].split("after step ")[1].split(":")[0])
    assert load_training_checkpoint(run / "checkpoints" / "last.ckpt")["step"] == steps >= 3
    assert json.loads((run / "results.json").read_text())["stopped_by"] == "SIGTERM"
