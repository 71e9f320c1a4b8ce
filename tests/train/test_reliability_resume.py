"""Issue 18 item 2: ``--resume`` refuses any config key that changes the run, before writing anything."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import cli_runs
from contrastkit.cli import main
from contrastkit.train.checkpoint import RESUME_MAY_DIFFER, check_resume_config, load_training_checkpoint
from contrastkit.train.config import config_to_dict, load_config

BASE = [*cli_runs.FAST, "trainer.max_steps=2", "trainer.checkpoint_every_steps=1"]


def _files(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("resume") / "run"
    assert main(["train", cli_runs.TINY, "--out", str(out), "--set", *BASE]) == 0
    return out


CHANGES = {
    "seed": "trainer.seed=1",
    "batch size": "data.batch_size=16",
    "dataset": "data.name=fashion-mnist",
    "optimiser": "optim.name=adam",
    "learning rate": "optim.lr=0.1",
    "online probe toggled": "monitor.online_linear=false",
    "temperature": "method.temperature=0.5",
    "precision": "trainer.precision=bf16",
    "augmentation": "augment.strength=0.9",
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_change_is_refused_in_one_line_and_nothing_is_written(
    change: str, run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _files(run)
    code = main(["train", cli_runs.TINY, "--out", str(run), "--resume", "--set", *BASE, CHANGES[change]])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("contrastkit: error: --resume would change the run") and "\n" not in err, err
    assert CHANGES[change].split("=")[0] in err
    assert _files(run) == before


def test_a_longer_budget_and_other_intervals_resume(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for name, _ in _files(run).items():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes((run / name).read_bytes())
    longer = [*BASE, "trainer.max_steps=3", "trainer.log_every_steps=2", "trainer.checkpoint_every_steps=3"]
    assert main(["train", cli_runs.TINY, "--out", str(copy), "--resume", "--set", *longer]) == 0
    assert load_training_checkpoint(copy / "checkpoints" / "last.ckpt")["step"] == 3


def test_the_allowed_keys_exist_in_the_schema() -> None:
    keys = set()
    stack = [("", config_to_dict(load_config(cli_runs.TINY)))]
    while stack:
        prefix, section = stack.pop()
        for k, v in section.items():
            stack.append((f"{prefix}{k}.", v)) if isinstance(v, dict) else keys.add(f"{prefix}{k}")
    assert RESUME_MAY_DIFFER <= keys, RESUME_MAY_DIFFER - keys


def test_a_key_missing_from_an_old_checkpoint_compares_at_its_default() -> None:
    cfg = config_to_dict(load_config(cli_runs.TINY))
    old = {section: dict(v) if isinstance(v, dict) else v for section, v in cfg.items()}
    del old["trainer"]["gradient_clip_norm"]  # absent: its default (None) applies
    check_resume_config(old, cfg)
