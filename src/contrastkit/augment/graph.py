"""Stochastic graph views of GRACE (Zhu et al., "Deep Graph Contrastive Representation Learning", 2020), also
used by ARIEL (Feng et al., WWW 2022): random edge removal plus one feature-column mask per view; and the random
edge-flip perturbation of the robustness protocol (:func:`flip_random_edges`).

Pure torch (no torch_geometric needed). Randomness follows the augment floor's convention
(``contrastkit/augment/_random.py``): with ``generator`` given, the Bernoulli draws are made on
``generator.device`` and moved to the data's device, so a seeded CPU generator gives the same views on any device;
with ``generator=None`` they come from the global RNG of the data's device (of the CPU for
:func:`flip_random_edges`, which works on the CPU).

Edge lists are ``edge_index: [2, E]`` integer tensors of (source, target) node ids, the torch_geometric layout.
"""

from __future__ import annotations

import math

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


def _sample_distinct_pair_ids(count: int, num_pairs: int, generator: torch.Generator | None) -> Tensor:
    """``count`` distinct ids drawn uniformly from ``range(num_pairs)`` (a uniform ``count``-subset), int64, CPU.

    Small or dense cases use one permutation; otherwise i.i.d. draws are pooled until ``count`` distinct ids are
    seen and a uniform ``count``-subset of them is kept (the distinct values of i.i.d. uniform draws, given how
    many there are, form a uniform subset), so memory is ``O(count)``, never ``O(num_pairs)``.
    """
    device = generator.device if generator is not None else torch.device("cpu")
    if num_pairs <= 2_000_000 or 4 * count >= num_pairs:
        return torch.randperm(num_pairs, generator=generator, device=device)[:count].cpu()
    seen = torch.empty(0, dtype=torch.long)
    while seen.numel() < count:
        draws = torch.randint(
            0, num_pairs, (count - seen.numel() + count // 8 + 16,), generator=generator, device=device
        )
        seen = torch.unique(torch.cat([seen, draws.cpu()]))
    keep = torch.randperm(seen.numel(), generator=generator, device=device)[:count].cpu()
    return seen[keep]


def flip_random_edges(
    edge_index: Tensor, num_nodes: int, fraction: float, generator: torch.Generator | None = None
) -> Tensor:
    """Random edge-flip perturbation of the robustness protocol: ``[2, E] -> [2, E']`` undirected, coalesced.

    The graph is read as undirected: ``A = {{i, j} : i != j, (i, j) or (j, i) in edge_index}`` (self-loops and
    duplicates are dropped). ``m = round(fraction * |A|)`` distinct unordered pairs ``F`` are drawn uniformly among
    all ``N (N - 1) / 2`` pairs ``{i < j}`` and each is toggled, so the output is the symmetric difference
    ``A xor F`` (an existing edge in ``F`` is removed, an absent one added; ``|(A xor F) xor A| = m``). This is the
    random attack of DeepRobust (``Random(attack_type="flip")``, Jin et al., "Adversarial Attacks and Defenses on
    Graphs", 2020) used by ARIEL (Feng et al., WWW 2022) for its robustness curves.

    Pairs are sampled by index: pair id ``k`` in ``[0, N (N - 1) / 2)`` is the ``k``-th pair of the row-major
    upper triangle, ``i = max{r : o_r <= k}`` with row offsets ``o_r = r (N - 1) - r (r - 1) / 2`` and
    ``j = i + 1 + k - o_i``; memory is ``O(N + E + m)``, no ``N x N`` matrix (N = 140,000 is fine).

    Returns both directions of every edge of ``A xor F``, no self-loops, sorted by (source, target), on
    ``edge_index.device``. Seeded by ``generator`` (draws on ``generator.device``); ``fraction = 0`` returns the
    coalesced input.
    """
    edge_index = _check_edge_index(edge_index)
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 0:
        raise ValueError(f"num_nodes must be an int >= 0, got {num_nodes!r}; pass the number of nodes of the graph")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= float(fraction) < math.inf:
        raise ValueError(f"fraction must be a finite number >= 0, got {fraction!r}; e.g. 0.1 flips 10% as many pairs")
    if edge_index.numel() > 0 and (int(edge_index.min().item()) < 0 or int(edge_index.max().item()) >= num_nodes):
        raise ValueError(
            f"edge_index holds node ids outside [0, {num_nodes}); relabel the edges to 0..num_nodes-1 or fix num_nodes"
        )
    source, target = edge_index[0].long().cpu(), edge_index[1].long().cpu()
    not_loop = source != target
    low = torch.minimum(source, target)[not_loop]
    high = torch.maximum(source, target)[not_loop]
    existing = torch.unique(low * num_nodes + high)
    num_pairs = num_nodes * (num_nodes - 1) // 2
    num_flips = round(float(fraction) * existing.numel())
    if num_flips > num_pairs:
        raise ValueError(
            f"fraction {fraction} asks for {num_flips} flips but the graph has only {num_pairs} node pairs; "
            "lower the fraction"
        )
    if num_flips > 0:
        pair_ids = _sample_distinct_pair_ids(num_flips, num_pairs, generator)
        rows = torch.arange(num_nodes, dtype=torch.long)
        offsets = rows * (num_nodes - 1) - rows * (rows - 1) // 2
        flip_low = torch.searchsorted(offsets, pair_ids, right=True) - 1
        flip_high = flip_low + 1 + pair_ids - offsets[flip_low]
        keys, counts = torch.unique(torch.cat([existing, flip_low * num_nodes + flip_high]), return_counts=True)
        existing = keys[counts == 1]
    low, high = existing // max(num_nodes, 1), existing % max(num_nodes, 1)
    both = torch.cat([torch.stack([low, high]), torch.stack([high, low])], dim=1)
    order = torch.argsort(both[0] * num_nodes + both[1])
    return both[:, order].to(device=edge_index.device, dtype=edge_index.dtype)
