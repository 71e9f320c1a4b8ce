r"""Gradient-matching distances and losses of dataset condensation: DC (Zhao, Mopuri & Bilen, ICLR 2021), DSA
(Zhao & Bilen, ICML 2021) and DCC (Lee et al., "Dataset Condensation with Contrastive Signals", ICML 2022).

A *gradient* is a sequence of tensors, one per network parameter. Every tensor may carry ``batch_dims`` leading
batch dimensions (e.g. ``[C, *param_shape]`` for per-class gradients from ``torch.func.vmap``); the distance is
computed per batch element and summed.

Distances ``D(G_s, G_r)`` (the matching distances of Zhao et al., ICLR 2021):

* ``"ours"`` (layer-wise, per output row): for every tensor with at least 2 parameter dims, reshaped to
  ``[out, rest]`` (conv ``[o, i*k*k]``, linear ``[o, i]``)::

      D = sum_tensors sum_rows ( 1 - <g_s,o, g_r,o> / (||g_s,o|| ||g_r,o|| + eps) ),   eps = 1e-6

  1-D tensors (biases, norm affine parameters) contribute exactly 0. Invariant to positive rescaling of either
  gradient, tensor by tensor (up to ``eps``).
* ``"mse"``: ``sum (g_s - g_r)^2`` over all tensors (the squared L2 of the flattened concatenation).
* ``"cos"``: ``1 - <vec G_s, vec G_r> / (||vec G_s|| ||vec G_r|| + eps)`` on the flattened concatenation.

Losses:

* DC, class-wise: ``L_DC = sum_c D(grad CE(theta; S_c), grad CE(theta; T_c))``.
* DCC, one match of the gradient of the loss over all classes:
  ``L_DCC = D(grad CE(theta; S), (1/C) sum_c grad CE(theta; T_c))`` (``reduction="sum"``: without ``1/C``, the
  paper's phrasing; identical under ``ours`` and ``cos``). With one class both coincide.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "GRADIENT_DISTANCES",
    "GradientDistance",
    "dc_matching_loss",
    "dcc_matching_loss",
    "gradient_distance",
]

GradientDistance = Literal["ours", "mse", "cos"]
GRADIENT_DISTANCES: tuple[str, ...] = ("ours", "mse", "cos")
EPS = 1e-6


def _check_pair(grads_syn: Sequence[Tensor], grads_real: Sequence[Tensor], batch_dims: int) -> None:
    if not isinstance(grads_syn, (list, tuple)) or not isinstance(grads_real, (list, tuple)):
        raise ValueError("gradients must be lists or tuples of tensors (one per parameter)")
    if len(grads_syn) != len(grads_real) or not grads_syn:
        raise ValueError(
            f"the two gradients must list the same non-zero number of tensors, got {len(grads_syn)} and "
            f"{len(grads_real)}; pass the gradients of the same parameters"
        )
    for k, (gs, gr) in enumerate(zip(grads_syn, grads_real, strict=True)):
        if not isinstance(gs, Tensor) or not isinstance(gr, Tensor):
            raise ValueError(f"gradient entry {k} must be a pair of tensors")
        if gs.shape != gr.shape:
            raise ValueError(f"gradient tensor {k} has shapes {tuple(gs.shape)} and {tuple(gr.shape)}; they must match")
        if gs.ndim < batch_dims:
            raise ValueError(f"gradient tensor {k} has {gs.ndim} dims, fewer than batch_dims={batch_dims}")


def _row_cosine_distance(gs: Tensor, gr: Tensor, batch_dims: int) -> Tensor:
    """``sum_rows (1 - cos)`` of one tensor ``[*batch, out, ...]`` reshaped to ``[*batch, out, rest]``."""
    lead = gs.shape[: batch_dims + 1]
    a, b = gs.reshape(*lead, -1), gr.reshape(*lead, -1)
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1) + EPS)
    return (1.0 - cos).sum()


def gradient_distance(
    grads_syn: Sequence[Tensor],
    grads_real: Sequence[Tensor],
    metric: str = "ours",
    *,
    batch_dims: int = 0,
) -> Tensor:
    """Distance ``D(G_s, G_r)`` between two gradients (see the module docstring), summed over batch elements.

    Args:
        grads_syn: tensors ``[*batch, *param_shape]``, usually differentiable w.r.t. the synthetic images.
        grads_real: tensors of the same shapes (the target; detach it yourself).
        metric: ``"ours"`` | ``"mse"`` | ``"cos"``.
        batch_dims: number of leading batch dimensions (0 for one gradient, 1 for ``[C, ...]`` per-class ones).

    Returns:
        A 0-d tensor.
    """
    if metric not in GRADIENT_DISTANCES:
        raise ValueError(f"metric must be one of {list(GRADIENT_DISTANCES)}, got {metric!r}")
    if isinstance(batch_dims, bool) or not isinstance(batch_dims, int) or batch_dims < 0:
        raise ValueError(f"batch_dims must be an int >= 0, got {batch_dims!r}")
    _check_pair(grads_syn, grads_real, batch_dims)
    if metric == "ours":
        terms = [
            _row_cosine_distance(gs, gr, batch_dims)
            for gs, gr in zip(grads_syn, grads_real, strict=True)
            if gs.ndim - batch_dims >= 2
        ]
        return torch.stack(terms).sum() if terms else grads_syn[0].new_zeros(())
    flat_s = torch.cat([g.reshape(*g.shape[:batch_dims], -1) for g in grads_syn], dim=-1)
    flat_r = torch.cat([g.reshape(*g.shape[:batch_dims], -1) for g in grads_real], dim=-1)
    if metric == "mse":
        return (flat_s - flat_r).pow(2).sum()
    cos = (flat_s * flat_r).sum(-1) / (flat_s.norm(dim=-1) * flat_r.norm(dim=-1) + EPS)
    return (1.0 - cos).sum()


def dc_matching_loss(
    grads_syn_per_class: Sequence[Tensor], grads_real_per_class: Sequence[Tensor], metric: str = "ours"
) -> Tensor:
    """DC's class-wise loss ``sum_c D(G_s[c], G_r[c])``; every tensor is ``[C, *param_shape]``."""
    return gradient_distance(grads_syn_per_class, grads_real_per_class, metric, batch_dims=1)


def dcc_matching_loss(
    grads_syn: Sequence[Tensor],
    grads_real_per_class: Sequence[Tensor],
    metric: str = "ours",
    reduction: str = "mean",
) -> Tensor:
    """DCC's loss ``D(G_s, reduce_c G_r[c])``.

    Args:
        grads_syn: gradient of the mean CE over the whole synthetic set, tensors ``[*param_shape]``.
        grads_real_per_class: per-class real gradients ``[C, *param_shape]``.
        metric: see :func:`gradient_distance`.
        reduction: ``"mean"`` (class-balanced mean, as in the experiments of Lee et al., ICML 2022) or ``"sum"``
            (the paper's phrasing).
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    if not isinstance(grads_real_per_class, (list, tuple)):
        raise ValueError("grads_real_per_class must be a list or tuple of [C, ...] tensors")
    target = [g.mean(0) if reduction == "mean" else g.sum(0) for g in grads_real_per_class]
    return gradient_distance(grads_syn, target, metric)
