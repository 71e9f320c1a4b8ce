"""Rank utilities and a gradient-exact all-gather for batch-contrastive losses under DDP.

The pattern: with ``W`` ranks, rank ``r`` holds
a local batch ``z_r`` of ``n_r`` rows. A loss computes its LOCAL anchors (rows) against the GLOBAL keys
(columns) ``cat(z_0, ..., z_{W-1})`` obtained with :func:`gather_with_grad`:

* forward: ``all_gather`` of ``z_r.contiguous()``, concatenated in rank order, so rows
  ``[rank_offset(n_r), rank_offset(n_r) + n_r)`` of the result are this rank's own rows;
* backward: the incoming gradient ``[sum_r n_r, d]`` is ``all_reduce(SUM)``-ed over ranks and this rank's
  slice is returned, i.e. rank ``r`` receives ``sum_{r'} dL_{r'}/dz_r``.

If the loss on rank ``r`` is ``L_r`` and the global objective is ``L = (1/W) sum_r L_r``, DDP's gradient
averaging then yields exactly ``dL/dtheta`` (the single-process gradient of the global-batch loss). Returning
only the own slice without the all_reduce loses the cross-rank terms (the gradients that the other ranks'
anchors send to this rank's rows), so the gradient is no longer that of the global-batch loss.

Local batches may have different sizes on different ranks: sizes are exchanged first and tensors are padded to
the largest one for the collective, then trimmed. Every function here is a no-op when ``torch.distributed`` is
not initialised (or the world has one rank), so single-process code needs no branches.
All collectives must be called by every rank in the same order.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "all_reduce_sum",
    "all_reduce_with_grad",
    "broadcast_from_zero",
    "gather_no_grad",
    "gather_with_grad",
    "is_collective_failure",
    "is_distributed",
    "local_sizes",
    "rank",
    "rank_offset",
    "unresponsive_ranks",
    "world_size",
]


def is_distributed() -> bool:
    """True when ``torch.distributed`` is available and a default process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Number of ranks in the default process group (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """Rank of this process in the default process group (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def _active() -> bool:
    return is_distributed() and dist.get_world_size() > 1


def local_sizes(local_n: int, device: torch.device | str = "cpu") -> list[int]:
    """Leading sizes ``[n_0, ..., n_{W-1}]`` of every rank's local batch (collective; ``[local_n]`` alone).

    ``device`` must suit the backend (a CUDA device for NCCL); pass the device of the tensor being gathered.
    """
    if not _active():
        return [int(local_n)]
    mine = torch.tensor([int(local_n)], dtype=torch.long, device=device)
    everyone = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(everyone, mine)
    return [int(s.item()) for s in everyone]


def rank_offset(local_n: int, device: torch.device | str = "cpu") -> int:
    """Row index of this rank's first row in a rank-ordered gather: ``sum_{r' < rank} n_{r'}`` (collective).

    With equal local batches this is ``rank * local_n``; it is 0 when not distributed.
    """
    if not _active():
        return 0
    return sum(local_sizes(local_n, device)[: dist.get_rank()])


def _all_gather_padded(x: Tensor, sizes: list[int]) -> Tensor:
    """Rank-ordered concatenation of every rank's ``x`` ([n_r, ...] each) without autograd."""
    x = x.contiguous()
    biggest = max(sizes)
    if x.shape[0] < biggest:
        pad = x.new_zeros((biggest - x.shape[0], *x.shape[1:]))
        x = torch.cat([x, pad], dim=0)
    buffers = [torch.empty_like(x) for _ in sizes]
    dist.all_gather(buffers, x)
    return torch.cat([buf[:n] for buf, n in zip(buffers, sizes, strict=True)], dim=0)


class _GatherWithGrad(torch.autograd.Function):
    """all_gather in forward; all_reduce(SUM) of the full gradient and own slice in backward."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor) -> Tensor:  # type: ignore[override]
        sizes = local_sizes(x.shape[0], x.device)
        me = dist.get_rank()
        ctx.start = sum(sizes[:me])  # type: ignore[attr-defined]
        ctx.stop = ctx.start + sizes[me]  # type: ignore[attr-defined]
        return _all_gather_padded(x, sizes)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> Tensor:  # type: ignore[override]
        total = grad.contiguous().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total[ctx.start : ctx.stop]  # type: ignore[attr-defined]


def gather_with_grad(x: Tensor) -> Tensor:
    """All-gather ``x`` [n_r, ...] from every rank into [sum_r n_r, ...] (rank order), with exact gradients.

    Backward sums the gradient over ranks (all_reduce SUM) and returns this rank's rows, so that DDP-averaged
    parameter gradients equal the single-process gradient of the global-batch loss (module docstring).
    Non-contiguous inputs are made contiguous first (collectives reject them, or on some backends gather them
    wrongly). Returns ``x`` itself when not distributed.
    """
    if not _active():
        return x
    return _GatherWithGrad.apply(x)


def gather_no_grad(x: Tensor) -> Tensor:
    """All-gather ``x`` [n_r, ...] into [sum_r n_r, ...] in rank order, detached (labels, indices, queues).

    Returns ``x.detach()`` when not distributed.
    """
    if not _active():
        return x.detach()
    with torch.no_grad():
        return _all_gather_padded(x.detach(), local_sizes(x.shape[0], x.device))


class _AllReduceWithGrad(torch.autograd.Function):
    """all_reduce(SUM) in forward and in backward (the gradient of a sum over ranks w.r.t. each addend)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor) -> Tensor:  # type: ignore[override]
        out = x.contiguous().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> Tensor:  # type: ignore[override]
        total = grad.contiguous().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total


