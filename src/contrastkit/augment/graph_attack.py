r"""The adversarial graph view of ARIEL (Feng et al., "Adversarial Graph Contrastive Learning with Information
Regularization", WWW 2022): projected gradient ascent on relaxed edge flips and bounded feature noise.

The edge attack is the relaxation of Xu et al. (IJCAI 2019, "Topology Attack and Defense for Graph Neural
Networks"): with ``A`` ``[n, n]`` symmetric 0/1 without self-loops and the complement map ``C = 1 - 2A - I``,

    A'(S) = A + S * C        S in [0, 1]^{n x n},  sum of the flipped pairs <= b

adds the edge ``{i, j}`` where ``A_ij = 0`` and removes it where ``A_ij = 1`` in proportion to ``S_ij``. The
features get an additive ``delta`` in the L-inf box ``[-box, box]``. For ``t = 0 .. steps - 1`` the attack
ascends a loss ``L(x + delta, A'(S))`` (the caller's closure: ARIEL's contrastive loss against view 1):

    S     <- Proj_b( S + alpha / sqrt(t + 1) * dL/dS )     (edge_step="annealed_grad": ARIEL's current code)
    S     <- Proj_b( S + alpha * sign(dL/dS) )            (edge_step="sign": the WWW-2022 code)
    delta <- clip( delta + beta * sign(dL/d delta), -box, box )

``Proj_b`` is the Euclidean projection onto ``{0 <= S <= 1, sum S <= b}`` (:func:`project_budget`). With
``symmetric=True`` (current code) only the strict upper triangle of ``S`` is a variable and ``S + S^T`` enters
``A'``; with ``symmetric=False`` (WWW-2022 code) every off-diagonal entry is a variable, ``A'`` is asymmetric during
the attack and the strict lower triangle, mirrored, is what is discretised (as that code does).

Discretisation: ``"single_draw"`` flips each pair with probability ``S_ij`` once (the code: the budget holds in
expectation only); ``"best_of_k"`` draws ``k`` times and keeps the draw within budget with the highest loss
(DeepRobust's ``PGDAttack``; if no draw is within budget, the ``b`` most probable pairs). The result is the 0/1
symmetric ``A_adv`` without self-loops, ``x + delta`` and the realised number of flipped pairs.

Everything is dense ``[n, n]``: meant for ARIEL's sampled subgraphs (n = 500-3,000). Pure torch; the loss closure
computes gradients only for ``S`` and ``delta`` (``torch.autograd.grad``), so no parameter gradient accumulates.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "DISCRETISATIONS",
    "EDGE_STEPS",
    "AdversarialGraph",
    "discretise_flips",
    "flip_map",
    "pgd_graph_attack",
    "project_budget",
]

EDGE_STEPS = ("annealed_grad", "sign")
DISCRETISATIONS = ("single_draw", "best_of_k")

GraphLoss = Callable[[Tensor, Tensor], Tensor]
"""``loss(x [n, F], adj [n, n]) -> scalar``: the quantity the attack ascends (``adj`` without self-loops)."""


def project_budget(s: Tensor, budget: float, tol: float = 1e-3, mask: Tensor | None = None) -> Tensor:
    r"""Euclidean projection of ``s`` onto ``{0 <= s <= 1, sum(s[mask]) <= budget}``: ``s`` any shape -> same shape.

    If ``clamp(s, 0, 1)`` is feasible it is the answer; otherwise the answer is ``clamp(s - mu, 0, 1)`` for the
    ``mu > 0`` where the sum equals ``budget`` (the KKT condition of the capped simplex), found by bisection on
    ``[min(s) - 1, max(s)]`` until the bracket is narrower than ``tol`` (ARIEL's ``xi``: 1e-3 in the current code,
    1e-5 in the WWW-2022 code). The code keeps the bracket's midpoint, whose sum may exceed ``budget`` by a little;
    here the feasible end of the bracket is kept, so the sum never exceeds ``budget`` (it is within the bracket's
    width of the exact projection). Entries outside ``mask`` (a bool tensor like ``s``) are set to 0.
    """
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    if tol <= 0:
        raise ValueError(f"tol must be > 0, got {tol}")
    if mask is not None:
        s = s.masked_fill(~mask, 0.0)
    clipped = s.clamp(0.0, 1.0)
    if float(clipped.sum()) <= budget:
        return clipped
    values = s if mask is None else s[mask]
    low, high = float(values.min()) - 1.0, float(values.max())  # sum(low) = all ones >= budget; sum(high) = 0

    def excess(mu: float) -> float:
        return float((values - mu).clamp(0.0, 1.0).sum()) - budget

    while high - low > tol:
        mid = 0.5 * (low + high)
        if excess(mid) > 0:
            low = mid
        else:
            high = mid
    out = (s - high).clamp(0.0, 1.0)
    return out if mask is None else out.masked_fill(~mask, 0.0)


def flip_map(adj: Tensor) -> Tensor:
    """``C = 1 - 2A - I`` ``[n, n]``: +1 where a flip adds an edge, -1 where it removes one, 0 on the diagonal."""
    n = adj.shape[0]
    return 1.0 - 2.0 * adj - torch.eye(n, dtype=adj.dtype, device=adj.device)


def _check_adjacency(adj: Tensor) -> None:
    if not isinstance(adj, Tensor) or adj.dim() != 2 or adj.shape[0] != adj.shape[1]:
        shape = tuple(adj.shape) if isinstance(adj, Tensor) else type(adj).__name__
        raise ValueError(f"adj must be a square [n, n] adjacency, got {shape}; build it with dense_adjacency")
    if not torch.equal(adj, adj.t()) or bool(adj.diagonal().ne(0).any()) or bool(((adj != 0) & (adj != 1)).any()):
        raise ValueError("adj must be symmetric 0/1 without self-loops: symmetrise the edges and drop self-loops")


def _symmetric_flips(upper: Tensor) -> Tensor:
    """``triu(upper, 1) + triu(upper, 1)^T``."""
    strict = upper.triu(1)
    return strict + strict.t()


def discretise_flips(relaxed: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One Bernoulli draw per unordered pair ``i < j`` with probability ``relaxed[i, j]`` (the strict upper
    triangle), mirrored: ``[n, n]`` symmetric 0/1 flips with a zero diagonal."""
    if generator is None:
        uniform = torch.rand(relaxed.shape, device=relaxed.device)
    else:
        uniform = torch.rand(relaxed.shape, generator=generator, device=generator.device).to(relaxed.device)
    return _symmetric_flips((relaxed > uniform).to(relaxed.dtype))


