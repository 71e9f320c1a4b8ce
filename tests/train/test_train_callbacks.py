"""Callbacks of the harness: the collapse monitor any method switches on, and a user's own callback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from contrastkit.data import ImageDataset
from contrastkit.train import Config, load_config
from contrastkit.train.callbacks import Callback, CollapseMonitor, MonitorContext, build_callbacks
from contrastkit.train.loop import fit

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny_test.yaml"


class _Recorder(Callback):
    def __init__(self) -> None:
        self.steps: list[int] = []
        self.training_flags: list[bool] = []

    def on_monitor(self, ctx: MonitorContext) -> dict[str, float]:
        self.steps.append(ctx.step)
        self.training_flags.append(ctx.method.training)
        return {"recorder_rows": float(ctx.features.shape[0])}

    def protocols(self) -> dict[str, str]:
        return {"recorder_rows": "number of held-out rows the callback saw"}


@pytest.mark.parametrize("method", ["simclr", "directclr"])
def test_collapse_monitor_reports_both_spaces_and_a_user_callback_runs(tmp_path: Path, method: str) -> None:
    overrides = ["monitor.collapse=true", "monitor.knn_every_epochs=0.1", "trainer.max_steps=4"]
    if method == "directclr":
        overrides += ["method.name=directclr", "method.d0=8"]
    cfg = load_config(TINY, overrides)
    recorder = _Recorder()
    summary = fit(cfg, tmp_path / "run", callbacks=[recorder])
    metrics = summary["metrics"]
    loss_dim = 8 if method == "directclr" else cfg.model.projection_dim
    assert 1.0 <= metrics["loss_space_effective_rank"] <= loss_dim + 1e-6
    assert 1.0 <= metrics["collapse_effective_rank"]
    assert 0 <= metrics["loss_space_collapsed_dims"] < loss_dim
    assert metrics["recorder_rows"] == 450.0  # the digits test split (25 % of 1797)
    assert recorder.steps[-1] == 4 and recorder.steps == sorted(set(recorder.steps))
    assert not any(recorder.training_flags)  # callbacks see the method in eval mode
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert "loss_space_effective_rank" in results["protocols"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "plots/collapse_spectra.png" in report
    assert (tmp_path / "run" / "plots" / "collapse_spectra.png").stat().st_size > 1000
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0]
    assert "collapse_effective_rank" in header


def test_the_config_switch_and_bad_callbacks() -> None:
    assert build_callbacks(load_config(TINY)) == []
    (monitor,) = build_callbacks(load_config(TINY, ["monitor.collapse=true", "monitor.collapse_rel=1e-3"]))
    assert isinstance(monitor, CollapseMonitor) and monitor.rel == 1e-3
    with pytest.raises(ValueError, match="collapse_rel"):
        load_config(TINY, ["monitor.collapse_rel=0"])
    with pytest.raises(ValueError, match="subclass contrastkit.train.callbacks.Callback"):
        fit(load_config(TINY), "/nonexistent/never", callbacks=[object()])  # type: ignore[list-item]


class _Rank2(nn.Module):
    """A 'method' whose backbone gives a rank-3 representation and whose loss space has rank 1."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Flatten()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :1].repeat(1, 4)


def test_collapse_monitor_counts_collapsed_dimensions_of_known_spaces() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(500, 1, 2, 3)
    x.view(500, 6)[:, :3] = torch.rand(500, 3, generator=g)  # 3 live dims, 3 always zero
    features = x.flatten(1)
    ctx = MonitorContext(1, 0.1, _Rank2(), ImageDataset(x, None, [], "toy"), features, torch.device("cpu"), "32")
    metrics = CollapseMonitor(normalize=False).on_monitor(ctx)
    assert metrics["collapse_dead_units"] == 3 and metrics["collapse_collapsed_dims"] == 3
    assert 2.7 < metrics["collapse_effective_rank"] <= 3.0
    assert metrics["loss_space_collapsed_dims"] == 3 and metrics["loss_space_effective_rank"] == pytest.approx(1.0)


class _AutocastProbe(nn.Module):
    """Wraps a backbone and records whether autocast (and which dtype) was on in each training forward."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.inner = backbone
        self.num_features = backbone.num_features
        self.seen: list[tuple[bool, torch.dtype]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return self.inner(x)


@pytest.mark.parametrize("precision", ["bf16", "32"])
def test_the_training_step_runs_in_the_precision_asked_for(
    tmp_path: Path, precision: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """trainer.precision=bf16 really trains under bf16 autocast (Fabric's marked methods skip it on their own)."""
    import contrastkit.train.builders as builders

    probes: list[_AutocastProbe] = []
    build = builders.build_method

    def probed(cfg: Config, train: ImageDataset) -> nn.Module:
        method = build(cfg, train)
        method.backbone = _AutocastProbe(method.backbone)
        probes.append(method.backbone)
        return method

    monkeypatch.setattr(builders, "build_method", probed)  # what build_engine (and so fit) calls
    cfg = load_config(TINY, ["trainer.max_steps=2", f"trainer.precision={precision}", "monitor.knn_every_epochs=0"])
    fit(cfg, tmp_path / "run")
    seen = probes[0].seen
    assert len(seen) >= 2
    if precision == "bf16":
        assert all(enabled and dtype == torch.bfloat16 for enabled, dtype in seen)
    else:
        assert not any(enabled for enabled, _ in seen)
