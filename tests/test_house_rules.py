"""Rules of the house that a grep can check: every backward call is the engine's or a named exception, and
experiment files stay declarations."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINE = {"src/contrastkit/train/engine.py", "src/contrastkit/train/runtime.py"}


def test_backward_calls_are_the_engines_or_named_exceptions() -> None:
    """`grep -rn '.backward(' src benchmarks` finds only the engine and code marked "allowed outside the engine"
    (with the reason) within the three lines above the call."""
    unmarked = []
    for path in [*ROOT.joinpath("src").rglob("*.py"), *ROOT.joinpath("benchmarks").rglob("*.py")]:
        relative = path.relative_to(ROOT).as_posix()
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if re.search(r"\.backward\(", line) and relative not in ENGINE:
                context = " ".join(lines[max(0, i - 3) : i + 1])
                if "allowed outside the engine" not in context:
                    unmarked.append(f"{relative}:{i + 1}")
    assert unmarked == [], f"training loops outside the engine: {unmarked}"


def test_experiment_files_are_200_lines_or_fewer() -> None:
    folder = ROOT / "src" / "contrastkit" / "reproduce" / "experiments"
    long = {p.name: n for p in folder.glob("*.py") if (n := len(p.read_text().splitlines())) > 200}
    assert long == {}
