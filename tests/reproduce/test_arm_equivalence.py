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


def test_supercon_stage1_artifact_equals_contrastkit_train(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stage-1 backbone the arm runner exports (and reuses) == the backbone of the printed stage-1 command."""
    from contrastkit.models import load_backbone

    monkeypatch.setattr(sc, "QUICK", ["model.width=4", "data.batch_size=128"])
    arm = next(a for a in sc.ARMS if a.name == "supercon_cb-ham")
    with artifacts_in(tmp_path / "artifacts"):
        path, _, reused = sc.stage1_backbone(arm, 0, True)
        assert not reused and sc.stage1_backbone(arm, 0, True)[2]  # the second call reuses it
    command = sc.arm_commands(arm, 0, True).split(" # ")[0]
    stage1_out = shlex.split(command)[-1]
    cli = _cli_train(command.rsplit(" --out ", 1)[0], tmp_path / stage1_out)
    exported = load_backbone(path).state_dict()
    _assert_identical(exported, {k.removeprefix("backbone."): v for k, v in cli.items() if k.startswith("backbone.")})
