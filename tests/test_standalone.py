"""The project stands alone: no tracked file points outside the repository, and the reproduction runner's tests pass
in a copy of the repository that has nothing beside it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = re.compile(r"\.\./shared|/work/shared|\.\./\.\./")


def _tracked() -> list[str]:
    try:
        listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [line for line in listed.stdout.splitlines() if line]


def test_no_tracked_file_reads_outside_the_repository() -> None:
    offenders = []
    for name in _tracked():
        if not name.endswith((".py", ".sh", ".yaml", ".toml", ".cfg", "Makefile")) or name.endswith("standalone.py"):
            continue
        text = (ROOT / name).read_text(encoding="utf-8", errors="replace")
        offenders += [f"{name}: {m.group(0)}" for m in OUTSIDE.finditer(text)]
    assert offenders == []


def test_the_runner_tests_pass_in_a_lone_copy(tmp_path: Path) -> None:
    copy = tmp_path / "contrastkit"
    for name in _tracked():
        if name.startswith("docs/results/"):
            continue  # committed results: large, and no test of the runner reads them
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    assert not (tmp_path / "shared").exists()
    env = {**os.environ, "PYTHONPATH": str(copy / "src")}
    tests = ["tests/reproduce/test_reproduce_runner.py", "tests/reproduce/test_validate.py"]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider", *tests],
                          cwd=copy, env=env, capture_output=True, text=True, timeout=900, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert str(copy / "src") in subprocess.run(
        [sys.executable, "-c", "import contrastkit; print(contrastkit.__file__)"],
        cwd=copy, env=env, capture_output=True, text=True, check=True,
    ).stdout  # the copy's code ran, not the checkout's  # fmt: skip
