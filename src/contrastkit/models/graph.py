"""GCN node encoder and projection head of GRACE (Zhu et al., "Deep Graph Contrastive Representation Learning",
2020), also used by ARIEL (Feng et al., "Adversarial Graph Contrastive Learning with Information Regularization",
WWW 2022).

``GCNEncoder`` wraps torch_geometric's ``GCNConv`` (Kipf & Welling, ICLR 2017), imported lazily inside
``__init__`` so that ``import contrastkit.models`` works without torch_geometric (install the ``graph`` extra).
It has two paths with the same weights:

* sparse ``forward(x, edge_index)``: messages flow source -> target along ``edge_index: [2, E]``;
* dense ``forward_dense(x, adj)``: per layer ``D^-1/2 (A + I) D^-1/2 X W + b`` with ``D = diag(rowsum(A + I))``,
  differentiable with respect to ``adj`` (needed by ARIEL's relaxed-adjacency attack).

Both agree when ``adj = dense_adjacency(edge_index, n)`` (``adj[target, source] = edge weight``, the
transpose of the source-row layout of PyG's ``to_dense_adj``; the same matrix for a symmetric graph) and the
graph has no self-loops (``GCNConv`` keeps an existing self-loop instead of adding one; the dense path always
adds ``I``).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from contrastkit.models.backbone import Backbone, positive_int

ACTIVATIONS: tuple[str, ...] = ("prelu", "relu", "rrelu")
GCN_INITS: tuple[str, ...] = ("glorot", "uniform")  # PyG's GCNConv (GRACE's code); ARIEL's node_cls/layers.py
Activation = Literal["prelu", "relu", "rrelu"]


def _make_activation(name: str) -> nn.Module:
    if name == "prelu":
        return nn.PReLU()
    if name == "relu":
        return nn.ReLU()
    if name == "rrelu":
        return nn.RReLU()
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}; pick one of those names")


def dense_adjacency(edge_index: Tensor, num_nodes: int, edge_weight: Tensor | None = None) -> Tensor:
    """Dense aggregation matrix ``A: [n, n]`` with ``A[j, i] += w`` for each edge ``i -> j`` (duplicates summed).

    Row ``j`` lists the in-neighbours of node ``j``, so ``A @ X`` aggregates along ``edge_index: [2, E]`` exactly
    as ``GCNConv`` does; for a symmetric ``edge_index`` it is the usual symmetric adjacency. dtype: ``edge_weight``'s,
    else float32.
    """
    num_nodes = positive_int("num_nodes", num_nodes)
    if edge_weight is None:
        edge_weight = torch.ones(edge_index.shape[1], device=edge_index.device)
    adj = torch.zeros(num_nodes, num_nodes, dtype=edge_weight.dtype, device=edge_index.device)
    return adj.index_put_((edge_index[1], edge_index[0]), edge_weight, accumulate=True)


def normalized_adjacency(adj: Tensor) -> Tensor:
    """``D^-1/2 (A + I) D^-1/2`` for ``adj: [n, n]``, ``D = diag(rowsum(A + I))`` (zero degree -> zero row/col)."""
    a_hat = adj + torch.eye(adj.shape[0], dtype=adj.dtype, device=adj.device)
    deg_inv_sqrt = a_hat.sum(dim=1).pow(-0.5)
    deg_inv_sqrt = deg_inv_sqrt.masked_fill(torch.isinf(deg_inv_sqrt), 0.0)
    return deg_inv_sqrt.unsqueeze(1) * a_hat * deg_inv_sqrt.unsqueeze(0)


class GCNEncoder(Backbone):
    """Stack of ``num_layers`` GCN layers, each followed by the activation: ``x: [n, F] -> z: [n, h]``.

    Widths (GRACE/ARIEL): ``F -> 2h -> ... -> 2h -> h`` (two layers: ``F -> 2h -> h``; one layer: ``F -> h``).
    Layer ``l``: ``H_{l+1} = act(D^-1/2 (A + I) D^-1/2 H_l W_l + b_l)``, the activation also after the last
    layer. As in the GRACE code, ONE activation module is shared by all layers (so ``"prelu"`` has a single
    learnable slope). ``"rrelu"`` is random in ``train()`` and deterministic in ``eval()``.

    ``init``: ``"glorot"`` keeps torch_geometric's ``GCNConv`` initialisation (Glorot weights, zero bias: GRACE's
    code); ``"uniform"`` draws weights and biases from ``U(-1/sqrt(out), 1/sqrt(out))``, the layer of ARIEL's code
    (``node_cls/layers.py``). With row-normalised bag-of-words features the first gives near-zero outputs at the
    start, the second bias-dominated ones.

    ``num_features`` (= ``hidden_dim``) is the output width, the contrastkit backbone convention; ``config``
    (``{"name": "gcn", ...}``, registered in :data:`contrastkit.models.BACKBONES`) rebuilds it, so a trained GCN
    exports like an image backbone (``contrastkit export``). ``in_channels`` is the node feature count.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        num_layers: int = 2,
        activation: Activation = "prelu",
        init: str = "glorot",
    ) -> None:
        if init not in GCN_INITS:
            raise ValueError(f"init must be one of {GCN_INITS}, got {init!r}")
        in_dim = positive_int("in_dim", in_dim)
        hidden_dim = positive_int("hidden_dim", hidden_dim)
        num_layers = positive_int("num_layers", num_layers)
        kwargs = {"in_dim": in_dim, "hidden_dim": hidden_dim, "num_layers": num_layers, "activation": activation,
                  "init": init}  # fmt: skip
        super().__init__("gcn", kwargs)
        self.activation = _make_activation(activation)
        try:
            from torch_geometric.nn import GCNConv
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError(
                "GCNEncoder needs torch_geometric; install it with `pip install contrastkit[graph]`"
            ) from err
        widths = [in_dim] + [2 * hidden_dim] * (num_layers - 1) + [hidden_dim]
        self.convs = nn.ModuleList(
            GCNConv(d_in, d_out, cached=False, add_self_loops=True, normalize=True)
            for d_in, d_out in zip(widths[:-1], widths[1:], strict=True)
        )
        if init == "uniform":  # ARIEL's layer: W and b ~ U(-1/sqrt(out), 1/sqrt(out))
            with torch.no_grad():
                for conv in self.convs:
                    bound = conv.lin.weight.shape[0] ** -0.5
                    conv.lin.weight.uniform_(-bound, bound)
                    conv.bias.uniform_(-bound, bound)
        self.in_dim = in_dim
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.activation_name = activation
        self.num_features = hidden_dim
        self.in_channels = in_dim

    def _check_x(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != self.in_dim:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x must have shape [n, {self.in_dim}] (in_dim), got {shape}; pass one row per node")

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        """Sparse path: ``x: [n, F]``, ``edge_index: [2, E]`` (source, target), ``edge_weight: [E] | None`` ->
        ``[n, h]``."""
        self._check_x(x)
        h = x
        for conv in self.convs:
            h = self.activation(conv(h, edge_index, edge_weight))
        return h

    def forward_dense(self, x: Tensor, adj: Tensor) -> Tensor:
        """Dense path with the same weights: ``x: [n, F]``, ``adj: [n, n]`` WITHOUT self-loops (``adj[target,
        source]``, see ``dense_adjacency``) -> ``[n, h]``; differentiable in ``adj`` (e.g. a relaxed ``A'``)."""
        self._check_x(x)
        n = x.shape[0]
        if not isinstance(adj, Tensor) or adj.shape != (n, n):
            shape = tuple(adj.shape) if isinstance(adj, Tensor) else type(adj).__name__
            raise ValueError(f"adj must have shape [{n}, {n}] (one row per node of x), got {shape}")
        propagate = normalized_adjacency(adj.to(x.dtype))
        h = x
        for conv in self.convs:
            out = propagate @ conv.lin(h)
            if conv.bias is not None:
                out = out + conv.bias
            h = self.activation(out)
        return h


class GraphProjectionHead(nn.Module):
    """GRACE projection ``g(z) = fc2(ELU(fc1(z)))``: ``[n, h] -> [n, p] -> [n, h]`` (fc1: h -> p, fc2: p -> h)."""

    def __init__(self, hidden_dim: int, projection_dim: int) -> None:
        super().__init__()
        hidden_dim = positive_int("hidden_dim", hidden_dim)
        projection_dim = positive_int("projection_dim", projection_dim)
        self.fc1 = nn.Linear(hidden_dim, projection_dim)
        self.fc2 = nn.Linear(projection_dim, hidden_dim)
        self.activation = nn.ELU()

    def forward(self, z: Tensor) -> Tensor:
        """``z: [n, h] -> [n, h]``."""
        return self.fc2(self.activation(self.fc1(z)))
