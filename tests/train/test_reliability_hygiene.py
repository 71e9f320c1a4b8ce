"""Issue 18 item 8: hygiene of faults. ``config.yaml`` goes through the one atomic writer (``contrastkit._io``:
directory fsync, the mode every other file gets), and resuming a finished run logs its final monitor row once."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import cli_runs
from contrastkit import _io
from contrastkit.cli import main
from contrastkit.train.config import dump_config, load_config
from contrastkit.train.metrics_log import read_metrics


def test_dump_config_uses_the_atomic_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[Path] = []
    real_fsync_directory = _io._fsync_directory

    def record(directory: Path) -> None:
        synced.append(Path(directory))
        real_fsync_directory(directory)

    monkeypatch.setattr(_io, "_fsync_directory", record)
    old = os.umask(0o022)
    try:
        dump_config(load_config(cli_runs.TINY), tmp_path / "config.yaml")
        (tmp_path / "other.txt").write_text("x")  # what every other file of a run directory gets
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "config.yaml").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "other.txt").stat().st_mode) == 0o644
    assert synced == [tmp_path], "the rename must be made durable by an fsync of the directory"
    assert load_config(tmp_path / "config.yaml") == load_config(cli_runs.TINY)
    assert not list(tmp_path.glob(".*.tmp"))


def test_dump_config_keeps_the_mode_of_the_file_it_replaces(tmp_path: Path) -> None:
    target = tmp_path / "config.yaml"
    target.write_text("old")
    target.chmod(0o600)
    dump_config(load_config(cli_runs.TINY), target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and target.read_text() != "old"


def test_resuming_a_finished_run_writes_its_final_monitor_row_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    args = ["train", cli_runs.TINY, "--out", str(run), "--set", "trainer.max_steps=3", "optim.name=sgd",
            "monitor.knn_max_train=64", "monitor.online_linear=false", "monitor.effective_rank=false"]  # fmt: skip
    assert main(args) == 0
    assert main([*args, "--resume"]) == 0, capsys.readouterr().err
    monitor_rows = [row["step"] for row in read_metrics(run) if "knn_top1" in row]
    assert monitor_rows == [3]
    assert [row["step"] for row in read_metrics(run) if "loss" in row] == [1, 2, 3]
    assert "kNN top-1" in capsys.readouterr().out.splitlines()[-1], "the resumed run still reports its metrics"
