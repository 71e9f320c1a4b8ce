"""Issue 18 item 5: one process per run directory; a second is refused in one line, a dead owner's lock is stale."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cli_runs
from contrastkit.errors import RunLockedError
from contrastkit.train.run_lock import LOCK_FILE, RunLock


def test_a_second_lock_in_another_process_is_refused_and_a_dead_owners_lock_is_taken_over(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from contrastkit.train.run_lock import RunLock;"
         "RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLockedError, match=rf"in use by pid {holder.pid} on host {socket.gethostname()}"):
            RunLock(tmp_path).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == holder.pid  # left behind by SIGKILL
    with RunLock(tmp_path) as lock:
        assert lock.stale is not None and lock.stale["pid"] == holder.pid
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert not (tmp_path / LOCK_FILE).exists()


def test_without_flock_a_live_pid_holds_and_a_dead_pid_is_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(RunLock, "_try_flock", lambda self: None)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock_file = tmp_path / LOCK_FILE
    lock_file.write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    with RunLock(tmp_path) as lock:
        assert lock.stale is not None
    lock_file.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    with pytest.raises(RunLockedError, match=f"pid {os.getppid()}"):
        RunLock(tmp_path).acquire()
    lock_file.write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    with pytest.raises(RunLockedError, match="on host elsewhere.*delete"):
        RunLock(tmp_path).acquire()


def test_two_train_processes_on_one_run_directory(tmp_path: Path) -> None:
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(
        [sys.executable, "-m", "contrastkit.cli", "train", cli_runs.TINY, "--out", str(run), "--set", *cli_runs.FAST,
         "trainer.max_steps=100000", "trainer.checkpoint_every_steps=100000"],
        cwd=cli_runs.ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (run / "metrics.csv").exists() and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.2)
        assert first.poll() is None, first.stderr.read() if first.stderr else ""
        second = cli_runs.cli("train", cli_runs.TINY, "--out", str(run), "--set", *cli_runs.FAST, timeout=60)
        err = second.stderr.strip()
        assert second.returncode == 2, err
        assert err.startswith("contrastkit: error: run directory") and "\n" not in err
        assert f"in use by pid {first.pid} on host" in err
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert (run / LOCK_FILE).exists()  # SIGKILL leaves it; the next run takes it over as stale
    third = cli_runs.cli("train", cli_runs.TINY, "--out", str(run), "--set", *cli_runs.FAST, "trainer.max_steps=1")
    assert third.returncode == 0, third.stderr[-2000:]
    assert not (run / LOCK_FILE).exists()
