"""Cross-view InfoNCE (DirectCLR) and softmax focal loss: brute force, closed forms, gradients, bad inputs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from contrastkit.losses import CrossViewInfoNCELoss, FocalLoss, cross_view_info_nce, focal_loss, nt_xent


def brute_force_cross_view(z1: torch.Tensor, z2: torch.Tensor, tau: float, normalize: bool = True) -> float:
    u1, u2 = z1.double(), z2.double()
    if normalize:
        u1, u2 = F.normalize(u1, dim=1), F.normalize(u2, dim=1)
    b = u1.shape[0]

    def one(a: torch.Tensor, k: torch.Tensor) -> float:
        total = 0.0
        for i in range(b):
            s = [float(a[i] @ k[j]) / tau for j in range(b)]
            total += -s[i] + math.log(sum(math.exp(v) for v in s))
        return total / b

    return 0.5 * (one(u1, u2) + one(u2, u1))


@pytest.mark.parametrize(("b", "tau", "normalize"), [(2, 0.1, True), (6, 0.5, True), (5, 1.0, False)])
def test_cross_view_matches_brute_force(b: int, tau: float, normalize: bool) -> None:
    g = torch.Generator().manual_seed(b)
    z1, z2 = (
        torch.randn(b, 4, generator=g, dtype=torch.float64),
        torch.randn(b, 4, generator=g, dtype=torch.float64),
    )
    got = cross_view_info_nce(z1, z2, tau, normalize=normalize)
    assert abs(got.item() - brute_force_cross_view(z1, z2, tau, normalize)) < 1e-10


def test_cross_view_symmetry_and_one_direction_is_cross_entropy() -> None:
    g = torch.Generator().manual_seed(1)
    z1, z2 = (
        torch.randn(5, 3, generator=g, dtype=torch.float64),
        torch.randn(5, 3, generator=g, dtype=torch.float64),
    )
    torch.testing.assert_close(cross_view_info_nce(z1, z2), cross_view_info_nce(z2, z1))
    logits = F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).T / 0.1
    one_way = cross_view_info_nce(z1, z2, 0.1, symmetric=False)
    torch.testing.assert_close(one_way, F.cross_entropy(logits, torch.arange(5)))
    assert abs(one_way.item() - cross_view_info_nce(z2, z1, 0.1, symmetric=False).item()) > 1e-6


def test_cross_view_closed_form_orthonormal_pairs() -> None:
    """4 orthonormal identical pairs, tau 0.5: cross_view 0.340753 < ntxent 0.594438 (directclr.md §7.4)."""
    z = torch.eye(4, dtype=torch.float64)
    assert abs(cross_view_info_nce(z, z.clone(), 0.5).item() - 0.340753) < 1e-6
    assert abs(nt_xent(z, z.clone(), 0.5).item() - 0.594438) < 1e-6


def test_cross_view_gradcheck_and_chunking() -> None:
    g = torch.Generator().manual_seed(2)
    z1 = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: cross_view_info_nce(a, b, 0.3, chunk_size=3), (z1, z2))
    full = cross_view_info_nce(z1, z2, 0.3)
    chunked = cross_view_info_nce(z1, z2, 0.3, chunk_size=1)
    for a, b in zip(torch.autograd.grad(full, (z1, z2)), torch.autograd.grad(chunked, (z1, z2)), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_cross_view_module_and_bad_inputs() -> None:
    z1, z2 = torch.randn(4, 3), torch.randn(4, 3)
    torch.testing.assert_close(
        CrossViewInfoNCELoss(0.2, symmetric=False)(z1, z2), cross_view_info_nce(z1, z2, 0.2, symmetric=False)
    )
    with pytest.raises(ValueError, match="at least 2 samples"):
        cross_view_info_nce(z1[:1], z2[:1])
    with pytest.raises(ValueError, match="same shape"):
        cross_view_info_nce(z1, z2[:3])
    with pytest.raises(ValueError, match="temperature"):
        cross_view_info_nce(z1, z2, 0.0)
    with pytest.raises(ValueError, match="NaN"):
        cross_view_info_nce(z1, torch.full_like(z2, float("nan")))


def brute_force_focal(
    logits: torch.Tensor, targets: list[int], gamma: float, alpha: list[float] | None
) -> float:
    total = 0.0
    for n, y in enumerate(targets):
        row = [float(v) for v in logits[n]]
        p = math.exp(row[y]) / sum(math.exp(v) for v in row)
        a = 1.0 if alpha is None else alpha[y]
        total += -a * (1 - p) ** gamma * math.log(p)
    return total / len(targets)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
@pytest.mark.parametrize("alpha", [None, [0.2, 1.0, 3.0]])
def test_focal_matches_brute_force(gamma: float, alpha: list[float] | None) -> None:
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(7, 3, generator=g, dtype=torch.float64) * 2
    targets = [0, 1, 2, 2, 1, 0, 2]
    a = None if alpha is None else torch.tensor(alpha, dtype=torch.float64)
    got = focal_loss(logits, torch.tensor(targets), gamma, a)
    assert abs(got.item() - brute_force_focal(logits, targets, gamma, alpha)) < 1e-12


def test_focal_gamma_zero_is_cross_entropy() -> None:
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(10, 5, generator=g, requires_grad=True)
    y = torch.randint(0, 5, (10,), generator=g)
    fl = focal_loss(logits, y, gamma=0.0)
    ce = F.cross_entropy(logits, y)
    torch.testing.assert_close(fl, ce)
    torch.testing.assert_close(torch.autograd.grad(fl, logits)[0], torch.autograd.grad(ce, logits)[0])
    torch.testing.assert_close(focal_loss(logits, y, 0.0, 1.0), ce)
    torch.testing.assert_close(
        focal_loss(logits, y, 0.0, reduction="none"), F.cross_entropy(logits, y, reduction="none")
    )


def test_focal_down_weights_easy_examples_and_gradients_stay_finite() -> None:
    logits = torch.tensor([[30.0, 0.0, 0.0], [0.2, 0.0, 0.1]], requires_grad=True)
    y = torch.tensor([0, 0])
    per = focal_loss(logits, y, 2.0, reduction="none")
    ce = F.cross_entropy(logits, y, reduction="none")
    assert (per <= ce).all() and per[0] < 1e-20 and per[1] > 0.25 * ce[1]
    for gamma in (0.5, 2.0):
        (grad,) = torch.autograd.grad(focal_loss(logits, y, gamma), logits)
        assert torch.isfinite(grad).all()
    double = torch.tensor([[800.0, 0.0]], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(focal_loss(double, torch.tensor([0]), 0.3), double)
    assert torch.isfinite(grad).all()


def test_focal_gradcheck() -> None:
    logits = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 2, 1, 2])
    assert torch.autograd.gradcheck(
        lambda x: focal_loss(x, y, 1.5, torch.tensor([0.5, 1.0, 2.0]).double()), (logits,)
    )


def test_focal_module_and_bad_inputs() -> None:
    logits, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 1])
    module = FocalLoss(2.0, torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(module(logits, y), focal_loss(logits, y, 2.0, torch.tensor([1.0, 2.0, 3.0])))
    assert "alpha" in dict(module.named_buffers())
    torch.testing.assert_close(FocalLoss(1.0, 0.25)(logits, y), 0.25 * focal_loss(logits, y, 1.0))
    with pytest.raises(ValueError, match="gamma"):
        focal_loss(logits, y, -1.0)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        focal_loss(logits, torch.tensor([0, 1, 3, 1]))
    with pytest.raises(ValueError, match="entries"):
        focal_loss(logits, y[:3])
    with pytest.raises(ValueError, match="class weights"):
        focal_loss(logits, y, 2.0, torch.ones(4))
    with pytest.raises(ValueError, match="alpha"):
        focal_loss(logits, y, 2.0, -0.5)
    with pytest.raises(ValueError, match="NaN"):
        focal_loss(torch.full((4, 3), float("nan")), y)
