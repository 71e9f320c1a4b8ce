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

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from contrastkit._checks import check_positive
from contrastkit.augment.graph import graph_views
from contrastkit.data.batch import Batch
from contrastkit.losses import grace_loss
from contrastkit.method_registry import (
    BuildContext,
    ConfigError,
    MethodConfig,
    register_method,
    require_at_least,
    require_choice,
    require_greater,
    require_in_range,
)
from contrastkit.methods.base import FitContext, MethodHooks

__all__ = ["EDGE_DROP_MODES", "GRACE", "GRACEConfig", "build_grace", "grace_options"]


class GRACE(MethodHooks, nn.Module):
    """GRACE (module docstring).

    Args:
        encoder: a graph encoder ``f(x [n, F], edge_index [2, E]) -> [n, h]`` with ``num_features = h``.
        projection_dim: the projection head's hidden size ``p`` (``h -> p -> h``).
        temperature: tau of the loss (GRACE's configs use 0.4-0.9 by dataset).
        edge_drop / feature_mask: the two views' edge-drop and feature-mask probabilities.
        chunk_size: the block of the fused loss (memory O(block^2 + n h)).
        undirected_edge_drop: drop both directions of an edge together (``edge_drop_mode: undirected``); the
            default drops each direction on its own, as PyG's ``dropout_adj`` in the GRACE and ARIEL code.
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
        undirected_edge_drop: bool = False,
    ) -> None:
        super().__init__()
        from contrastkit.models.graph import GraphProjectionHead

        check_positive("temperature", temperature)
        hidden = int(getattr(encoder, "num_features", 0))
        if hidden <= 0:
            raise ValueError("encoder needs a positive `num_features` attribute (its output size)")
        self.backbone = encoder
        self.projection_head = GraphProjectionHead(hidden, projection_dim)
        self.temperature, self.chunk_size = float(temperature), chunk_size
        self.edge_drop, self.feature_mask = tuple(edge_drop), tuple(feature_mask)
        self.undirected_edge_drop = bool(undirected_edge_drop)
        self.register_buffer("view_steps", torch.zeros((), dtype=torch.long))
        self.seed = 0

    def on_fit_start(self, ctx: FitContext) -> None:
        """Take the run's seed for the views."""
        self.seed = ctx.seed

    def make_views(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, ...]:
        raise ValueError("GRACE trains on graph batches: use a contrastkit.data.GraphSource, not images")

    def embed_graph(self, x: Tensor, edge_index: Tensor) -> Tensor:
        """The node representations ``f(x, A)`` ``[n, h]``."""
        return self.backbone(x, edge_index)

    def embed(self, x: Tensor) -> Tensor:
        raise ValueError("GRACE embeds nodes of a graph: call embed_graph(x, edge_index)")

    def project(self, x: Tensor, edge_index: Tensor) -> Tensor:
        """``g(f(x, A))`` ``[n, h]``: the projections the loss compares."""
        return self.projection_head(self.backbone(x, edge_index))

    def step_generator(self) -> torch.Generator:
        """The generator of this step's random draws, seeded by ``(seed, view_steps)``."""
        return torch.Generator().manual_seed((self.seed * 1_000_003 + int(self.view_steps)) % 2**63)

    def views(self, batch: Batch, generator: torch.Generator) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
        """The two GRACE views ``((x1, e1), (x2, e2))`` of ``batch.graph``."""
        graph = getattr(batch, "graph", None)
        if graph is None:
            raise ValueError(
                f"{type(self).__name__} needs a graph batch (Batch.graph); use a contrastkit.data.GraphSource"
            )
        return graph_views(graph.x, graph.edge_index, edge_drop=self.edge_drop, feature_mask=self.feature_mask,
                           generator=generator, force_undirected=self.undirected_edge_drop)  # fmt: skip

    def training_step(self, batch: Batch) -> dict[str, Tensor]:
        """Two views of ``batch.graph``, the GRACE loss of their projections; returns ``{"loss"}``."""
        (x1, e1), (x2, e2) = self.views(batch, self.step_generator())
        u, v = self.project(x1, e1), self.project(x2, e2)
        self.view_steps += 1
        return {"loss": grace_loss(u, v, self.temperature, chunk_size=self.chunk_size)}


EDGE_DROP_MODES = ("directed", "undirected")


@dataclass
class GRACEConfig(MethodConfig):
    """``method: {name: grace}``: GRACE (:class:`GRACE`); the encoder is the ``model`` section's ``gcn``."""

    name: str = "grace"
    temperature: float = 0.4
    edge_drop: list[float] = field(default_factory=lambda: [0.2, 0.4])
    feature_mask: list[float] = field(default_factory=lambda: [0.3, 0.4])
    edge_drop_mode: str = "directed"
    chunk_size: int | None = None

    def check(self, where: str = "method") -> None:
        require_greater(f"{where}.temperature", self.temperature, 0.0)
        for key in ("edge_drop", "feature_mask"):
            pair = getattr(self, key)
            if len(pair) != 2:
                raise ConfigError(f"{where}.{key} must list two probabilities (view 1, view 2), got {pair!r}")
            for p in pair:
                require_in_range(f"{where}.{key}", p, 0.0, 1.0, interval="[)")
        require_choice(f"{where}.edge_drop_mode", self.edge_drop_mode, EDGE_DROP_MODES)
        require_at_least(f"{where}.chunk_size", self.chunk_size, 1)


def grace_options(cfg: GRACEConfig, ctx: BuildContext) -> dict[str, object]:
    """The :class:`GRACE` keyword arguments of a config (shared by ARIEL)."""
    return {
        "projection_dim": ctx.projection_dim,
        "temperature": cfg.temperature,
        "edge_drop": tuple(cfg.edge_drop),
        "feature_mask": tuple(cfg.feature_mask),
        "chunk_size": cfg.chunk_size,
        "undirected_edge_drop": cfg.edge_drop_mode == "undirected",
    }


def build_grace(cfg: GRACEConfig, ctx: BuildContext) -> GRACE:
    """GRACE on the configured graph encoder (``model.backbone: gcn``)."""
    return GRACE(ctx.backbone, **grace_options(cfg, ctx))


register_method(GRACEConfig, build_grace, inputs="graph")
