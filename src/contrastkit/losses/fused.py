r"""The fused, blocked path of the label-structured contrastive losses (NT-Xent, SupCon, DCL, cross-view InfoNCE,
GRACE): no ``N x M`` matrix, no float mask, blocks recomputed in the backward pass.

Every such loss has, for anchor ``i`` (unit vector ``a_i``) against keys ``k_j`` with ``s_ij = <a_i, k_j> / tau``,
positives ``P(i) = {j : y_j = y_i, j != self(i)}`` given by labels ``y`` and a denominator ``D(i)``: every key but
``self(i)`` (``"all"``: NT-Xent, SupCon L_out, cross-view InfoNCE) or the keys of another label (``"negatives"``:
DCL)::

    loss_i = logsumexp_{j in D(i)} s_ij  -  (1/|P(i)|) sum_{p in P(i)} s_ip

The second term is linear in the keys: ``a_i . (sum of the keys of label y_i, minus self) / (tau |P(i)|)``, one
scatter-add of the keys by label, O((N + M) d). Only the first term needs every pair, and :class:`_RowLogSumExp`
computes it block by block:

* **forward**: for blocks of ``block`` anchors x ``block`` keys, ``S = A_I K_J^T / tau`` (one GEMM), excluded pairs
  set to -inf from index and label comparisons of the block (a ``block x block`` bool, never N x M), and a running
  (online) log-sum-exp per row; with keys = anchors (one process) only the blocks ``I <= J`` are computed, each
  feeding the rows of ``I`` and, transposed, of ``J`` (``S`` is symmetric);
* **backward**: with ``w = dL/dlse`` and ``G_ij = w_i exp(s_ij - lse_i)`` on the kept pairs, ``dA = G K / tau`` and
  ``dK = G^T A / tau``, the blocks of ``S`` recomputed; with keys = anchors ``dZ = (G + G^T) Z / tau``, both
  halves of a block pair from one recomputed ``S``. Memory: O(block^2 + (N + M) d), linear in N.

Under ``torch.autocast`` with bfloat16 (or float16) the GEMMs run in that dtype and everything else (the
log-sum-exp, the exponentials, the reductions, the positive term, the gradient accumulators) in float32. Float64
inputs stay float64 throughout (the tests compare against brute-force loops to 1e-10).

Dispatch: the same blocked code runs on the CPU and on CUDA (on CUDA its GEMMs are cuBLAS calls; a fused Triton
kernel is not written yet, and this path has not run on a GPU in this repository's tests).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["DEFAULT_BLOCK", "label_contrastive_losses", "row_logsumexp"]

DEFAULT_BLOCK = 512
_LOW_PRECISION = (torch.bfloat16, torch.float16)


def _gemm_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``device`` when autocast is on and asks for a low-precision GEMM, else None."""
    kind = device.type if device.type in ("cpu", "cuda") else None
    if kind is None or not torch.is_autocast_enabled(kind):
        return None
    dtype = torch.get_autocast_dtype(kind)
    return dtype if dtype in _LOW_PRECISION else None


def _excluded(rows: slice, cols: slice, self_offset: int | None, row_labels: Tensor | None,
              col_labels: Tensor | None, device: torch.device) -> Tensor | None:  # fmt: skip
    """Bool ``[rows, cols]`` of the excluded pairs of one block (self pairs, same-label pairs), None when none."""
    mask = None
    if row_labels is not None and col_labels is not None:
        mask = row_labels[rows, None] == col_labels[None, cols]
    if self_offset is not None:
        first, last = rows.start + self_offset, rows.stop + self_offset  # self columns of these rows
        if first < cols.stop and cols.start < last:
            r = torch.arange(rows.start, rows.stop, device=device) + self_offset
            c = torch.arange(cols.start, cols.stop, device=device)
            hit = r[:, None] == c[None, :]
            mask = hit if mask is None else mask | hit
    return mask


def _online_update(m: Tensor, s: Tensor, block: Tensor, dim: int) -> None:
    """Fold ``block`` (logits, -inf where excluded) into the running max ``m`` and sum ``s`` along ``dim``."""
    new_m = torch.maximum(m, block.amax(dim=dim))
    safe = torch.where(torch.isinf(new_m), torch.zeros_like(new_m), new_m)
    shift = safe[:, None] if dim == 1 else safe[None, :]
    s.mul_(torch.exp(m - safe)).add_(torch.exp(block - shift).sum(dim=dim))
    m.copy_(new_m)