def all_reduce_with_grad(x: Tensor) -> Tensor:
    """Sum of ``x`` over ranks, differentiable: the backward pass sums the incoming gradients over ranks too, so
    a statistic pooled over all ranks (e.g. global batch-norm moments) back-propagates exactly. ``x`` itself when
    not distributed."""
    if not _active():
        return x
    return _AllReduceWithGrad.apply(x)


def all_reduce_sum(x: Tensor) -> Tensor:
    """Sum of ``x`` over ranks as a new detached tensor (``x.detach().clone()`` when not distributed)."""
    out = x.detach().clone()
    if _active():
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def broadcast_from_zero(x: Tensor) -> Tensor:
    """Rank 0's ``x`` on every rank (a new detached tensor of ``x``'s shape and dtype; every rank passes one of that
    shape). Results that must agree exactly on all ranks, e.g. a k-means run whose threads may round differently,
    are computed everywhere and then replaced by rank 0's. ``x`` itself when not distributed."""
    if not _active():
        return x
    out = x.detach().contiguous().clone()
    dist.broadcast(out, src=0)
    return out


_FAILURE_WORDS = ("gloo", "nccl", "timed out", "timeout", "connection closed", "connection reset", "broken pipe")


def is_collective_failure(err: BaseException) -> bool:
    """True for the errors a collective raises when another rank died or stopped answering: torch's ``DistError``
    family, or a ``RuntimeError`` from the gloo / NCCL backends (timeouts, closed or reset connections)."""
    if isinstance(err, dist.DistError):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and any(word in text for word in _FAILURE_WORDS)


def unresponsive_ranks(wait_s: float = 3.0) -> list[int] | None:
    """After a failed collective: the ranks that did not check in through the rendezvous store within ``wait_s``
    seconds (every surviving rank checks in as it fails). ``[0]`` when the store itself stopped answering (rank 0
    hosts it); None when not distributed or the store cannot be reached for another reason."""
    import datetime
    import time

    if not is_distributed():
        return None
    try:
        store = dist.distributed_c10d._get_default_store()
        store.set_timeout(datetime.timedelta(seconds=max(wait_s, 1.0)))
        store.set(f"contrastkit/alive/{dist.get_rank()}", "1")
    except Exception:  # noqa: BLE001 - a dead store is the answer: its host, rank 0, is gone
        return [0] if dist.get_rank() != 0 else None
    deadline, missing = time.monotonic() + wait_s, list(range(dist.get_world_size()))
    while missing and time.monotonic() < deadline:
        try:
            missing = [r for r in missing if not store.check([f"contrastkit/alive/{r}"])]
        except Exception:  # noqa: BLE001
            return [0] if dist.get_rank() != 0 else None
        time.sleep(0.1)
    return missing
