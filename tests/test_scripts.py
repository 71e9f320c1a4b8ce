"""The example and the benchmark scripts run end to end (tiny settings, sklearn digits)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from contrastkit.models import native_kernels, set_fused_batch_norm

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _script_folders_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """As when run as scripts: their own folder is importable (benchmarks/pil_views.py)."""
    for folder in ("examples", "benchmarks"):
        monkeypatch.syspath_prepend(str(ROOT / folder))


def load_script(relative: str) -> ModuleType:
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_plain_loop_example_trains_and_evaluates() -> None:
    accuracy = load_script("examples/simclr_plain_loop.py").main(
        ["--dataset", "digits", "--steps", "3", "--batch-size", "32", "--width", "0.125"]
    )
    assert 0.3 < accuracy <= 1.0  # chance is 0.1: features and labels are aligned


def test_budget_benchmark_writes_results(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    result = load_script("benchmarks/simclr_budget.py").main(
        [
            "--dataset",
            "digits",
            "--max-steps",
            "4",
            "--batch-size",
            "32",
            "--width",
            "0.125",
            "--eval-every",
            "1e9",
            "--linear-epochs",
            "5",
            "--out",
            str(out),
        ]
    )
    saved = json.loads(out.read_text())
    assert saved["steps"] == 4 and saved["images_seen"] == 128
    assert saved["knn_top1"] == pytest.approx(result["knn_top1"]) and 0.3 < saved["knn_top1"] <= 1.0
    assert len(saved["curve"]) == 1 and 0.0 <= saved["linear_top1"] <= 1.0


def test_budget_benchmark_with_pil_views(tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    result = load_script("benchmarks/simclr_budget.py").main(
        [
            "--dataset",
            "digits",
            "--max-steps",
            "2",
            "--batch-size",
            "16",
            "--width",
            "0.125",
            "--eval-every",
            "1e9",
            "--linear-epochs",
            "2",
            "--pil-views",
            "--workers",
            "0",
        ]
    )
    assert result["steps"] == 2


def test_dc_mnist_benchmark_condenses_evaluates_and_draws(tmp_path: Path) -> None:
    from contrastkit.data import available

    if not any(info.name == "mnist" and info.installed for info in available()):
        pytest.skip("MNIST is not installed (make data)")
    out = tmp_path / "dc.json"
    record = load_script("benchmarks/dc_mnist_ipc1.py").main(
        ["--outer", "2", "--width", "4", "--batch-real", "4", "--nets", "1", "--epochs", "2", "--out", str(out)]
    )
    (run,) = record["runs"]
    assert len(run["condensed_acc"]) == 1 and len(run["random_acc"]) == 1
    assert 0.0 <= run["condensed_mean"] <= 1.0
    assert json.loads(out.read_text())["runs"][0]["seed"] == 0
    assert "--grid" not in record["command"] and "--outer 2 " in record["command"]  # a command that runs again
    assert (tmp_path / "dc_seed0.pt").is_file() and (tmp_path / "dc_seed0.png").is_file()


def test_step_profile_benchmark_splits_the_step_by_kind_of_op(tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    result = load_script("benchmarks/step_profile.py").main(
        ["--width", "0.125", "--batch-size", "8", "--steps", "1", "--repeats", "1", "--out", str(out)]
    )
    for row in result["profile_ms_per_step"].values():
        assert row["convolution"] > 0 and row["batch_norm"] > 0
        assert row["total"] == pytest.approx(sum(v for k, v in row.items() if k != "total"))
    assert all(ms > 0 for ms in result["kernels"].values())
    assert json.loads(out.read_text())["kernels"].keys() == result["kernels"].keys()


@pytest.mark.skipif(not native_kernels(), reason="native bf16 kernels need AVX-512 and g++")
def test_step_profile_without_the_fused_batch_norm(tmp_path: Path) -> None:
    """--no-fused-bn: the bf16 step runs ATen's batch norm; the kernel table still times the fused kernel."""
    args = ["--width", "0.125", "--batch-size", "8", "--steps", "1", "--repeats", "1"]
    previous = set_fused_batch_norm(True)
    try:
        fused = load_script("benchmarks/step_profile.py").main(args)
        unfused = load_script("benchmarks/step_profile.py").main([*args, "--no-fused-bn"])
    finally:
        set_fused_batch_norm(previous)
    assert fused["native_kernels"] and not fused["settings"]["no_fused_bn"] and unfused["settings"]["no_fused_bn"]
    # fused, the ReLUs of the ResNet run inside the batch-norm kernel; unfused, ATen's ReLU ops show up
    assert (
        fused["profile_ms_per_step"]["channels_last + bf16"]["relu"]
        < unfused["profile_ms_per_step"]["channels_last + bf16"]["relu"]
    )
    assert "fused_batch_norm_relu_forward_ms" in unfused["kernels"]


def test_momentum_method_example_registers_and_its_ema_hook_runs_after_each_step() -> None:
    """The architecture doc's example: one file registers a method; the engine calls its on_step_end hook after
    every optimiser step, so the momentum encoder is exactly m * before + (1 - m) * online-after-the-step."""
    import torch

    from contrastkit.method_registry import recipes
    from contrastkit.train import config_from_dict
    from contrastkit.train.builders import build_engine

    load_script("examples/momentum_method.py")
    assert "momentum_example" in recipes()
    cfg = config_from_dict({
        "data": {"name": "digits", "eval_split": None, "batch_size": 32},
        "model": {"width": 0.125, "norm": "group", "projection_dim": 16},
        "method": {"name": "momentum_example", "momentum": 0.9},
        "optim": {"name": "sgd", "lr": 0.1},
        "schedule": {"warmup_fraction": 0.0},
        "trainer": {"accelerator": "cpu", "precision": "32", "max_steps": 2, "channels_last": False},
        "monitor": {"knn_every_epochs": 0},
    })  # fmt: skip
    engine, module, _ = build_engine(cfg)
    method = module.method
    assert {id(p) for g in engine.optimizers[0].param_groups for p in g["params"]}.isdisjoint(
        id(p) for p in method.momentum_backbone.parameters()
    )  # the momentum encoder is not optimised
    engine.start()
    before = [p.detach().clone() for p in method.momentum_backbone.parameters()]
    engine.step()
    momentum, online_params = list(method.momentum_backbone.parameters()), list(method.backbone.parameters())
    for target, old, online in zip(momentum, before, online_params, strict=True):
        torch.testing.assert_close(target, 0.9 * old + 0.1 * online, rtol=0, atol=1e-6)
    moved = sum(float((t - o).abs().sum()) for t, o in zip(method.momentum_backbone.parameters(), before, strict=True))
    assert moved > 0


def test_engine_overhead_benchmark_times_bare_engine_and_config_steps(tmp_path: Path) -> None:
    from contrastkit.data import available

    if not any(info.name == "fashion-mnist" and info.installed for info in available()):
        pytest.skip("fashion-mnist is not installed (make data)")
    out = tmp_path / "e.json"
    result = load_script("benchmarks/engine_overhead.py").main(
        ["--width", "0.125", "--batch-size", "16", "--blocks", "2", "--block", "1", "--out", str(out)]
    )
    assert set(result["rows"]) == {"bare", "engine", "train_config"}
    assert all(len(row["step_ms_blocks"]) == 2 for row in result["rows"].values())
    assert result["ratio"] == pytest.approx(
        result["rows"]["engine"]["images_per_s"] / result["rows"]["bare"]["images_per_s"]
    )
    assert json.loads(out.read_text())["ratio_train_config"] > 0
