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

* **forward**: for blocks of ``block`` anchors x ``block`` keys, ``E = exp(A_I K_J^T / tau - bound)`` (one GEMM with
  the scale and shift folded in, one in-place ``exp``), where ``bound >= |s_ij|`` comes from the row norms (``1/tau``
  for unit vectors), so ``E`` lies in ``[exp(-2 bound), 1]``; excluded pairs zeroed (self pairs are one diagonal of
  a block, O(block); same-label pairs a ``block x block`` bool, never N x M); row sums accumulated. With keys =
  anchors (one process) only the blocks ``I <= J`` are computed, each feeding the rows of ``I`` and, through its
  column sums, of ``J`` (``S`` is symmetric). Where ``2 bound`` is too large for the accumulation dtype
  (un-normalised inputs, tiny temperatures) a running max per row replaces the fixed shift;
* **backward**: with ``w = dL/dlse`` and ``G_ij = w_i exp(s_ij - lse_i)`` on the kept pairs, ``dA = G K / tau`` and
  ``dK = G^T A / tau``, each block of ``E`` recomputed; with keys = anchors ``dZ = (G + G^T) Z / tau`` and
  ``(G + G^T)_ij = E_ij (alpha_i + alpha_j)``, ``alpha_i = w_i exp(bound - lse_i)``: one exponential per block pair
  for both halves. A problem of a single block keeps its ``E`` instead. Memory: O(block^2 + (N + M) d), linear
  in N.

Under ``torch.autocast`` with bfloat16 (or float16) the GEMMs of a problem larger than one block run in that dtype
and everything else (the
log-sum-exp, the exponentials, the reductions, the positive term, the gradient accumulators) in float32; the
low-precision product is rounded before the shift, where its values are smallest. Float64
inputs stay float64 throughout (the tests compare against brute-force loops to 1e-10).

