"""DirectCLR: slice-then-InfoNCE vs hand computations, slice gradients, bad d0; SimCLR projector variants;
the directclr method config and builder; collapse_report."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from contrastkit.data import Batch, ImageDataset
from contrastkit.evaluate import collapse_report, effective_rank
from contrastkit.methods import DirectCLR, Method, SimCLR
from contrastkit.models import ConvNet

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


class FlatBackbone(nn.Module):
    """``[B, 1, 2, 2] -> [B, 4]`` identity flatten (so the representation is the input), then a linear map."""

    def __init__(self, weight: Tensor | None = None) -> None:
        super().__init__()
        self.num_features = 4
        self.linear = nn.Linear(4, 4, bias=False)
        with torch.no_grad():
            self.linear.weight.copy_(torch.eye(4) if weight is None else weight)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x.flatten(1))


def _hand_cross_view(z1: Tensor, z2: Tensor, tau: float) -> float:
    u1 = [row / row.norm() for row in z1]
    u2 = [row / row.norm() for row in z2]
    n = len(u1)
    total = 0.0
    for a, b in ((u1, u2), (u2, u1)):
        for i in range(n):
            logits = [float(a[i] @ b[j]) / tau for j in range(n)]
            total += -logits[i] + math.log(sum(math.exp(v) for v in logits))
    return total / (2 * n)


def _hand_ntxent(z1: Tensor, z2: Tensor, tau: float) -> float:
    u = [row / row.norm() for row in torch.cat([z1, z2])]
    n = z1.shape[0]
    total = 0.0
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        logits = {k: float(u[i] @ u[k]) / tau for k in range(2 * n) if k != i}
        total += -logits[pos] + math.log(sum(math.exp(v) for v in logits.values()))
    return total / (2 * n)


@pytest.mark.parametrize(("negatives", "hand"), [("cross_view", _hand_cross_view), ("ntxent", _hand_ntxent)])
def test_loss_is_infonce_of_the_first_d0_dims(negatives: str, hand: object) -> None:
    torch.manual_seed(3)
    method = DirectCLR(FlatBackbone().double(), None, d0=2, temperature=0.3, negatives=negatives)
    x1, x2 = torch.randn(5, 1, 2, 2, dtype=torch.float64), torch.randn(5, 1, 2, 2, dtype=torch.float64)
    out = method.training_step(Batch(views=(x1, x2)))
    expected = hand(x1.flatten(1)[:, :2], x2.flatten(1)[:, :2], 0.3)  # type: ignore[operator]
    assert abs(float(out["loss"].detach()) - expected) < 1e-10
    # the dims beyond d0 do not enter the loss: changing them leaves it unchanged
    y1, y2 = x1.clone(), x2.clone()
    y1.view(5, 4)[:, 2:] = 7.0
    y2.view(5, 4)[:, 2:] = -3.0
    torch.testing.assert_close(method.training_step(Batch(views=(y1, y2)))["loss"], out["loss"])
    assert out["embeddings"].shape == (5, 4) and not out["embeddings"].requires_grad


def test_closed_form_on_orthonormal_pairs() -> None:
    """Spec §7.4.2: N = 4 identical orthonormal pairs, tau 0.5: cross_view 0.340753, ntxent 0.594438."""
    views = torch.eye(4, dtype=torch.float64).view(4, 1, 2, 2)
    for negatives, value in (("cross_view", 0.340753), ("ntxent", 0.594438)):
        method = DirectCLR(FlatBackbone().double(), None, d0=4, temperature=0.5, negatives=negatives)
        assert abs(float(method.training_step(Batch(views=(views, views)))["loss"].detach()) - value) < 1e-6


def test_gradient_reaches_only_the_first_d0_dims_of_the_representation() -> None:
    torch.manual_seed(0)
    method = DirectCLR(FlatBackbone(torch.randn(4, 4)).double(), None, d0=3)
    r1 = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    r2 = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    method.loss(r1, r2).backward()
    for r in (r1, r2):
        assert r.grad is not None
        assert torch.equal(r.grad[:, 3:], torch.zeros_like(r.grad[:, 3:]))
        assert r.grad[:, :3].abs().sum() > 1e-3
    # through a shared trunk, weights feeding only the dropped dim still get no gradient from that dim's row,
    # while the rows feeding the slice do
    x = torch.randn(6, 1, 2, 2, dtype=torch.float64)
    method.training_step(Batch(views=(x, x + 0.1 * torch.randn_like(x))))["loss"].backward()
    grad = method.backbone.linear.weight.grad
    assert torch.equal(grad[3], torch.zeros(4, dtype=torch.float64)) and grad[:3].abs().sum() > 1e-3


@pytest.mark.parametrize("d0", [0, -1, 5, 2.0, True])
def test_bad_d0_raises_one_line(d0: object) -> None:
    with pytest.raises(ValueError, match="d0 must be an int in") as info:
        DirectCLR(FlatBackbone(), None, d0=d0)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_bad_negatives_and_batches() -> None:
    with pytest.raises(ValueError, match="negatives must be one of"):
        DirectCLR(FlatBackbone(), None, d0=2, negatives="both")
    with pytest.raises(ValueError, match="no view pipeline: pass ready views"):
        DirectCLR(FlatBackbone(), None, d0=2).training_step(torch.rand(4, 1, 2, 2))
    with pytest.raises(ValueError, match="DirectCLR trains on 2 view"):
        DirectCLR(FlatBackbone(), None, d0=2).training_step(Batch(views=(torch.rand(4, 1, 2, 2),)))


def test_speaks_the_protocol_with_views_and_learns_through_the_trunk() -> None:
    from contrastkit.augment import simclr_views

    backbone = ConvNet(in_channels=1, image_size=8, width=16, depth=2, norm="instancenorm")
    method = DirectCLR(backbone, simclr_views(8, 1), d0=4)
    assert isinstance(method, Method)
    out = method.training_step((torch.rand(8, 1, 8, 8), torch.arange(8)))
    out["loss"].backward()
    assert out["embeddings"].shape == (8, backbone.num_features)
    assert method(torch.rand(3, 1, 8, 8)).shape == (3, 4)
    assert method.embed(torch.rand(3, 1, 8, 8)).shape == (3, backbone.num_features)
    assert sum(float(p.grad.abs().sum()) for p in backbone.parameters() if p.grad is not None) > 0


# ------------------------------------------------------------------------------------ SimCLR projectors


@pytest.mark.parametrize(("projector", "dim"), [("mlp", 3), ("linear", 3), ("none", 4)])
def test_simclr_projector_variants(projector: str, dim: int) -> None:
    torch.manual_seed(1)
    method = SimCLR(FlatBackbone(torch.randn(4, 4)), None, projection_dim=3, projector=projector)
    x = torch.randn(6, 1, 2, 2)
    assert method(x).shape == (6, dim)
    if projector == "none":
        torch.testing.assert_close(method(x), method.embed(x))
        assert not any(True for _ in method.projection_head.parameters())
    if projector == "linear":
        head = method.projection_head
        assert isinstance(head, nn.Linear) and head.bias is None
        torch.testing.assert_close(method(x), method.embed(x) @ head.weight.T)


def test_simclr_default_is_unchanged_mlp_and_cross_view_switch() -> None:
    torch.manual_seed(2)
    x1, x2 = torch.randn(5, 1, 2, 2, dtype=torch.float64), torch.randn(5, 1, 2, 2, dtype=torch.float64)
    mlp = SimCLR(FlatBackbone(), None, projection_dim=3)
    assert mlp.projector == "mlp" and mlp.negatives == "ntxent"
    cross = SimCLR(FlatBackbone().double(), None, projector="none", negatives="cross_view", temperature=0.3)
    direct = DirectCLR(FlatBackbone().double(), None, d0=4, temperature=0.3)
    torch.testing.assert_close(
        cross.training_step(Batch(views=(x1, x2)))["loss"], direct.training_step(Batch(views=(x1, x2)))["loss"]
    )
    with pytest.raises(ValueError, match="projector must be one of"):
        SimCLR(FlatBackbone(), None, projector="deep")


# ------------------------------------------------------------------------------------ harness + diagnostics


def test_directclr_config_loads_and_builds() -> None:
    from contrastkit.train.builders import build_method
    from contrastkit.train.config import ConfigError, load_config

    overrides = ["data.name=digits", "data.batch_size=32", "trainer.time_budget_minutes=null", "trainer.max_steps=2"]
    cfg = load_config(CONFIGS / "directclr_fashion_mnist.yaml", overrides)
    assert cfg.method.name == "directclr" and cfg.method.d0 == 32  # type: ignore[attr-defined]
    train = ImageDataset(torch.rand(40, 1, 8, 8), None, [], "test/train")
    method = build_method(cfg, train)
    assert isinstance(method, DirectCLR) and method.d0 == 32 and method.negatives == "cross_view"
    with pytest.raises(ConfigError, match="method.negatives must be one of"):
        load_config(CONFIGS / "directclr_fashion_mnist.yaml", [*overrides, "method.negatives=all"])
    with pytest.raises(ValueError, match="d0 must be an int in"):
        build_method(load_config(CONFIGS / "directclr_fashion_mnist.yaml", [*overrides, "method.d0=999"]), train)


def test_collapse_report_counts_collapsed_and_dead_dims() -> None:
    torch.manual_seed(0)
    pre = torch.randn(400, 6, dtype=torch.float64)
    pre[:, 4] = -pre[:, 4].abs() - 0.1  # never fires after ReLU
    pre[:, 5] = 1e-4 * pre[:, 0]  # collinear with unit 0: a collapsed direction before and after the ReLU
    z = pre.clamp_min(0)
    report = collapse_report(z, pre_relu=pre)
    assert report["dim"] == 6 and report["dead_units"] == 1 and report["pre_relu_dead_units"] == 0
    # post-ReLU: the dead unit and the collinear one; pre-ReLU only the collinear one (dead units tell them apart)
    assert report["collapsed_dims"] == 2 and report["pre_relu_collapsed_dims"] == 1
    assert abs(report["effective_rank"] - effective_rank(z)) < 1e-12
    iso = collapse_report(torch.randn(4000, 8, dtype=torch.float64))
    assert 7.8 < iso["effective_rank"] <= 8.0 and iso["collapsed_dims"] == 0
    with pytest.raises(ValueError, match="pre_relu has 3 rows"):
        collapse_report(z, pre_relu=pre[:3])
