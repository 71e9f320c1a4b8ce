"""Issue 18 items 3-4: a DDP process that freezes (SIGSTOP) or dies ends the run on the other process with one
line naming it, within ``trainer.collective_timeout`` (two CPU processes over gloo)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cli_runs

DDP = [*cli_runs.FAST, "trainer.devices=2", "trainer.strategy=ddp", "trainer.max_steps=100000",
       "trainer.checkpoint_every_steps=100000", "trainer.collective_timeout=3"]  # fmt: skip


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the second process through /proc")
@pytest.mark.parametrize("fault", [signal.SIGSTOP, signal.SIGKILL])
def test_a_frozen_or_dead_rank_is_named_in_one_line_within_the_timeout(tmp_path: Path, fault: signal.Signals) -> None:
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    log = open(tmp_path / "stderr.txt", "w")  # a file: the frozen process keeps a pipe open  # noqa: SIM115
    rank0 = subprocess.Popen(
        [sys.executable, "-m", "contrastkit.cli", "train", cli_runs.TINY, "--out", str(run), "--set", *DDP],
        cwd=cli_runs.ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True,
    )  # fmt: skip
    rank1: list[int] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and rank0.poll() is None:
            rows = (run / "metrics.csv").read_text().count("\n") if (run / "metrics.csv").exists() else 0
            rank1 = _children(rank0.pid)
            if rows >= 3 and rank1:
                break
            time.sleep(0.1)
        assert rank0.poll() is None and len(rank1) == 1, (tmp_path / "stderr.txt").read_text()[-3000:]
        os.kill(rank1[0], fault)
        frozen_at = time.monotonic()
        rank0.wait(timeout=60)
        waited = time.monotonic() - frozen_at
        time.sleep(0.5)
        state = Path(f"/proc/{rank1[0]}/stat")
        gone = not state.exists() or state.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    finally:
        for pid in rank1:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if rank0.poll() is None:
            rank0.kill()
            rank0.wait()
        log.close()
    err = (tmp_path / "stderr.txt").read_text()
    lines = [line for line in err.splitlines() if line.startswith("contrastkit:")]  # Fabric's banner aside
    assert rank0.returncode == 4, err[-3000:]
    assert len(lines) == 1 and lines[0].startswith("contrastkit: error: rank 1 of 2 stopped answering"), err[-3000:]
    assert "trainer.collective_timeout=3 s" in lines[0] and "Traceback" not in err
    assert waited < 3 + 30, waited
    assert gone, "the frozen process outlived the run"  # rank 0 ends the process that stopped answering
