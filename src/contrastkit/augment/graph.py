"""Stochastic graph views of GRACE (Zhu et al., "Deep Graph Contrastive Representation Learning", 2020), also
used by ARIEL (Feng et al., WWW 2022): random edge removal plus one feature-column mask per view.

Pure torch (no torch_geometric needed). Randomness follows the augment floor's convention
(``contrastkit/augment/_random.py``): with ``generator`` given, the Bernoulli draws are made on
``generator.device`` and moved to the data's device, so a seeded CPU generator gives the same views on any device;
with ``generator=None`` they come from the global RNG of the data's device.

Edge lists are ``edge_index: [2, E]`` integer tensors of (source, target) node ids, the torch_geometric layout.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check_drop_probability(name: str, p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) < 1.0:
        raise ValueError(f"{name} must be a drop probability in [0, 1), got {p!r}; pass e.g. 0.2 (1 would drop all)")
    return float(p)


def _check_edge_index(edge_index: object) -> Tensor:
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.shape[0] != 2:
        shape = tuple(edge_index.shape) if isinstance(edge_index, Tensor) else type(edge_index).__name__
        raise ValueError(f"edge_index must be an integer tensor of shape [2, E], got {shape}; transpose a [E, 2] list")
    if edge_index.dtype.is_floating_point or edge_index.dtype.is_complex or edge_index.dtype == torch.bool:
        raise ValueError(f"edge_index must hold integer node ids, got dtype {edge_index.dtype}; use .long()")
    return edge_index


def _uniform(count: int, like: Tensor, generator: torch.Generator | None) -> Tensor:
    """``count`` draws of U(0, 1) (float32) on ``like.device``; see the module docstring for the RNG convention."""
    if generator is None:
        return torch.rand(count, device=like.device)
    return torch.rand(count, generator=generator, device=generator.device).to(like.device)


def drop_edges(
    edge_index: Tensor,
    p: float,
    generator: torch.Generator | None = None,
    *,
    force_undirected: bool = False,
) -> Tensor:
    """Remove each edge independently with probability ``p``: ``[2, E] -> [2, E']`` (order of the kept edges kept).

    ``force_undirected=False`` (default, GRACE/ARIEL code = PyG ``dropout_adj``/``dropout_edge`` default): one
    Bernoulli(1 - p) draw per *directed* edge, so ``(i, j)`` and ``(j, i)`` are kept or dropped independently and
    the view is in general a directed graph. ``force_undirected=True``: one draw per unordered pair ``{i, j}``,
    shared by every directed copy of it (both directions, duplicates), so a symmetric input stays symmetric.
    Unlike PyG's switch, no edge absent from the input is ever created. ``E' ~ Binomial(E, 1 - p)`` per direction.
    """
    edge_index = _check_edge_index(edge_index)
    p = _check_drop_probability("p", p)
    num_edges = edge_index.shape[1]
    if not force_undirected:
        keep = _uniform(num_edges, edge_index, generator) >= p
        return edge_index[:, keep]
    if num_edges == 0:
        return edge_index
    low = torch.minimum(edge_index[0], edge_index[1]).long()
    high = torch.maximum(edge_index[0], edge_index[1]).long()
    span = int(high.max().item()) + 1
    pair_ids, pair_of_edge = torch.unique(low * span + high, return_inverse=True)
    keep_pair = _uniform(pair_ids.numel(), edge_index, generator) >= p
    return edge_index[:, keep_pair[pair_of_edge]]


def mask_features(x: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """Zero whole feature columns: ``x: [n, F] -> [n, F]`` (a new tensor; ``x`` is not modified).

    One mask ``m_f ~ Bernoulli(p)`` per column ``f``, shared by all ``n`` nodes; the output is
    ``x[:, f] * (1 - m_f)`` (GRACE ``drop_feature``). Differentiable with respect to ``x``.
    """
    if not isinstance(x, Tensor) or x.dim() != 2:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must be a node-feature tensor of shape [n, F], got {shape}; pass one row per node")
    p = _check_drop_probability("p", p)
    masked_columns = _uniform(x.shape[1], x, generator) < p
    return x.masked_fill(masked_columns.unsqueeze(0), 0)


def graph_views(
    x: Tensor,
    edge_index: Tensor,
    *,
    edge_drop: tuple[float, float],
    feature_mask: tuple[float, float],
    generator: torch.Generator | None = None,
    force_undirected: bool = False,
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """Two GRACE views ``((x1, e1), (x2, e2))`` of one graph ``(x: [n, F], edge_index: [2, E])``.

    ``e_k = drop_edges(edge_index, edge_drop[k])`` and ``x_k = mask_features(x, feature_mask[k])``. Draw order
    (as in GRACE's training step): edges of view 1, edges of view 2, features of view 1, features of view 2, so
    one generator state gives one pair of views.
    """
    for name, pair in (("edge_drop", edge_drop), ("feature_mask", feature_mask)):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"{name} must be a pair (p_view1, p_view2), got {pair!r}; e.g. {name}=(0.2, 0.4)")
    if not isinstance(x, Tensor) or x.dim() != 2:
        raise ValueError(f"x must be a node-feature tensor of shape [n, F], got {getattr(x, 'shape', type(x))}")
    edge_index = _check_edge_index(edge_index)
    if edge_index.numel() > 0 and int(edge_index.max().item()) >= x.shape[0]:
        raise ValueError(
            f"edge_index refers to node {int(edge_index.max().item())} but x has only {x.shape[0]} rows; "
            "relabel the edges to 0..n-1"
        )
    e1 = drop_edges(edge_index, edge_drop[0], generator, force_undirected=force_undirected)
    e2 = drop_edges(edge_index, edge_drop[1], generator, force_undirected=force_undirected)
    x1 = mask_features(x, feature_mask[0], generator)
    x2 = mask_features(x, feature_mask[1], generator)
    return (x1, e1), (x2, e2)
