"""benchmarks/loss_kernels.py compares like with like: its plain references (benchmarks/_loss_references.py) and
pytorch-metric-learning's losses equal contrastkit's in float64, and a tiny run writes every ratio field."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch import Tensor

from contrastkit.losses import cross_view_info_nce, dcl, nt_xent, supcon

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _loss_references import (  # noqa: E402
    reference_cross_view,
    reference_dcl,
    reference_nt_xent,
    reference_supcon,
)

TAU = 0.3


def load_benchmark() -> ModuleType:
    path = ROOT / "benchmarks" / "loss_kernels.py"
    spec = importlib.util.spec_from_file_location("loss_kernels", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def two_views(b: int = 9, d: int = 6) -> tuple[Tensor, Tensor]:
    z1 = torch.randn(b, d, dtype=torch.float64, requires_grad=True)
    z2 = (z1.detach() + 0.5 * torch.randn(b, d, dtype=torch.float64)).requires_grad_()
    return z1, z2


def value_and_grads(fn: Callable[..., Tensor], *inputs: Tensor) -> tuple[Tensor, list[Tensor]]:
    leaves = [t for t in inputs if t.requires_grad]
    value = fn(*inputs)
    return value.detach(), list(torch.autograd.grad(value, leaves))


@pytest.mark.parametrize(
    ("contrastkit_loss", "reference"),
    [(nt_xent, reference_nt_xent), (dcl, reference_dcl), (cross_view_info_nce, reference_cross_view)],
)
def test_two_view_references_equal_contrastkit_in_float64(
    contrastkit_loss: Callable[..., Tensor], reference: Callable[..., Tensor]
) -> None:
    z1, z2 = two_views()
    ours, our_grads = value_and_grads(lambda a, b: contrastkit_loss(a, b, temperature=TAU), z1, z2)
    plain, plain_grads = value_and_grads(lambda a, b: reference(a, b, temperature=TAU), z1, z2)
    assert abs(ours.item() - plain.item()) < 1e-10
    for g_ours, g_plain in zip(our_grads, plain_grads, strict=True):
        assert (g_ours - g_plain).abs().max().item() < 1e-10


def test_supcon_reference_equals_contrastkit_with_an_anchor_without_positive() -> None:
    features = torch.randn(11, 6, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3, 4, 4, 0])  # label 2 has one row: left out of the mean
    ours, our_grads = value_and_grads(lambda f: supcon(f, labels, temperature=TAU), features)
    plain, plain_grads = value_and_grads(lambda f: reference_supcon(f, labels, temperature=TAU), features)
    assert abs(ours.item() - plain.item()) < 1e-10
    assert (our_grads[0] - plain_grads[0]).abs().max().item() < 1e-10
    assert our_grads[0][5].abs().max().item() > 0  # the positive-less row still acts as a negative


def test_references_are_not_interchangeable() -> None:
    """A negative control: the four definitions differ, so the 1e-10 equalities above pick the right one each."""
    z1, z2 = two_views()
    values = [
        reference_nt_xent(z1, z2, TAU).item(),
        reference_dcl(z1, z2, TAU).item(),
        reference_cross_view(z1, z2, TAU).item(),
        reference_supcon(torch.cat([z1, z2]), torch.arange(9).repeat(2), TAU).item(),
    ]
    assert min(abs(a - b) for i, a in enumerate(values[:3]) for b in values[i + 1 : 3]) > 1e-3
    assert abs(values[3] - values[0]) < 1e-10  # SupCon with all labels distinct over two views is NT-Xent


def test_pml_losses_equal_the_references_in_float64() -> None:
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    z1, z2 = two_views()
    pairs = pml.NTXentLoss(temperature=TAU)(torch.cat([z1, z2]), torch.arange(9).repeat(2))
    assert abs(pairs.item() - reference_nt_xent(z1, z2, TAU).item()) < 1e-10
    features = torch.randn(11, 6, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3, 4, 4, 0])
    ours = pml.SupConLoss(temperature=TAU)(features, labels).item()
    assert abs(ours - reference_supcon(features, labels, TAU).item()) < 1e-10


def test_tiny_run_writes_every_ratio_field(tmp_path: Path) -> None:
    out, markdown = tmp_path / "lk.json", tmp_path / "lk.md"
    result = load_benchmark().main(
        ["--sizes", "64", "--repeats", "1", "--threads", "1", "--out", str(out), "--markdown", str(markdown)]
    )
    saved = json.loads(out.read_text())
    assert saved["command"].startswith("python benchmarks/loss_kernels.py --sizes 64")
    assert {"torch", "threads", "machine", "rows", "targets"} <= saved.keys()
    assert len(saved["rows"]) == len(result["rows"]) == 4 * 2  # 4 losses x (fp32, bf16)
    for row in saved["rows"]:
        assert {"ratio_vs_reference", "ratio_vs_reference_fp32", "ratio_vs_pml", "abs_err"} <= row.keys()
        assert row["ratio_vs_reference"] > 0 and row["ratio_vs_reference_fp32"] > 0
        assert row["abs_err"]["contrastkit"] < (1e-4 if row["dtype"] == "fp32" else 1e-2)
        assert row["median_s"]["contrastkit"] > 0
        has_pml = row["loss"] in ("nt_xent", "supcon") and saved["pytorch_metric_learning"] is not None
        assert (row["ratio_vs_pml"] is not None) == has_pml
    assert "| nt_xent | 64 | fp32 |" in markdown.read_text()


def test_memory_path_skips_large_references_and_reports_growth(tmp_path: Path) -> None:
    result = load_benchmark().main(
        ["--sizes", "--losses", "nt_xent", "--dtypes", "fp32", "--threads", "1", "--memory",
         "--memory-sizes", "64", "512", "--max-reference-n", "64", "--out", str(tmp_path / "m.json")]
    )  # fmt: skip
    cells = {(r["impl"], r["n"]): r for r in result["memory"]}
    assert cells[("contrastkit", 512)]["extra_mb"] > 0 and cells[("reference", 64)]["status"] == "ok"
    assert cells[("reference", 512)]["status"].startswith("skipped (would need ~")
    growth = {g["impl"]: g for g in result["memory_growth"]}
    assert [(s["from_n"], s["to_n"]) for s in growth["contrastkit"]["steps"]] == [(64, 512)]
    assert growth["reference"]["looks_linear"] is None  # one size only
