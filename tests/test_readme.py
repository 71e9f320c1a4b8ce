"""The README's plain PyTorch loop runs as written (on the first 512 Fashion-MNIST images, so: two steps)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import contrastkit.data
from contrastkit.data import DatasetNotInstalledError

README = Path(__file__).resolve().parents[1] / "README.md"


def _plain_loop_snippet() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## In a plain PyTorch loop", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert match is not None, "the README lost its plain-loop snippet"
    return match.group(1)


def test_the_readme_plain_loop_runs_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    full_load = contrastkit.data.load
    try:
        full_load("fashion-mnist", "train")
    except DatasetNotInstalledError as err:
        pytest.skip(f"Fashion-MNIST is not installed: {err}")

    def first_images(name: str, split: str = "train") -> contrastkit.data.ImageDataset:
        return full_load(name, split)[:512]

    monkeypatch.setattr(contrastkit.data, "load", first_images)
    torch.manual_seed(0)
    namespace: dict[str, object] = {}
    exec(compile(_plain_loop_snippet(), str(README), "exec"), namespace)  # noqa: S102 - our own README
    loss = namespace["loss"]
    assert isinstance(loss, torch.Tensor) and torch.isfinite(loss) and loss.item() > 0
    backbone = namespace["backbone"]
    assert isinstance(backbone, torch.nn.Module)
    assert all(p.grad is not None for p in backbone.parameters() if p.requires_grad)  # it trained
