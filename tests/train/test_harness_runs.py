"""The harness end to end: run directory, exact resume after SIGKILL, 2 processes = 1, export round trip."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cli_runs import FAST, ROOT, TINY, cli, final_state, max_diff
from contrastkit.cli import main
from contrastkit.models import load_backbone
from contrastkit.train.checkpoint import backbone_of, load_training_checkpoint


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(["train", TINY, "--out", str(run)]) == 0
    return run


def test_run_directory_has_config_checkpoints_metrics_report_and_plots(trained_run: Path) -> None:
    for name in (
        "config.yaml",
        "checkpoints/last.ckpt",
        "checkpoints/best.ckpt",
        "metrics.csv",
        "results.json",
        "report.md",
        "plots/loss.png",
        "plots/knn_top1.png",
        "plots/spectrum.png",
        "plots/embedding.png",
    ):
        assert (trained_run / name).is_file(), name
    assert any((trained_run / "tb").iterdir())
    report = (trained_run / "report.md").read_text()
    assert "k=20" in report and "![" in report
    checkpoint = load_training_checkpoint(trained_run / "checkpoints" / "last.ckpt")
    assert checkpoint["step"] == 6


def test_evaluate_and_export_round_trip(trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(trained_run), "--protocol", "knn"]) == 0
    assert "knn_top1" in capsys.readouterr().out and (trained_run / "evaluation.json").is_file()
    out = tmp_path / "backbone.pt"
    assert main(["export", str(trained_run), "--out", str(out)]) == 0
    loaded = load_backbone(out)
    reference = backbone_of(load_training_checkpoint(trained_run / "checkpoints" / "last.ckpt"))
    x = torch.rand(5, 1, 8, 8)
    torch.testing.assert_close(loaded(x), reference(x), rtol=0, atol=0)


def test_resume_after_sigkill_mid_epoch_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    steps = ["trainer.max_steps=60", "trainer.checkpoint_every_steps=3", *FAST]  # 42 steps per epoch
    full = tmp_path / "full"
    done = cli("train", TINY, "--out", str(full), "--set", *steps)
    assert done.returncode == 0, done.stderr[-2000:]

    killed = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "contrastkit.cli", "train", TINY, "--out", str(killed), "--set", *steps],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=str(ROOT),
    )
    last = killed / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 180
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # let it run past the checkpoint, into the middle of the next steps
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    interrupted_at = load_training_checkpoint(last)["step"]
    assert 0 < interrupted_at < 60

    resumed = cli("train", TINY, "--out", str(killed), "--resume", "--set", *steps)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert load_training_checkpoint(last)["step"] == 60
    assert max_diff(final_state(full), final_state(killed)) == 0.0


def test_two_processes_train_like_one(tmp_path: Path) -> None:
    """float32, 2 steps (the tiny model's dynamics amplify float32 rounding later on; the float64 equivalence of the
    method and GlobalBatchNorm over many steps is tested in tests/models/test_global_batchnorm.py)."""
    common = ["trainer.max_steps=2", "model.norm=batch", "model.sync_batchnorm=true", *FAST]
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = cli("train", TINY, "--out", str(one), "--set", *common)
    assert r1.returncode == 0, r1.stderr[-2000:]
    r2 = cli("train", TINY, "--out", str(two), "--set", *common, "trainer.devices=2", "trainer.strategy=ddp")
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert "world_size" in (two / "results.json").read_text()
    diff = max_diff(final_state(one), final_state(two))
    assert diff <= 1e-5, diff
    # negative control: without the global batch norm, per-process statistics make the runs differ
    three = tmp_path / "three"
    r3 = cli(
        "train",
        TINY,
        "--out",
        str(three),
        "--set",
        *common[: -len(FAST)],
        "model.sync_batchnorm=false",
        *FAST,
        "trainer.devices=2",
        "trainer.strategy=ddp",
    )
    assert r3.returncode == 0, r3.stderr[-2000:]
    assert max_diff(final_state(one), final_state(three)) > 1e-4