Dispatch: the same blocked code runs on the CPU and on CUDA (on CUDA its GEMMs are cuBLAS calls; a fused Triton
kernel is not written yet, and this path has not run on a GPU in this repository's tests).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["DEFAULT_BLOCK", "cross_view_mean_loss", "label_contrastive_losses", "row_logsumexp"]

DEFAULT_BLOCK = 512
_LOW_PRECISION = (torch.bfloat16, torch.float16)


def _gemm_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``device`` when autocast is on and asks for a low-precision GEMM, else None."""
    kind = device.type if device.type in ("cpu", "cuda") else None
    if kind is None or not torch.is_autocast_enabled(kind):
        return None
    dtype = torch.get_autocast_dtype(kind)
    return dtype if dtype in _LOW_PRECISION else None


def _label_mask(rows: slice, cols: slice, row_labels: Tensor | None, col_labels: Tensor | None) -> Tensor | None:
    """Bool ``[rows, cols]``: the same-label pairs of one block (``"negatives"`` leaves them out), or None."""
    if row_labels is None or col_labels is None:
        return None
    return row_labels[rows, None] == col_labels[None, cols]


def _self_diagonal(rows: slice, cols: slice, self_offset: int | None) -> int | None:
    """The diagonal offset of the self pairs ``(i, self_offset + i)`` inside a block, or None when it holds none."""
    if self_offset is None:
        return None
    offset = rows.start + self_offset - cols.start  # entry (r, r + offset) of the block is a self pair
    rows_n, cols_n = rows.stop - rows.start, cols.stop - cols.start
    return offset if -rows_n < offset < cols_n else None


def _drop(block: Tensor, rows: slice, cols: slice, self_offset: int | None, row_labels: Tensor | None,
          col_labels: Tensor | None, fill: float) -> None:  # fmt: skip
    """Set the excluded pairs of ``block`` to ``fill`` in place: self pairs (a diagonal, O(block)), same labels."""
    same = _label_mask(rows, cols, row_labels, col_labels)
    if same is not None:
        block.masked_fill_(same, fill)
    offset = _self_diagonal(rows, cols, self_offset)
    if offset is not None:
        block.diagonal(offset).fill_(fill)


def _logits(a: Tensor, k: Tensor, scale: float, shift: float, acc: torch.dtype) -> Tensor:
    """``scale a k^T - shift`` in ``acc``: one GEMM with the scale and shift folded in, or for a low-precision GEMM
    the unshifted product rounded once (its values are smaller than shifted ones, so rounding loses less) and then
    shifted in ``acc``."""
    if a.dtype == acc:
        return torch.addmm(a.new_full((), -shift), a, k.T, beta=1.0, alpha=scale)
    out = torch.mm(a, k.T).to(acc)
    return out.mul_(scale).sub_(shift) if shift else out.mul_(scale)


def _online_update(m: Tensor, s: Tensor, block: Tensor, dim: int) -> None:
    """Fold ``block`` (logits, -inf where excluded) into the running max ``m`` and sum ``s`` along ``dim``."""
    new_m = torch.maximum(m, block.amax(dim=dim))
    safe = torch.where(torch.isinf(new_m), torch.zeros_like(new_m), new_m)
    shift = safe[:, None] if dim == 1 else safe[None, :]
    s.mul_(torch.exp(m - safe)).add_(torch.exp(block - shift).sum(dim=dim))
    m.copy_(new_m)


def _pairs(n: int, m: int, block: int, symmetric: bool) -> list[tuple[slice, slice]]:
    """The block pairs to visit: all of them, or with keys = anchors those on and above the diagonal."""
    return [(slice(i, min(i + block, n)), slice(j, min(j + block, m)))
            for i in range(0, n, block) for j in range(i if symmetric else 0, m, block)]  # fmt: skip


# exp(-2 * bound) must stay a normal number of the accumulation dtype for the fixed shift to lose nothing
_SHIFT_LIMIT = {torch.float32: 80.0, torch.float64: 1400.0}


class _RowLogSumExp(torch.autograd.Function):
    """``lse_i = log sum_{j kept} exp(scale <a_i, k_j>)`` block by block (module docstring).

    With ``|scale <a_i, k_j>| <= bound`` (from the row norms) and ``2 bound`` below :data:`_SHIFT_LIMIT`, every
    exponential is taken with the fixed shift ``bound`` (``exp(s - bound)`` lies in ``[exp(-2 bound), 1]``): one GEMM
    with the shift folded in, one ``exp_``, row (and, symmetric, column) sums per block. Otherwise (un-normalised
    inputs, tiny temperatures) a running max per row keeps it exact.
    """

    @staticmethod
    def forward(ctx: Any, anchors: Tensor, keys: Tensor | None, scale: float, self_offset: int | None,
                row_labels: Tensor | None, col_labels: Tensor | None, block: int, columns: bool,
                unit: bool) -> Tensor:  # fmt: skip
        symmetric = keys is None
        k = anchors if keys is None else keys
        n, m_keys = anchors.shape[0], k.shape[0]
        col_base = 0 if symmetric else (n if columns else None)  # where the keys' (column) sums go, if anywhere
        pairs = _pairs(n, m_keys, block, symmetric)
        # a single block is a small GEMM: casting to the low precision would cost more than it saves (and lose digits)
        gemm = _gemm_dtype(anchors.device) if len(pairs) > 1 else None
        acc = anchors.dtype
        device_type = anchors.device.type if anchors.device.type in ("cpu", "cuda") else "cpu"
        with torch.no_grad(), torch.autocast(device_type, enabled=False):
            if unit:  # L2-normalised rows (the caller says so): |s| <= scale, up to rounding
                bound = scale
            else:
                a_norm = anchors.norm(dim=1).max()
                bound = float(scale * a_norm * (a_norm if symmetric else k.norm(dim=1).max()))
            fixed = 2.0 * bound < _SHIFT_LIMIT.get(acc, 80.0)
            a_g = anchors if gemm is None else anchors.to(gemm)
            k_g = a_g if symmetric else (k if gemm is None else k.to(gemm))
            saved = None
            if fixed:
                total = torch.zeros(n + (m_keys if col_base else 0), dtype=acc, device=anchors.device)
                for rows, cols in pairs:
                    e = _logits(a_g[rows], k_g[cols], scale, bound, acc).exp_()
                    _drop(e, rows, cols, self_offset, row_labels, col_labels, 0.0)
                    total[rows] += e.sum(dim=1)
                    if col_base is not None and not (symmetric and cols.start == rows.start):
                        total[col_base + cols.start : col_base + cols.stop] += e.sum(dim=0)  # the mirrored block
                lse = torch.log(total).add_(bound)
                if len(pairs) == 1:  # one block: keeping it costs what recomputing it would hold anyway
                    saved = e
            else:
                lse = _online_logsumexp(a_g, k_g, pairs, col_base, scale, self_offset, row_labels, col_labels, acc)
        ctx.save_for_backward(anchors, k, lse, row_labels, col_labels, saved)
        ctx.options = (symmetric, col_base, scale, self_offset, block, gemm, bound if fixed else None)
        return lse

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        """``dA = G K scale``, ``dK = G^T A scale`` with ``G_ij = w_i exp(s_ij - lse_i)`` on the kept pairs, plus
        the same with the columns' log-sum-exps where they are outputs too (keys = anchors: ``dZ = (G + G^T) Z
        scale``). With the fixed shift both halves come from one exponential per block:
        ``E_ij (alpha_i + beta_j)``, ``alpha_i = w_i exp(bound - lse_i)`` (rows), ``beta_j`` likewise (columns)."""
        anchors, k, lse, row_labels, col_labels, saved = ctx.saved_tensors
        symmetric, col_base, scale, self_offset, block, gemm, bound = ctx.options
        n, acc = anchors.shape[0], anchors.dtype
        finite = torch.isfinite(lse)
        w = torch.where(finite, grad.to(acc), torch.zeros_like(lse))  # rows with nothing kept: no gradient
        lse_safe = torch.where(finite, lse, torch.zeros_like(lse))
        a_g = anchors if gemm is None else anchors.to(gemm)
        k_g = a_g if symmetric else (k if gemm is None else k.to(gemm))
        d_a = torch.zeros_like(anchors)
        d_k = d_a if symmetric else torch.zeros_like(k)
        alpha = None if bound is None else w * torch.exp(bound - lse_safe)

        def accumulate(out: Tensor, g: Tensor, other: Tensor) -> None:  # out += scale g other, in acc
            if gemm is None:
                out.addmm_(g, other, alpha=scale)
            else:
                out.add_(g.to(gemm) @ other, alpha=scale)

        for rows, cols in _pairs(n, k.shape[0], block, symmetric):
            diagonal = symmetric and cols.start == rows.start
            by_col = None if col_base is None else slice(col_base + cols.start, col_base + cols.stop)
            if alpha is not None:  # the kept block of the forward pass, or the block recomputed
                factor = alpha[rows, None] if by_col is None else alpha[rows, None] + alpha[None, by_col]
                g = saved * factor if saved is not None else _logits(a_g[rows], k_g[cols], scale, bound, acc).exp_()
                if saved is None:
                    g.mul_(factor)
            else:
                logits = _logits(a_g[rows], k_g[cols], scale, 0.0, acc)
                g = torch.exp(logits - lse_safe[rows, None]).mul_(w[rows, None])
                if by_col is not None:
                    g.add_(torch.exp(logits - lse_safe[None, by_col]).mul_(w[None, by_col]))
            _drop(g, rows, cols, self_offset, row_labels, col_labels, 0.0)
            accumulate(d_a[rows], g, k_g[cols])
            if not diagonal:
                accumulate(d_k[cols], g.T, a_g[rows])
        return d_a, (None if symmetric else d_k), None, None, None, None, None, None, None


def _online_logsumexp(a_g: Tensor, k_g: Tensor, pairs: list[tuple[slice, slice]], col_base: int | None, scale: float,
                      self_offset: int | None, row_labels: Tensor | None, col_labels: Tensor | None,
                      acc: torch.dtype) -> Tensor:  # fmt: skip
    """The forward of :class:`_RowLogSumExp` with a running max and sum per row (and column), for logits with no
    useful bound."""
    n, device = a_g.shape[0] + (k_g.shape[0] if col_base else 0), a_g.device
    run_max = torch.full((n,), float("-inf"), dtype=acc, device=device)
    run_sum = torch.zeros(n, dtype=acc, device=device)
    for rows, cols in pairs:
        logits = _logits(a_g[rows], k_g[cols], scale, 0.0, acc)
        _drop(logits, rows, cols, self_offset, row_labels, col_labels, float("-inf"))
        _online_update(run_max[rows], run_sum[rows], logits, dim=1)
        if col_base is not None and not (col_base == 0 and cols.start == rows.start):  # the mirrored block
            by_col = slice(col_base + cols.start, col_base + cols.stop)
            _online_update(run_max[by_col], run_sum[by_col], logits, dim=0)
    return run_max + torch.log(run_sum)


def row_logsumexp(
    anchors: Tensor,
    keys: Tensor | None,
    scale: float,
    *,
    self_offset: int | None = None,
    row_labels: Tensor | None = None,
    col_labels: Tensor | None = None,
    block: int = DEFAULT_BLOCK,
    columns: bool = False,
) -> Tensor:
    """``lse_i = log sum_j exp(scale <a_i, k_j>)`` over the kept keys, ``[N]``, differentiable, O(block^2) memory.

    ``columns`` (with ``keys``): also every key's log-sum-exp over the anchors, ``[N + M]`` (rows first), from the
    same blocks: the two directions of a symmetric cross-view loss for the price of one.

    ``keys=None`` means ``keys = anchors`` (the symmetric path); a pair ``(i, j)`` is left out when ``j ==
    self_offset + i`` or ``row_labels[i] == col_labels[j]`` (both optional). Rows with nothing kept give -inf and no
    gradient. Inputs are used as given (normalise first for cosine logits); half-precision inputs are computed in
    float32.
    """
    dtype = torch.promote_types(anchors.dtype, torch.float32)
    a = anchors.to(dtype)
    k = None if keys is None else keys.to(dtype)
    return _RowLogSumExp.apply(a, k, float(scale), self_offset, row_labels, col_labels, int(block), columns, False)


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
    partners: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-anchor losses ``[N]`` (0 where invalid) and validity ``[N]`` of the module docstring's loss.

    ``keys=None``: the keys are the anchors (one process; the symmetric path), with ``key_labels = anchor_labels``
    and ``self_offset = 0``. Otherwise ``keys`` ``[M, d]`` with ``key_labels`` ``[M]``, and anchor ``i``'s own row
    in them at ``self_offset + i`` (None: the anchors are not among the keys). ``denominator``: ``"all"`` or
    ``"negatives"``. Labels may be any integers. ``partners`` ``[N]``: when every anchor has exactly one positive
    (the other view of its sample, cross-view's key of the same index), its row in the keys; the positive term is
    then one gathered dot product per anchor. An anchor is valid with >= 1 positive (and, for ``"negatives"``, >= 1
    negative).
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
                              int(block), False, normalize)  # fmt: skip
    if partners is not None:  # one positive per anchor: its logit directly
        valid = torch.isfinite(lse) if exclude_labels else torch.ones_like(lse, dtype=torch.bool)
        positive = (a * k.index_select(0, partners)).sum(dim=1) / temperature
        return torch.where(valid, lse - positive, torch.zeros_like(lse)), valid
    # positive term: the keys summed by label (made compact), minus the anchor's own row
    ids, inverse = torch.unique(torch.cat([anchor_labels, labels_k]), return_inverse=True)
    num_labels, row_ids, col_ids = ids.shape[0], inverse[: a.shape[0]], inverse[a.shape[0] :]
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


def cross_view_mean_loss(
    z1: Tensor, z2: Tensor, temperature: float, *, normalize: bool = True, block: int = DEFAULT_BLOCK
) -> Tensor:
    """The symmetric cross-view InfoNCE (one process) from one pass over the blocks of ``S = u1 u2^T / tau``:
    ``L_12_i = logsumexp_j S_ij - S_ii`` (rows), ``L_21_j = logsumexp_i S_ij - S_jj`` (columns) and
    ``(mean L_12 + mean L_21) / 2 = (sum of the 2B log-sum-exps - 2 sum_i S_ii) / 2B``, a scalar."""
    dtype = torch.promote_types(z1.dtype, torch.float32)
    u1, u2 = z1.to(dtype), z2.to(dtype)
    if normalize:
        u1, u2 = F.normalize(u1, dim=1), F.normalize(u2, dim=1)
    lse = _RowLogSumExp.apply(u1, u2, 1.0 / temperature, None, None, None, int(block), True, normalize)
    return (lse.sum() - (u1 * u2).sum() * (2.0 / temperature)) / lse.shape[0]