@dataclass(frozen=True)
class AdversarialGraph:
    """The attack's output: ``x`` ``[n, F]`` (= x + delta), ``adj`` ``[n, n]`` (0/1, symmetric, no self-loops),
    ``relaxed`` ``[n, n]`` (the final S, symmetric), ``flips`` (the flipped unordered pairs) and ``budget``."""

    x: Tensor
    adj: Tensor
    relaxed: Tensor
    flips: int
    budget: float


def pgd_graph_attack(
    loss: GraphLoss,
    x: Tensor,
    adj: Tensor,
    *,
    budget: float,
    steps: int = 5,
    alpha: float = 200.0,
    beta: float = 0.01,
    feature_box: float = 0.04,
    edge_step: str = "annealed_grad",
    bisection_tol: float = 1e-3,
    symmetric: bool = True,
    discretise: str = "single_draw",
    best_of_k: int = 20,
    attack_features: bool = True,
    generator: torch.Generator | None = None,
) -> AdversarialGraph:
    """PGD on edge flips (at most ``budget`` unordered pairs) and features (box ``feature_box``) that ascends
    ``loss(x', A')`` (module docstring). ``x`` ``[n, F]``, ``adj`` ``[n, n]`` symmetric 0/1 without self-loops.
    ``attack_features=False`` (or ``feature_box=0``) perturbs edges only; ``budget=0`` features only."""
    _check_adjacency(adj)
    if edge_step not in EDGE_STEPS:
        raise ValueError(f"edge_step must be one of {EDGE_STEPS}, got {edge_step!r}")
    if discretise not in DISCRETISATIONS:
        raise ValueError(f"discretise must be one of {DISCRETISATIONS}, got {discretise!r}")
    if steps < 1 or best_of_k < 1 or feature_box < 0:
        raise ValueError(f"need steps >= 1, best_of_k >= 1, feature_box >= 0; got {steps}, {best_of_k}, {feature_box}")
    n = adj.shape[0]
    adj, x = adj.detach(), x.detach()
    flips_to = flip_map(adj)
    ones = torch.ones(n, n, dtype=torch.bool, device=adj.device)
    variables = ones.triu(1) if symmetric else ones & ~torch.eye(n, dtype=torch.bool, device=adj.device)
    s = torch.zeros_like(adj)
    delta = torch.zeros_like(x)
    for t in range(steps):
        s_var = s.clone().requires_grad_(True)
        delta_var = delta.clone().requires_grad_(attack_features and feature_box > 0)
        flips = _symmetric_flips(s_var) if symmetric else s_var
        value = loss(x + delta_var, adj + flips * flips_to)
        wanted = [s_var] + ([delta_var] if delta_var.requires_grad else [])
        grads = torch.autograd.grad(value, wanted, allow_unused=True)
        grad_s = grads[0] if grads[0] is not None else torch.zeros_like(s)
        with torch.no_grad():
            step = alpha / math.sqrt(t + 1) * grad_s if edge_step == "annealed_grad" else alpha * grad_s.sign()
            s = project_budget(s + step, budget, bisection_tol, mask=variables)
            if delta_var.requires_grad and grads[1] is not None:
                delta = (delta + beta * grads[1].sign()).clamp(-feature_box, feature_box)
    relaxed = _symmetric_flips(s) if symmetric else _symmetric_flips(s.t())  # WWW code: the mirrored lower triangle
    x_adv = x + delta
    with torch.no_grad():
        draws = [discretise_flips(relaxed, generator) for _ in range(best_of_k if discretise == "best_of_k" else 1)]
        if discretise == "best_of_k":
            feasible = [d for d in draws if float(d.triu(1).sum()) <= budget]
            if feasible:
                values = [float(loss(x_adv, adj + d * flips_to)) for d in feasible]
                chosen = feasible[max(range(len(feasible)), key=values.__getitem__)]
            else:  # the budget's worth of most probable pairs
                upper = relaxed.triu(1).flatten()
                top = upper.topk(min(int(budget), int(upper.gt(0).sum()))).indices
                chosen = _symmetric_flips(torch.zeros_like(upper).index_fill(0, top, 1.0).view(n, n))
        else:
            chosen = draws[0]
    adversarial = adj + chosen * flips_to
    return AdversarialGraph(x_adv, adversarial, relaxed, int(chosen.triu(1).sum()), float(budget))
