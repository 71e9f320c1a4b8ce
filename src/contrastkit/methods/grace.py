"""GRACE (Zhu et al. 2020, "Deep Graph Contrastive Representation Learning"): node-level contrast of two stochastic
views of a graph, the base of ARIEL (Feng et al., WWW 2022).

Each step takes a graph batch (:class:`contrastkit.data.GraphSource`: the whole graph, or a node-induced subgraph),
draws two views (:func:`contrastkit.augment.graph_views`: edges dropped per direction with ``edge_drop[v]``, feature
columns masked with ``feature_mask[v]``), encodes both with one GCN ``f`` (:class:`contrastkit.models.GCNEncoder`)
and projects them with ``g`` (:class:`contrastkit.models.GraphProjectionHead`)::

    u = g(f(x_1, A_1)),  v = g(f(x_2, A_2)),  L = grace_loss(u, v, tau)   (contrastkit.losses.grace_loss)

The views of step ``s`` are drawn from a generator seeded by ``(trainer.seed, s)`` (a counter the checkpoint keeps),
so a run is reproducible and resumes exactly. ``embed_graph(x, edge_index)`` is the representation ``f(x, A)`` that
evaluation uses (GRACE's protocol: logistic regression on the frozen node embeddings).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from contrastkit._checks import check_positive
from contrastkit.augment.graph import graph_views
from contrastkit.data.batch import Batch
from contrastkit.losses import grace_loss
from contrastkit.methods.base import FitContext, MethodHooks

__all__ = ["GRACE"]


class GRACE(MethodHooks, nn.Module):
    """GRACE (module docstring).

    Args:
        encoder: a graph encoder ``f(x [n, F], edge_index [2, E]) -> [n, h]`` with ``num_features = h``.
        projection_dim: the projection head's hidden size ``p`` (``h -> p -> h``).
        temperature: tau of the loss (GRACE's configs use 0.4-0.9 by dataset).
        edge_drop / feature_mask: the two views' edge-drop and feature-mask probabilities.
        chunk_size: the block of the fused loss (memory O(block^2 + n h)).
    """

    def __init__(
        self,
        encoder: nn.Module,
        projection_dim: int = 128,
        *,
        temperature: float = 0.5,
        edge_drop: tuple[float, float] = (0.2, 0.4),
        feature_mask: tuple[float, float] = (0.3, 0.4),
        chunk_size: int | None = None,
    ) -> None:
        super().__init__()
        from contrastkit.models.graph import GraphProjectionHead

        check_positive("temperature", temperature)
        hidden = int(getattr(encoder, "num_features", 0))
        if hidden <= 0:
            raise ValueError("encoder needs a positive `num_features` attribute (its output size)")
        self.encoder = encoder
        self.projection_head = GraphProjectionHead(hidden, projection_dim)
        self.temperature, self.chunk_size = float(temperature), chunk_size
        self.edge_drop, self.feature_mask = tuple(edge_drop), tuple(feature_mask)
        self.register_buffer("view_steps", torch.zeros((), dtype=torch.long))
        self.seed = 0

    def on_fit_start(self, ctx: FitContext) -> None:
        """Take the run's seed for the views."""
        self.seed = ctx.seed

    def make_views(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, ...]:
        raise ValueError("GRACE trains on graph batches: use a contrastkit.data.GraphSource, not images")

    def embed_graph(self, x: Tensor, edge_index: Tensor) -> Tensor:
        """The node representations ``f(x, A)`` ``[n, h]``."""
        return self.encoder(x, edge_index)

    def embed(self, x: Tensor) -> Tensor:
        raise ValueError("GRACE embeds nodes of a graph: call embed_graph(x, edge_index)")

    def training_step(self, batch: Batch) -> dict[str, Tensor]:
        """Two views of ``batch.graph``, the GRACE loss of their projections; returns ``{"loss"}``."""
        graph = getattr(batch, "graph", None)
        if graph is None:
            raise ValueError("GRACE needs a graph batch (Batch.graph); use a contrastkit.data.GraphSource")
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + int(self.view_steps)) % 2**63)
        (x1, e1), (x2, e2) = graph_views(graph.x, graph.edge_index, edge_drop=self.edge_drop,
                                         feature_mask=self.feature_mask, generator=generator)  # fmt: skip
        u = self.projection_head(self.encoder(x1, e1))
        v = self.projection_head(self.encoder(x2, e2))
        self.view_steps += 1
        return {"loss": grace_loss(u, v, self.temperature, chunk_size=self.chunk_size)}
