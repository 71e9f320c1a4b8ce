r"""Plain references of the batch-contrastive losses, written the way a user writes them: one full logit matrix,
``masked_fill`` and ``F.cross_entropy`` / ``torch.logsumexp``. ``benchmarks/loss_kernels.py`` times contrastkit
against them; ``tests/test_loss_benchmark.py`` checks in float64 that they equal contrastkit's functions.

With ``u = normalize(cat(z1, z2))`` [2B, d], ``s_ij = <u_i, u_j> / tau`` and ``p(i) = (i + B) mod 2B`` (the
other view of the same sample):

* NT-Xent (Chen et al., ICML 2020, eq. 1): ``loss_i = -s_{i p(i)} + log sum_{k != i} exp(s_ik)``, mean over 2B;
* DCL (Yeh et al., ECCV 2022): the same without the positive in the denominator (``k not in {i, p(i)}``);
* SupCon L_out (Khosla et al., NeurIPS 2020, eq. 2) on features [N, d] with labels [N], ``P(i)`` the other rows
  of i's class: ``loss_i = log sum_{k != i} exp(s_ik) - (1/|P(i)|) sum_{p in P(i)} s_ip``, mean over the anchors
  with ``|P(i)| >= 1`` (no base-temperature scaling);
* cross-view InfoNCE (Jing et al., ICLR 2022, DirectCLR): ``S = normalize(z1) normalize(z2)^T / tau`` [B, B],
  ``(CE(S, arange(B)) + CE(S^T, arange(B))) / 2``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["reference_cross_view", "reference_dcl", "reference_nt_xent", "reference_supcon"]


def _two_view_logits(z1: Tensor, z2: Tensor, temperature: float) -> tuple[Tensor, Tensor, Tensor]:
    """Logits [2B, 2B] of ``cat(z1, z2)``, the self mask [2B, 2B] and the index of each row's other view [2B]."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / temperature
    self_mask = torch.eye(z.shape[0], dtype=torch.bool, device=z.device)
    other_view = torch.arange(z.shape[0], device=z.device).roll(z1.shape[0])  # (i + B) mod 2B
    return logits, self_mask, other_view


def reference_nt_xent(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """NT-Xent of two views [B, d]: cross-entropy of the self-masked logits with the other view as target."""
    logits, self_mask, other_view = _two_view_logits(z1, z2, temperature)
    return F.cross_entropy(logits.masked_fill(self_mask, float("-inf")), other_view)


def reference_dcl(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """DCL of two views [B, d]: NT-Xent with the positive masked out of the denominator too."""
    logits, self_mask, other_view = _two_view_logits(z1, z2, temperature)
    positive_mask = F.one_hot(other_view, logits.shape[0]).bool()
    positive = logits.gather(1, other_view[:, None]).squeeze(1)
    negatives = logits.masked_fill(self_mask | positive_mask, float("-inf"))
    return (torch.logsumexp(negatives, dim=1) - positive).mean()


def reference_supcon(features: Tensor, labels: Tensor, temperature: float) -> Tensor:
    """SupCon L_out of features [N, d] with labels [N], averaged over the anchors that have a positive."""
    z = F.normalize(features, dim=1)
    logits = z @ z.T / temperature
    self_mask = torch.eye(z.shape[0], dtype=torch.bool, device=z.device)
    log_denominator = torch.logsumexp(logits.masked_fill(self_mask, float("-inf")), dim=1, keepdim=True)
    positives = (labels[:, None] == labels[None, :]) & ~self_mask
    n_positives = positives.sum(dim=1)
    has_positive = n_positives > 0
    mean_log_prob = ((logits - log_denominator) * positives).sum(dim=1)[has_positive] / n_positives[has_positive]
    return -mean_log_prob.mean()


def reference_cross_view(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """Symmetric cross-view InfoNCE of two views [B, d] (positives on the diagonal of z1 z2^T)."""
    logits = F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).T / temperature
    targets = torch.arange(z1.shape[0], device=z1.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
