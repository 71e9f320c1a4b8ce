"""A reproduction arm and ``contrastkit train`` with the command the report prints train bit-identical weights."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import torch

from contrastkit.cli import main
from contrastkit.data import available
from contrastkit.reproduce import artifacts_in
from contrastkit.reproduce.arms import arm_command, arm_config, base_config_path, train_arm
from contrastkit.reproduce.experiments import directclr as dc
from contrastkit.reproduce.experiments import supercon as sc
from contrastkit.train.checkpoint import load_training_checkpoint

pytestmark = pytest.mark.skipif(
    not any(info.name == "fashion-mnist" and info.installed for info in available()),
    reason="fashion-mnist is not installed (make data)",
)


def _cli_train(command: str, out: Path) -> dict[str, torch.Tensor]:
    """Run a printed ``contrastkit train ...`` command in-process (base path made absolute) into ``out``."""
    args = shlex.split(command)[1:]
    args[1] = str(base_config_path(Path(args[1]).stem))
    assert main([*args, "--out", str(out)]) == 0
    state = load_training_checkpoint(out / "checkpoints" / "last.ckpt")["model_state"]
    return {k.removeprefix("method."): v for k, v in state.items() if k.startswith("method.")}


def _assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_directclr_arm_equals_contrastkit_train(tmp_path: Path) -> None:
    quick = ["trainer.max_steps=2", "data.batch_size=64"]
    arm = next(a for a in dc.ARMS if a.name == "directclr-d16-strong")
    method, _ = train_arm(arm_config(dc.BASE, arm, 1, True, quick))
    command = arm_command(dc.BASE, arm, 1, True, quick)
    assert "method.d0=16" in command and "trainer.seed=1" in command
    _assert_identical(method.state_dict(), _cli_train(command, tmp_path / "cli"))


def test_supercon_two_stage_arm_equals_two_contrastkit_train_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stage 1 exported by the arm runner, stage 2 from it through model.init_from == stage 1 trained into a run
    directory, stage 2 from that directory: the same final classifier weights."""
    monkeypatch.setattr(sc, "QUICK", ["model.width=4", "data.batch_size=128"])
    arm = next(a for a in sc.ARMS if a.name == "supercon_ft-ham")
    with artifacts_in(tmp_path / "artifacts"):
        path, _, reused = sc.stage1_backbone(arm, 0, True)
        assert not reused and sc.stage1_backbone(arm, 0, True)[2]  # the second call reuses it
        method, _ = train_arm(arm_config(sc.BASE, arm, 0, True, sc.QUICK, extra=[f"model.init_from={path}"]))
    stage1_cmd, stage2_cmd = sc.arm_commands(arm, 0, True).split(" && ")
    stage1_out = shlex.split(stage1_cmd)[-1]
    _cli_train(stage1_cmd.rsplit(" --out ", 1)[0], tmp_path / stage1_out)
    stage2 = stage2_cmd.replace(f"model.init_from={stage1_out}", f"model.init_from={tmp_path / stage1_out}")
    _assert_identical(method.state_dict(), _cli_train(stage2, tmp_path / "stage2"))
