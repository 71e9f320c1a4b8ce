"""Weighted k-nearest-neighbour classifier on frozen features (Wu et al., CVPR 2018, "InstDisc").

The protocol (defaults k = 200, T = 0.1):

1. L2-normalise train features ``f_j`` ``[N, D]`` and test features ``q_i`` ``[M, D]``;
2. cosine similarity ``s_ij = q_i . f_j``; keep the ``k`` most similar train rows ``N_k(i)``;
3. weight each neighbour by ``w_ij = exp(s_ij / T)``;
4. class score ``score_ic = sum_{j in N_k(i), y_j = c} w_ij``; prediction ``argmax_c score_ic``.

Rows of test features are processed in chunks, so memory is ``O(chunk_size * N)`` rather than ``O(M * N)``.
``k > N`` is clipped to ``N``. Ties in the class score go to the smallest class id (``torch.argmax``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from contrastkit._checks import check_labels, check_positive, check_tensor

__all__ = ["knn_scores", "knn_predict", "knn_accuracy"]


def _check_positive_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _resolve_num_classes(train_labels: Tensor, num_classes: int | None) -> int:
    if num_classes is None:
        return int(train_labels.max()) + 1
    return _check_positive_int("num_classes", num_classes)


def knn_scores(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    k: int = 200,
    temperature: float = 0.1,
    num_classes: int | None = None,
    chunk_size: int = 1024,
) -> Tensor:
    """Normalised weighted-kNN class scores ``p_ic = score_ic / sum_c' score_ic'`` ``[M, C]`` (rows sum to 1).

    The weights are computed as ``exp((s_ij - s_i,max) / T)``: the per-row shift cancels in the normalisation
    and keeps small temperatures from overflowing, so ``p`` equals the InstDisc vote shares exactly.

    Args:
        train_features: ``[N, D]`` floating point, ``N >= 1``.
        train_labels: ``[N]`` integer class ids in ``[0, num_classes)``.
        test_features: ``[M, D]`` floating point (moved to the train features' device).
        k: neighbours per query (> 0; clipped to ``N``).
        temperature: ``T > 0`` of the weights ``exp(s / T)``.
        num_classes: ``C``; ``None`` uses ``max(train_labels) + 1``.
        chunk_size: test rows per similarity block.

    Returns:
        ``[M, C]`` scores in the train features' dtype and device.
    """
    check_tensor("train_features", train_features, 2, min_rows=1, floating=True)
    check_tensor("test_features", test_features, 2, floating=True)
    if train_features.shape[1] != test_features.shape[1]:
        raise ValueError(
            f"train_features dim {train_features.shape[1]} != test_features dim {test_features.shape[1]}; "
            "embed both with the same model"
        )
    check_labels("train_labels", train_labels, train_features.shape[0])
    n_classes = _resolve_num_classes(train_labels, num_classes)
    check_labels("train_labels", train_labels, train_features.shape[0], n_classes)
    _check_positive_int("k", k)
    check_positive("temperature", temperature)
    _check_positive_int("chunk_size", chunk_size)

    device = train_features.device
    bank = F.normalize(train_features, dim=1)  # [N, D]
    labels = train_labels.to(device=device, dtype=torch.long)
    queries = test_features.to(device=device, dtype=bank.dtype)
    k_eff = min(k, bank.shape[0])
    out = torch.empty(queries.shape[0], n_classes, dtype=bank.dtype, device=device)
    for start in range(0, queries.shape[0], chunk_size):
        q = F.normalize(queries[start : start + chunk_size], dim=1)  # [B, D]
        sim = q @ bank.T  # [B, N]
        top_sim, top_idx = sim.topk(k_eff, dim=1)  # [B, k], sorted descending
        weights = ((top_sim - top_sim[:, :1]) / temperature).exp()  # [B, k], first entry is 1
        scores = torch.zeros(q.shape[0], n_classes, dtype=bank.dtype, device=device)
        scores.scatter_add_(1, labels[top_idx], weights)
        out[start : start + chunk_size] = scores / scores.sum(dim=1, keepdim=True)
    return out


def knn_predict(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    k: int = 200,
    temperature: float = 0.1,
    num_classes: int | None = None,
    chunk_size: int = 1024,
) -> Tensor:
    """Weighted-kNN predictions ``argmax_c score_ic`` as a ``LongTensor [M]``; see :func:`knn_scores`."""
    scores = knn_scores(train_features, train_labels, test_features, k, temperature, num_classes, chunk_size)
    return scores.argmax(dim=1)


def knn_accuracy(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    k: int = 200,
    temperature: float = 0.1,
    num_classes: int | None = None,
    chunk_size: int = 1024,
) -> float:
    """Top-1 accuracy in ``[0, 1]`` of :func:`knn_predict` against ``test_labels`` ``[M]`` (``M >= 1``)."""
    check_tensor("test_features", test_features, 2, min_rows=1, floating=True)
    check_labels("test_labels", test_labels, test_features.shape[0])
    pred = knn_predict(train_features, train_labels, test_features, k, temperature, num_classes, chunk_size)
    return float((pred.cpu() == test_labels.cpu().long()).double().mean())
