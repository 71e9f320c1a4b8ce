"""Helpers of the tests that run ``contrastkit`` in subprocesses (tiny config, fast settings, checkpoint diffs).

``tests/`` is on ``sys.path`` (its ``conftest.py`` puts it there), so test modules ``import cli_runs``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from contrastkit.train.checkpoint import load_training_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny_test.yaml")
# fast settings shared by the subprocess runs: no held-out monitors, SGD (deterministic, no Adam normalisation)
FAST = ["data.eval_split=null", "monitor.knn_every_epochs=0", "optim.name=sgd", "optim.lr=0.05"]


def cli(*args: str, timeout: float = 240, **kw: object) -> subprocess.CompletedProcess:
    """``python -m contrastkit.cli *args`` in the repository root, one thread, output captured."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "contrastkit.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=str(ROOT),
        **kw,
    )


def final_state(run: Path) -> dict[str, torch.Tensor]:
    """The model state of a run's last checkpoint."""
    return load_training_checkpoint(run / "checkpoints" / "last.ckpt")["model_state"]


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Largest absolute difference over the floating-point entries of two states with the same keys."""
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())
