"""Issue 18 item 3: failures that used to print tracebacks are typed errors printed in one line, and nothing is
lost: a checkpoint that does not fit the run, a full disk, the exit codes of the typed errors."""

from __future__ import annotations

import errno
import hashlib
from pathlib import Path

import pytest
import torch

import cli_runs
from contrastkit import errors
from contrastkit.cli import main

BASE = [*cli_runs.FAST, "trainer.max_steps=2", "trainer.checkpoint_every_steps=1"]


def _files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*")
            if p.is_file()}  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("errors") / "run"
    assert main(["train", cli_runs.TINY, "--out", str(out), "--set", *BASE]) == 0
    return out


def _copy(run: Path, to: Path) -> Path:
    for name in _files(run):
        (to / name).parent.mkdir(parents=True, exist_ok=True)
        (to / name).write_bytes((run / name).read_bytes())
    return to


def _damage(last: Path, how: str) -> None:
    payload = torch.load(last, weights_only=True)
    if how == "optimiser state missing":
        del payload["optimizer_state"]["method"]
    elif how == "weights of another shape":
        key = next(k for k, v in payload["model_state"].items() if v.ndim == 4)
        payload["model_state"][key] = torch.zeros(3, 3, 3, 3)
    elif how == "extra entry missing":
        del payload["extra"]["elapsed"]
    torch.save(payload, last)


@pytest.mark.parametrize("how", ["optimiser state missing", "weights of another shape", "extra entry missing"])
def test_a_checkpoint_that_does_not_fit_is_one_line_and_changes_nothing(
    how: str, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = _copy(run, tmp_path / "copy")
    _damage(copy / "checkpoints" / "last.ckpt", how)
    before = _files(copy)
    code = main(["train", cli_runs.TINY, "--out", str(copy), "--resume", "--set", *BASE, "trainer.max_steps=3"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("contrastkit: error: --resume: checkpoint") and "does not fit" in err and "\n" not in err
    assert _files(copy) == before


def test_a_full_disk_is_one_line_and_keeps_the_last_checkpoint(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from contrastkit import _io
    from contrastkit.train import checkpoint

    def full(obj: object, path: object) -> Path:
        def write(handle: object) -> None:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))

        return _io.atomic_write(path, write)

    monkeypatch.setattr(checkpoint, "atomic_torch_save", full)
    copy = _copy(run, tmp_path / "copy")
    last = (copy / "checkpoints" / "last.ckpt").read_bytes()
    code = main(["train", cli_runs.TINY, "--out", str(copy), "--resume", "--set", *BASE, "trainer.max_steps=4"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("contrastkit: error: no space left on the device writing") and "\n" not in err
    assert (copy / "checkpoints" / "last.ckpt").read_bytes() == last
    assert not [p for p in (copy / "checkpoints").iterdir() if p.name.endswith(".tmp")]


def test_typed_errors_keep_their_old_bases_and_exit_codes() -> None:
    assert issubclass(errors.ResumeMismatchError, ValueError) and errors.ResumeMismatchError("x").exit_code == 2
    assert issubclass(errors.CollectiveTimeoutError, RuntimeError) and errors.CollectiveTimeoutError("x").exit_code == 4
    assert errors.TrainingInterrupted("x", 15).exit_code == 143 and errors.TrainingInterrupted("x", 2).exit_code == 130


def test_a_data_error_leaves_no_empty_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "new" / "run"
    code = main(
        ["train", cli_runs.TINY, "--out", str(out), "--set", *BASE, "data.name=npz", f"data.path={tmp_path}/x.npz"]
    )
    assert code == 2 and "does not exist" in capsys.readouterr().err
    assert not out.exists()


def test_stale_temporary_checkpoints_are_removed_on_the_next_start(run: Path, tmp_path: Path) -> None:
    copy = _copy(run, tmp_path / "copy")
    stale = copy / "checkpoints" / ".last.ckpt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    assert main(["train", cli_runs.TINY, "--out", str(copy), "--resume", "--set", *BASE, "trainer.max_steps=3"]) == 0
    assert not stale.exists()
