"""Embedding spectrum, effective rank, threshold rank and dead units (DirectCLR unit checks 4 and 5)."""

from __future__ import annotations

import math

import pytest
import torch

from contrastkit.evaluate import dead_units, effective_rank, embedding_spectrum, rank_at_threshold


def test_spectrum_equals_squared_singular_values() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(50, 6, generator=g) @ torch.randn(6, 6, generator=g) + 3.0
    eig = embedding_spectrum(z)
    centred = z.double() - z.double().mean(0)
    want = torch.linalg.svdvals(centred) ** 2 / (z.shape[0] - 1)
    assert eig.dtype == torch.float64
    torch.testing.assert_close(eig, want, rtol=1e-9, atol=1e-12)
    assert (eig[:-1] >= eig[1:]).all()
    # uncentred: second moment z^T z / (N - 1)
    want_raw = torch.linalg.svdvals(z.double()) ** 2 / (z.shape[0] - 1)
    torch.testing.assert_close(embedding_spectrum(z, center=False), want_raw, rtol=1e-9, atol=1e-12)


def test_spectrum_of_a_known_covariance_is_recovered() -> None:
    """Samples of N(0, Q diag(lam) Q^T) with a random rotation Q: the spectrum converges to lam (sorted), with the
    sampling error of a covariance eigenvalue, about lam * sqrt(2 / N)."""
    g = torch.Generator().manual_seed(3)
    lam = torch.tensor([9.0, 4.0, 2.0, 1.0, 0.5, 0.1, 0.01, 0.001], dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=g, dtype=torch.float64))
    n = 50_000
    z = torch.randn(n, 8, generator=g, dtype=torch.float64) * lam.sqrt() @ q.T + 5.0
    eig = embedding_spectrum(z)
    torch.testing.assert_close(eig, lam, rtol=5 * math.sqrt(2 / n), atol=0.0)
    p = lam / lam.sum()
    assert effective_rank(z) == pytest.approx(math.exp(-float((p * p.log()).sum())), rel=0.02)


def test_isotropic_gaussian_has_full_effective_rank() -> None:
    z = torch.randn(20000, 16, generator=torch.Generator().manual_seed(1))
    assert effective_rank(z) == pytest.approx(16.0, rel=0.02)
    assert rank_at_threshold(z) == 16


@pytest.mark.parametrize("k", [1, 3, 5])
def test_rank_k_data(k: int) -> None:
    g = torch.Generator().manual_seed(k)
    z = (torch.randn(400, k, generator=g) @ torch.randn(k, 12, generator=g)).double()
    eig = embedding_spectrum(z)
    assert (eig[:k] > 1e-3).all()
    assert (eig[k:] < 1e-10 * eig[0]).all()
    assert rank_at_threshold(eig) == k
    assert 1.0 <= effective_rank(z) <= k + 1e-6


def test_effective_rank_closed_forms() -> None:
    assert effective_rank(torch.tensor([1.0, 1.0, 0.0, 0.0])) == pytest.approx(2.0)
    assert effective_rank(torch.tensor([5.0, 0.0, 0.0])) == pytest.approx(1.0)
    assert effective_rank(torch.full((7,), 0.3)) == pytest.approx(7.0)
    p = torch.tensor([4.0, 2.0, 1.0, 1.0]) / 8.0
    want = math.exp(-float((p * p.log()).sum()))  # = 2^(7/4)
    assert effective_rank(torch.tensor([4.0, 2.0, 1.0, 1.0])) == pytest.approx(want)
    assert want == pytest.approx(2**1.75)
    assert effective_rank(torch.zeros(4)) == 0.0
    assert effective_rank(torch.ones(10, 3)) == 0.0  # identical rows: a fully collapsed embedding


def test_rank_at_threshold_counts_strictly_above() -> None:
    eig = torch.tensor([1.0, 1e-3, 2e-4, 1e-4, 1e-5, 0.0])
    assert rank_at_threshold(eig) == 3
    assert rank_at_threshold(eig, rel=1e-2) == 1
    assert rank_at_threshold(torch.zeros(3)) == 0


def test_dead_units_are_counted_and_have_zero_eigenvalue() -> None:
    z = torch.randn(30, 5, generator=torch.Generator().manual_seed(2))
    z[:, 1] = 0.0
    z[:, 3] = 0.0
    z[0, 4] = 0.0  # zero on one row only: alive
    assert dead_units(z) == 2
    eig = embedding_spectrum(z)
    assert (eig[-2:] == 0).all() and (eig[:3] > 0).all()
    torch.testing.assert_close(eig[:3], embedding_spectrum(z[:, [0, 2, 4]]))
    z[:, 2] = 4.0  # constant: zero variance once centred
    assert embedding_spectrum(z)[-3:].eq(0).all() and dead_units(z) == 2
    z[:, 0] = 1e-9
    assert dead_units(z) == 2
    assert dead_units(z, atol=1e-8) == 3


@pytest.mark.parametrize("case", ["1_row", "3d", "nan", "negative_eigs", "rel", "ints"])
def test_bad_inputs_raise(case: str) -> None:
    with pytest.raises(ValueError):
        if case == "1_row":
            embedding_spectrum(torch.randn(1, 4))
        elif case == "3d":
            effective_rank(torch.randn(2, 3, 4))
        elif case == "nan":
            embedding_spectrum(torch.full((4, 3), float("nan")))
        elif case == "negative_eigs":
            effective_rank(torch.tensor([1.0, -0.5]))
        elif case == "rel":
            rank_at_threshold(torch.ones(3), rel=0.0)
        elif case == "ints":
            embedding_spectrum(torch.ones(4, 3, dtype=torch.long))