def _blocked_logsumexp(a_g: Tensor, k_g: Tensor, symmetric: bool, scale: float, self_offset: int | None,
                       row_labels: Tensor | None, col_labels: Tensor | None, block: int, acc: torch.dtype) -> Tensor:
    """The forward of :class:`_RowLogSumExp` over blocks with a running max and sum per row (module docstring)."""
    n, m_keys, device = a_g.shape[0], k_g.shape[0], a_g.device
    run_max = torch.full((n,), float("-inf"), dtype=acc, device=device)
    run_sum = torch.zeros(n, dtype=acc, device=device)
    for i0 in range(0, n, block):
        rows = slice(i0, min(i0 + block, n))
        for j0 in range(i0 if symmetric else 0, m_keys, block):
            cols = slice(j0, min(j0 + block, m_keys))
            logits = (a_g[rows] @ k_g[cols].T).to(acc).mul_(scale)
            excluded = _excluded(rows, cols, self_offset, row_labels, col_labels, device)
            if excluded is not None:
                logits.masked_fill_(excluded, float("-inf"))
            _online_update(run_max[rows], run_sum[rows], logits, dim=1)
            if symmetric and j0 != i0:  # the mirrored block (J, I) is logits^T: fold it into the rows of J
                _online_update(run_max[cols], run_sum[cols], logits, dim=0)
    return run_max + torch.log(run_sum)


class _RowLogSumExp(torch.autograd.Function):
    """``lse_i = log sum_{j kept} exp(<a_i, k_j> * scale)`` block by block (module docstring)."""

    @staticmethod
    def forward(ctx: Any, anchors: Tensor, keys: Tensor | None, scale: float, self_offset: int | None,
                row_labels: Tensor | None, col_labels: Tensor | None, block: int) -> Tensor:  # fmt: skip
        symmetric = keys is None
        k = anchors if keys is None else keys
        gemm = _gemm_dtype(anchors.device)
        device_type = anchors.device.type if anchors.device.type in ("cpu", "cuda") else "cpu"
        with torch.autocast(device_type, enabled=False):
            a_g = anchors if gemm is None else anchors.to(gemm)
            k_g = a_g if symmetric else (k if gemm is None else k.to(gemm))
            n, m_keys = anchors.shape[0], k.shape[0]
            acc = anchors.dtype
            if n <= block and m_keys <= block:  # one block: a plain masked log-sum-exp (the small-batch case)
                logits = (a_g @ k_g.T).to(acc).mul_(scale)
                everything = (slice(0, n), slice(0, m_keys))
                excluded = _excluded(*everything, self_offset, row_labels, col_labels, anchors.device)
                if excluded is not None:
                    logits.masked_fill_(excluded, float("-inf"))
                lse = torch.logsumexp(logits, dim=1)
            else:
                lse = _blocked_logsumexp(a_g, k_g, symmetric, scale, self_offset, row_labels, col_labels, block, acc)
        ctx.save_for_backward(anchors, k, lse, row_labels, col_labels)
        ctx.options = (symmetric, scale, self_offset, block, gemm)
        return lse

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        anchors, k, lse, row_labels, col_labels = ctx.saved_tensors
        symmetric, scale, self_offset, block, gemm = ctx.options
        n, m_keys = anchors.shape[0], k.shape[0]
        acc = anchors.dtype
        w = grad.to(acc)
        w = torch.where(torch.isinf(lse), torch.zeros_like(w), w)  # rows with nothing kept: no gradient
        lse_safe = torch.where(torch.isinf(lse), torch.zeros_like(lse), lse)
        a_g = anchors if gemm is None else anchors.to(gemm)
        k_g = a_g if symmetric else (k if gemm is None else k.to(gemm))
        d_a = torch.zeros_like(anchors)
        d_k = d_a if symmetric else torch.zeros_like(k)

        def mm(x: Tensor, y: Tensor) -> Tensor:  # x [p, q] float, y [q, d] (gemm dtype): x y in acc dtype
            return (x if gemm is None else x.to(gemm)).matmul(y).to(acc)

        for i0 in range(0, n, block):
            rows = slice(i0, min(i0 + block, n))
            for j0 in range(i0 if symmetric else 0, m_keys, block):
                cols = slice(j0, min(j0 + block, m_keys))
                logits = (a_g[rows] @ k_g[cols].T).to(acc).mul_(scale)
                excluded = _excluded(rows, cols, self_offset, row_labels, col_labels, anchors.device)
                g = torch.exp(logits - lse_safe[rows, None]).mul_(w[rows, None])
                if symmetric:
                    if j0 == i0:
                        g = g + torch.exp(logits - lse_safe[None, cols]).mul_(w[None, cols])
                    else:
                        g.add_(torch.exp(logits - lse_safe[None, cols]).mul_(w[None, cols]))
                if excluded is not None:
                    g.masked_fill_(excluded, 0.0)
                d_a[rows] += mm(g, k_g[cols]).mul_(scale)
                if not (symmetric and j0 == i0):
                    d_k[cols] += mm(g.T, a_g[rows]).mul_(scale)
        return d_a, (None if symmetric else d_k), None, None, None, None, None


