"""Embedding spectrum, effective rank and dead units: the dimensional-collapse metrics of DirectCLR.

For embeddings ``z`` ``[N, D]`` with column mean ``mu``:

* covariance ``C = (z - mu)^T (z - mu) / (N - 1)`` ``[D, D]``; its eigenvalues
  ``lambda_1 >= ... >= lambda_D >= 0`` equal the squared singular values of ``z - mu`` divided by ``N - 1``
  (Jing et al., ICLR 2022, "Understanding Dimensional Collapse in Contrastive Self-supervised Learning",
  Sec. 3 / Fig. 2: the log spectrum);
* effective rank ``erank = exp(H(p))``, ``p_k = lambda_k / sum_j lambda_j``, ``H(p) = -sum_k p_k log p_k``
  with ``0 log 0 = 0`` (Roy & Vetterli, EUSIPCO 2007; RankMe, Garrido et al., ICML 2023). It lies in
  ``[1, rank(C)]``: ``D`` for an isotropic spectrum, ``k`` for ``k`` equal non-zero eigenvalues;
* ``rank_at_threshold``: ``#{k : lambda_k > rel * lambda_1}`` (DirectCLR counts the rest, ``D`` minus this, as
  collapsed with ``rel = 1e-4``);
* ``dead_units``: columns of ``z`` that are zero on every row (their eigenvalue is 0).

All spectra are computed in float64 with ``torch.linalg.eigvalsh`` on the input's device.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from contrastkit._checks import check_positive, check_tensor

__all__ = ["embedding_spectrum", "effective_rank", "rank_at_threshold", "dead_units"]


def embedding_spectrum(z: Tensor, center: bool = True) -> Tensor:
    """Eigenvalues ``[D]`` (float64, descending, clamped at 0) of the covariance of ``z`` ``[N, D]``, N >= 2.

    ``center=False`` uses the uncentred second moment ``z^T z / (N - 1)`` instead. A column that is
    identically zero (after centring) contributes an eigenvalue of exactly 0. L2-normalise ``z`` first to
    reproduce the DirectCLR protocol (it measures the normalised embedding).
    """
    check_tensor("z", z, 2, min_rows=2, floating=True)
    x = z.detach().to(torch.float64)
    if center:
        x = x - x.mean(dim=0, keepdim=True)
    # Columns that are identically 0 (dead, or constant once centred) give exact zero eigenvalues; leave them
    # out of eigvalsh so round-off cannot turn them into 1e-17.
    live = (x != 0).any(dim=0)  # [D]
    eigenvalues = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
    if bool(live.any()):
        x_live = x[:, live]
        cov = x_live.T @ x_live / (x.shape[0] - 1)  # [D_live, D_live]
        eigenvalues[: x_live.shape[1]] = torch.linalg.eigvalsh(cov).flip(0).clamp_min(0.0)  # descending
    return eigenvalues


def _eigenvalues(z_or_eigenvalues: Tensor, name: str) -> Tensor:
    """1-D input = eigenvalues (must be >= 0 up to round-off); 2-D input = embeddings ``[N, D]``."""
    check_tensor(name, z_or_eigenvalues, (1, 2), floating=True)
    if z_or_eigenvalues.ndim == 2:
        return embedding_spectrum(z_or_eigenvalues)
    eig = z_or_eigenvalues.detach().to(torch.float64)
    if eig.numel() == 0:
        raise ValueError(f"{name} is empty; pass the eigenvalues [D] or the embeddings [N, D]")
    scale = float(eig.abs().max())
    if float(eig.min()) < -1e-9 * max(scale, 1e-300):
        raise ValueError(
            f"{name} has negative eigenvalues (min {float(eig.min()):.3g}); pass a covariance spectrum"
        )
    return eig.clamp_min(0.0)


def effective_rank(z_or_eigenvalues: Tensor) -> float:
    """``exp(-sum_k p_k log p_k)`` with ``p = lambda / sum(lambda)``, zero eigenvalues contributing 0.

    Args:
        z_or_eigenvalues: embeddings ``[N, D]`` (centred covariance spectrum) or eigenvalues ``[D]``.

    Returns:
        A float in ``[1, D]``; ``0.0`` by convention when every eigenvalue is 0 (all rows identical).
    """
    eig = _eigenvalues(z_or_eigenvalues, "z_or_eigenvalues")
    total = eig.sum()
    if float(total) <= 0.0:
        return 0.0
    p = eig / total
    p = p[p > 0]
    entropy = -(p * p.log()).sum()
    return float(math.exp(float(entropy)))


def rank_at_threshold(z_or_eigenvalues: Tensor, rel: float = 1e-4) -> int:
    """Number of eigenvalues strictly above ``rel * max(lambda)`` (0 when all are 0).

    Args:
        z_or_eigenvalues: embeddings ``[N, D]`` or eigenvalues ``[D]``.
        rel: relative threshold ``> 0``.
    """
    check_positive("rel", rel)
    eig = _eigenvalues(z_or_eigenvalues, "z_or_eigenvalues")
    top = float(eig.max())
    if top <= 0.0:
        return 0
    return int((eig > rel * top).sum())


def dead_units(z: Tensor, atol: float = 0.0) -> int:
    """Number of columns of ``z`` ``[N, D]`` with ``|z_ik| <= atol`` on every row (exactly 0 by default)."""
    check_tensor("z", z, 2, min_rows=1)
    if not isinstance(atol, (int, float)) or not math.isfinite(atol) or atol < 0:
        raise ValueError(f"atol must be a finite number >= 0, got {atol!r}")
    return int((z.detach().abs() <= atol).all(dim=0).sum())
