"""NT-Xent (SimCLR) and DCL against float64 brute-force loops, closed forms, gradients and bad inputs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from contrastkit.losses import DCLLoss, NTXentLoss, dcl, nt_xent


def brute_force_two_view(z1: torch.Tensor, z2: torch.Tensor, tau: float, decoupled: bool) -> float:
    """Mean over 2B anchors of -s_ip + log sum_k exp(s_ik) (k != i; also k != p when decoupled)."""
    u = F.normalize(torch.cat([z1, z2]).double(), dim=1)
    n = u.shape[0]
    b = n // 2
    total = 0.0
    for i in range(n):
        p = (i + b) % n
        s = [float(u[i] @ u[j]) / tau for j in range(n)]
        others = [j for j in range(n) if j != i and not (decoupled and j == p)]
        total += -s[p] + math.log(sum(math.exp(s[j]) for j in others))
    return total / n


@pytest.mark.parametrize(("b", "tau"), [(2, 0.5), (5, 0.1), (8, 1.0), (3, 0.07)])
def test_nt_xent_matches_brute_force(b: int, tau: float) -> None:
    g = torch.Generator().manual_seed(b)
    z1, z2 = (
        torch.randn(b, 6, generator=g, dtype=torch.float64),
        torch.randn(b, 6, generator=g, dtype=torch.float64),
    )
    assert abs(nt_xent(z1, z2, tau).item() - brute_force_two_view(z1, z2, tau, decoupled=False)) < 1e-10


@pytest.mark.parametrize(("b", "tau"), [(2, 0.5), (5, 0.1), (8, 1.0), (3, 0.07)])
def test_dcl_matches_brute_force(b: int, tau: float) -> None:
    g = torch.Generator().manual_seed(10 + b)
    z1, z2 = (
        torch.randn(b, 6, generator=g, dtype=torch.float64),
        torch.randn(b, 6, generator=g, dtype=torch.float64),
    )
    assert abs(dcl(z1, z2, tau).item() - brute_force_two_view(z1, z2, tau, decoupled=True)) < 1e-10


def test_dcl_is_below_nt_xent_per_anchor() -> None:
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    per_dcl = dcl(z1, z2, 0.3, reduction="none")
    per_nt = nt_xent(z1, z2, 0.3, reduction="none")
    assert per_dcl.shape == (12,) and (per_dcl < per_nt).all()
    # exact relation: nt_xent_i = -s_ip + log(e^{s_ip} + e^{lse_neg_i}) = log(1 + e^{dcl_i}) = softplus(dcl_i)
    torch.testing.assert_close(per_nt, F.softplus(per_dcl), rtol=1e-5, atol=1e-6)


def test_nt_xent_closed_form_orthonormal_pairs() -> None:
    """N = 4 orthonormal identical pairs, tau = 0.5: -1/tau + log(e^{1/tau} + 2N - 2) = 0.594438."""
    z = torch.eye(4, dtype=torch.float64)
    expected = -2.0 + math.log(math.exp(2.0) + 6)
    assert abs(expected - 0.594438) < 1e-6
    assert abs(nt_xent(z, z.clone(), 0.5).item() - expected) < 1e-12
    # DCL: -2 + log(6) (the 6 negatives all have similarity 0)
    assert abs(dcl(z, z.clone(), 0.5).item() - (-2.0 + math.log(6.0))) < 1e-12


def test_nt_xent_is_symmetric_in_views_and_invariant_to_scale() -> None:
    g = torch.Generator().manual_seed(2)
    z1, z2 = (
        torch.randn(5, 3, generator=g, dtype=torch.float64),
        torch.randn(5, 3, generator=g, dtype=torch.float64),
    )
    torch.testing.assert_close(nt_xent(z1, z2), nt_xent(z2, z1))
    torch.testing.assert_close(nt_xent(3.0 * z1, 0.2 * z2), nt_xent(z1, z2))


@pytest.mark.parametrize("loss_fn", [nt_xent, dcl])
def test_gradcheck(loss_fn: object) -> None:
    g = torch.Generator().manual_seed(3)
    z1 = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: loss_fn(a, b, 0.4), (z1, z2))  # type: ignore[operator]


@pytest.mark.parametrize("loss_fn", [nt_xent, dcl])
@pytest.mark.parametrize("chunk_size", [1, 4, 7])
def test_chunked_equals_unchunked(loss_fn: object, chunk_size: int) -> None:
    g = torch.Generator().manual_seed(4)
    z1 = torch.randn(7, 5, generator=g, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(7, 5, generator=g, dtype=torch.float64, requires_grad=True)
    full = loss_fn(z1, z2, 0.2)  # type: ignore[operator]
    g_full = torch.autograd.grad(full, (z1, z2))
    chunked = loss_fn(z1, z2, 0.2, chunk_size=chunk_size)  # type: ignore[operator]
    g_chunk = torch.autograd.grad(chunked, (z1, z2))
    torch.testing.assert_close(chunked, full, rtol=1e-12, atol=1e-12)
    for a, b in zip(g_chunk, g_full, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("loss_fn", [nt_xent, dcl])
def test_extreme_temperature_is_finite(loss_fn: object) -> None:
    z1 = torch.randn(32, 8).mul(50).requires_grad_()
    z2 = (z1.detach() + 0.01 * torch.randn(32, 8)).requires_grad_()
    loss = loss_fn(z1, z2, 0.01)  # type: ignore[operator]
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z1.grad).all() and torch.isfinite(z2.grad).all()


def test_modules_match_functions() -> None:
    z1, z2 = torch.randn(4, 3), torch.randn(4, 3)
    torch.testing.assert_close(NTXentLoss(0.3, chunk_size=3)(z1, z2), nt_xent(z1, z2, 0.3))
    torch.testing.assert_close(DCLLoss(0.3)(z1, z2), dcl(z1, z2, 0.3))
    assert NTXentLoss().temperature == 0.5 and DCLLoss().temperature == 0.5


@pytest.mark.parametrize("loss_fn", [nt_xent, dcl])
def test_bad_inputs_raise(loss_fn: object) -> None:
    z = torch.randn(4, 3)
    f = loss_fn  # type: ignore[assignment]
    with pytest.raises(ValueError, match="at least 2 samples"):
        f(z[:1], z[:1])
    with pytest.raises(ValueError, match="same shape"):
        f(z, torch.randn(5, 3))
    with pytest.raises(ValueError, match="temperature"):
        f(z, z, 0.0)
    with pytest.raises(ValueError, match="temperature"):
        f(z, z, -0.5)
    with pytest.raises(ValueError, match="NaN"):
        f(z, torch.full_like(z, float("nan")))
    with pytest.raises(ValueError, match="dimensions"):
        f(z[None], z[None])
    with pytest.raises(ValueError, match="floating"):
        f(z.long(), z.long())
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(temperature=0)
