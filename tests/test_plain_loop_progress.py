"""examples/simclr_plain_loop.py is never silent for long: a line every --print-every steps with the loss, images/s
and the time left, then the feature extraction's progress (tiny settings, sklearn digits)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_plain_loop_prints_loss_and_images_per_second(capsys: pytest.CaptureFixture[str]) -> None:
    path = ROOT / "examples" / "simclr_plain_loop.py"
    spec = importlib.util.spec_from_file_location("simclr_plain_loop_progress", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    module.main(["--dataset", "digits", "--steps", "4", "--batch-size", "16", "--width", "0.125", "--print-every", "2"])
    out = capsys.readouterr().out
    steps = re.findall(r"^step +(\d+)/4  loss \d+\.\d{3}  \d+ images/s .* s left$", out, flags=re.M)
    assert steps == ["1", "2", "4"]
    assert re.search(r"embedding the \d+ training images: \d+/\d+ images", out) and "kNN accuracy" in out
