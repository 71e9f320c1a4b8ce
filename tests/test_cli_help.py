"""The CLI explains itself: a version, help without markup, a help text for every argument, defaults shown, the
stop criteria and devices in ``train --help``, and experiments listed with what a full run costs."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from contrastkit.cli import _parser, main


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_version_and_top_level_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.startswith("contrastkit ")
    help_text = _parser().format_help()
    assert "``" not in help_text and ":func:" not in help_text


def test_every_argument_has_help_and_defaults_are_shown() -> None:
    for name, sub in _subparsers(_parser()).items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
        text = sub.format_help()
        if name in ("evaluate", "reproduce", "validate"):
            assert "(default:" in text, name
    train = _subparsers(_parser())["train"].format_help()
    assert "stop criteria" in train and "whichever" in train and "trainer.accelerator" in train


def test_reproduce_lists_experiments_with_their_cost(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    names = {line.split()[0] for line in lines}
    assert {"directclr", "directclr-toy", "supercon", "dcc"} <= names
    assert all("not stated" not in line for line in lines)


def test_reproduce_writes_under_runs_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --out a reproduction goes to runs/reproduce/NAME of the working directory, never docs/results."""
    monkeypatch.chdir(tmp_path)
    assert main(["reproduce", "directclr-toy", "--quick", "--seeds", "1"]) == 0
    assert (tmp_path / "runs" / "reproduce" / "directclr-toy" / "results.json").is_file()
    assert not (tmp_path / "docs").exists()


def test_the_temporary_artifact_folder_is_removed_at_exit(tmp_path: Path) -> None:
    code = "from contrastkit.reproduce import save_artifact_json; print(save_artifact_json('x', {'a': 1}).parent)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    folder = Path(done.stdout.strip())
    assert folder.name.startswith("contrastkit-artifacts-") and not folder.exists()