def row_logsumexp(
    anchors: Tensor,
    keys: Tensor | None,
    scale: float,
    *,
    self_offset: int | None = None,
    row_labels: Tensor | None = None,
    col_labels: Tensor | None = None,
    block: int = DEFAULT_BLOCK,
) -> Tensor:
    """``lse_i = log sum_j exp(scale <a_i, k_j>)`` over the kept keys, ``[N]``, differentiable, O(block^2) memory.

    ``keys=None`` means ``keys = anchors`` (the symmetric path); a pair ``(i, j)`` is left out when ``j ==
    self_offset + i`` or ``row_labels[i] == col_labels[j]`` (both optional). Rows with nothing kept give -inf and no
    gradient. Inputs are used as given (normalise first for cosine logits); half-precision inputs are computed in
    float32.
    """
    dtype = torch.promote_types(anchors.dtype, torch.float32)
    a = anchors.to(dtype)
    k = None if keys is None else keys.to(dtype)
    return _RowLogSumExp.apply(a, k, float(scale), self_offset, row_labels, col_labels, int(block))


def label_contrastive_losses(
    anchors: Tensor,
    keys: Tensor | None,
    anchor_labels: Tensor,
    key_labels: Tensor | None,
    temperature: float,
    *,
    self_offset: int | None,
    denominator: str = "all",
    normalize: bool = True,
    block: int = DEFAULT_BLOCK,
    num_labels: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-anchor losses ``[N]`` (0 where invalid) and validity ``[N]`` of the module docstring's loss.

    ``keys=None``: the keys are the anchors (one process; the symmetric path), with ``key_labels = anchor_labels``
    and ``self_offset = 0``. Otherwise ``keys`` ``[M, d]`` with ``key_labels`` ``[M]``, and anchor ``i``'s own row
    in them at ``self_offset + i`` (None: the anchors are not among the keys). ``denominator``: ``"all"`` or
    ``"negatives"``. ``num_labels``: the labels already lie in ``[0, num_labels)`` (else they are made compact with
``torch.unique``). An anchor is valid with >= 1 positive (and, for ``"negatives"``, >= 1 negative).
    """
    dtype = torch.promote_types(anchors.dtype, torch.float32)
    a = anchors.to(dtype)
    k = a if keys is None else keys.to(dtype)
    if normalize:
        a = F.normalize(a, dim=1)
        k = a if keys is None else F.normalize(k, dim=1)
    labels_k = anchor_labels if keys is None else key_labels
    assert labels_k is not None
    offset = 0 if keys is None else self_offset
    exclude_labels = denominator == "negatives"
    lse = _RowLogSumExp.apply(a, None if keys is None else k, 1.0 / temperature, None if exclude_labels else offset,
                              anchor_labels if exclude_labels else None, labels_k if exclude_labels else None,
                              int(block))  # fmt: skip
    # positive term: the keys summed by label, minus the anchor's own row (labels made compact unless they are)
    if num_labels is None:
        ids, inverse = torch.unique(torch.cat([anchor_labels, labels_k]), return_inverse=True)
        num_labels, row_ids, col_ids = ids.shape[0], inverse[: a.shape[0]], inverse[a.shape[0] :]
    else:
        row_ids, col_ids = anchor_labels, labels_k
    sums = torch.zeros(num_labels, k.shape[1], dtype=k.dtype, device=k.device).index_add_(0, col_ids, k)
    positive_sum = sums.index_select(0, row_ids)
    positives = torch.bincount(col_ids, minlength=num_labels).index_select(0, row_ids)
    if offset is not None:
        positive_sum = positive_sum - k.narrow(0, offset, a.shape[0])
        positives = positives - 1
    valid = positives > 0
    if exclude_labels:
        valid = valid & torch.isfinite(lse)
    mean_positive = (a * positive_sum).sum(dim=1) / (temperature * positives.clamp(min=1).to(a.dtype))
    loss = torch.where(valid, lse - mean_positive, torch.zeros_like(lse))
    return loss, valid
