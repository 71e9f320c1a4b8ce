"""Issue 18 item 9: divergence. The last K checkpoints are kept (``trainer.keep_checkpoints``), a loss that stays
above a multiple of its running median stops the run (``trainer.loss_explosion_factor`` / ``_steps``), and the
checkpoint the error names was saved before the loss rose."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

import cli_runs
from contrastkit._io import atomic_link, atomic_write_bytes
from contrastkit.cli import main
from contrastkit.train.checkpoint import keep_newest_checkpoints, load_training_checkpoint, step_checkpoints
from contrastkit.train.divergence import LossExplosionGuard

# ------------------------------------------------------------------------------------------------ the guard


def test_guard_threshold_is_factor_times_the_median_of_the_recorded_losses() -> None:
    guard = LossExplosionGuard(factor=3.0, steps=4)
    for step, loss in enumerate([1.0, 5.0, 2.0], start=1):
        assert not guard.is_above(1e9), "armed before min(window, steps) losses were recorded"
        guard.record(step, loss, guard.is_above(loss))
    guard.record(4, 4.0, guard.is_above(4.0))  # median of [1, 5, 2, 4] = 3
    assert guard.threshold() == pytest.approx(9.0)
    assert guard.is_above(9.01) and not guard.is_above(8.99) and guard.is_above(math.nan)


def test_guard_handles_a_negative_loss() -> None:
    guard = LossExplosionGuard(factor=2.0, steps=1)
    guard.record(1, -0.8, False)  # SimSiam-like: -cos; threshold m + (f - 1)|m| = -0.8 + 0.8 = 0
    assert guard.threshold() == pytest.approx(0.0)
    assert guard.is_above(0.1) and not guard.is_above(-0.1)


def test_guard_fires_after_steps_in_a_row_and_a_normal_loss_resets_the_streak() -> None:
    guard = LossExplosionGuard(factor=2.0, steps=3)
    for step in range(1, 4):
        assert not guard.record(step, 1.0, False)
    assert not guard.record(4, 50.0, True) and not guard.record(5, 50.0, True)
    assert not guard.record(6, 1.0, False) and guard.streak == 0  # the streak is broken
    assert list(guard.history) == [1.0, 1.0, 1.0, 1.0], "a loss above the threshold must not enter the median"
    assert [guard.record(s, 50.0, True) for s in (7, 8, 9)] == [False, False, True]
    assert guard.streak_start == 7 and "steps 7 to 9" in guard.describe(9)


def test_guard_state_round_trips_through_a_weights_only_checkpoint(tmp_path: Path) -> None:
    guard = LossExplosionGuard(factor=2.0, steps=2)
    for step, loss in enumerate([3.0, 1.0, 2.0], start=1):
        guard.record(step, loss, False)
    guard.record(4, 40.0, True)
    torch.save(guard.state_dict(), tmp_path / "g.pt")
    again = LossExplosionGuard(factor=2.0, steps=2)
    again.load_state_dict(torch.load(tmp_path / "g.pt", weights_only=True))
    assert list(again.history) == [3.0, 1.0, 2.0] and again.streak == 1 and again.streak_start == 4
    assert again.record(5, 40.0, True), "the restored streak continues"


# ------------------------------------------------------------------------------------------- keep K newest


def _save(last: Path, step: int, keep: int) -> list[Path]:
    atomic_write_bytes(last, f"state of step {step}".encode())
    return keep_newest_checkpoints(last, step, keep)


def test_the_newest_k_saves_are_kept_by_step_beside_last(tmp_path: Path) -> None:
    last = tmp_path / "last.ckpt"
    for step in range(1, 6):
        kept = _save(last, step, keep=3)
    assert [p.name for p in kept] == ["step-00000003.ckpt", "step-00000004.ckpt", "step-00000005.ckpt"]
    assert sorted(step_checkpoints(tmp_path)) == [3, 4, 5]
    for step in (3, 4, 5):  # each kept file still holds its own step, although last.ckpt was replaced since
        assert (tmp_path / f"step-{step:08d}.ckpt").read_bytes() == f"state of step {step}".encode()
    assert last.read_bytes() == b"state of step 5"
    assert not list(tmp_path.glob(".*.tmp"))


def test_saves_after_resuming_from_an_earlier_checkpoint_drop_the_abandoned_later_ones(tmp_path: Path) -> None:
    last = tmp_path / "last.ckpt"
    for step in range(1, 6):
        _save(last, step, keep=4)
    assert sorted(step_checkpoints(tmp_path)) == [2, 3, 4, 5]
    _save(last, 3, keep=4)  # last.ckpt was replaced by step-2's copy and the run resumed: its next save is step 3
    assert sorted(step_checkpoints(tmp_path)) == [2, 3]
    _save(last, 4, keep=4)
    assert sorted(step_checkpoints(tmp_path)) == [2, 3, 4]


def test_keep_one_writes_only_last(tmp_path: Path) -> None:
    assert _save(tmp_path / "last.ckpt", 7, keep=1) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_atomic_link_copies_where_links_are_not_supported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = atomic_write_bytes(tmp_path / "last.ckpt", b"weights")
    os.chmod(source, 0o640)

    def no_links(src: object, dst: object) -> None:
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    target = atomic_link(source, tmp_path / "step-00000001.ckpt")
    assert target.read_bytes() == b"weights" and os.stat(target).st_ino != os.stat(source).st_ino
    assert os.stat(target).st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt", "step-00000001.ckpt"]


# ------------------------------------------------------------------------------ the guard in a training run

NORMAL_STEPS = 5  # the loss the guard sees is multiplied by 101 from step 6 on (the gradients are unchanged)


@pytest.fixture
def exploding_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    from contrastkit.train.monitors import TrainModule

    original = TrainModule.training_step
    calls = {"n": 0}

    def training_step(self: TrainModule, batch: object) -> dict[str, torch.Tensor]:
        out = original(self, batch)
        calls["n"] += 1
        if calls["n"] > NORMAL_STEPS:
            out["loss"] = out["loss"] * 101  # the objective ("total") keeps its value: only the guard sees this
        return out

    monkeypatch.setattr(TrainModule, "training_step", training_step)


def test_an_exploding_loss_stops_with_exit_3_and_names_a_checkpoint_from_before_it(
    tmp_path: Path, exploding_loss: None, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "explodes"
    guard = ["trainer.loss_explosion_factor=10", "trainer.loss_explosion_steps=3", "trainer.keep_checkpoints=3"]
    settings = [*cli_runs.FAST, "trainer.max_steps=20", "trainer.checkpoint_every_steps=1", *guard]
    code = main(["train", cli_runs.TINY, "--out", str(run), "--set", *settings])
    err = capsys.readouterr().err.strip()
    assert code == 3, err
    assert "\n" not in err and "Traceback" not in err
    assert f"steps {NORMAL_STEPS + 1} to {NORMAL_STEPS + 3}" in err and "10 x its running median" in err
    last = run / "checkpoints" / "last.ckpt"
    assert f"{last} (step {NORMAL_STEPS})" in err and f"model.init_from={last}" in err
    # a save was due at every step; those inside the explosion waited, so last.ckpt precedes it
    assert load_training_checkpoint(last)["step"] == NORMAL_STEPS
    assert sorted(step_checkpoints(run / "checkpoints")) == [NORMAL_STEPS - 2, NORMAL_STEPS - 1, NORMAL_STEPS]
    guard_state = load_training_checkpoint(last)["extra"]["loss_guard"]
    assert guard_state["streak"] == 0 and len(guard_state["history"]) == NORMAL_STEPS


def test_the_guard_keys_may_change_on_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    base = [*cli_runs.FAST, "trainer.checkpoint_every_steps=1"]
    assert main(["train", cli_runs.TINY, "--out", str(run), "--set", *base, "trainer.max_steps=2"]) == 0
    more = ["trainer.max_steps=3", "trainer.loss_explosion_factor=50", "trainer.keep_checkpoints=2"]
    code = main(["train", cli_runs.TINY, "--out", str(run), "--resume", "--set", *base, *more])
    assert code == 0, capsys.readouterr().err
    assert load_training_checkpoint(run / "checkpoints" / "last.ckpt")["step"] == 3
    assert sorted(step_checkpoints(run / "checkpoints")) == [3]
