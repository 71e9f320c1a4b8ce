r"""DirectCLR (Jing, Vincent, LeCun & Tian, ICLR 2022, "Understanding Dimensional Collapse in Contrastive
Self-supervised Learning", arXiv 2110.09348).

No trainable projector: the contrastive loss sees the first ``d0`` coordinates of the backbone representation
``r = f(x)`` ``[B, D]``. With ``z = r[:, :d0]`` ``[B, d0]`` and ``u = z / ||z||``::

    S_ij = <u1_i, u2_j> / tau
    L    = 1/2 CE(S, arange(B)) + 1/2 CE(S^T, arange(B))          (negatives = "cross_view", Jing et al.)
    L    = nt_xent(z1, z2, tau)                                   (negatives = "ntxent", 2B - 2 negatives)

The gradient reaches ``r[:, d0:]`` only through the shared trunk: ``dL / d r[:, d0:] = 0`` exactly. Jing et al.
use d0 = 360 of D = 2048 and tau = 0.1. Drive it like SimCLR::

    method = DirectCLR(resnet18(in_channels=1, small_stem=True, width=0.25), simclr_views(28, 1), d0=64)
    loss = method.training_step(images)["loss"]      # back-propagate it and step the optimiser in any loop
                                                      # (a whole one: examples/simclr_plain_loop.py)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from contrastkit._checks import check_positive
from contrastkit.augment import ViewPipeline
from contrastkit.data.batch import Batch
from contrastkit.losses import cross_view_info_nce, nt_xent
from contrastkit.method_registry import (
    BuildContext,
    MethodConfig,
    register_method,
    require_at_least,
    require_choice,
    require_greater,
)
from contrastkit.methods._two_views import draw_two_views, two_views_of

NEGATIVES = ("cross_view", "ntxent")


class DirectCLR(nn.Module):
    """DirectCLR: backbone, no projector, InfoNCE on the first ``d0`` representation dimensions.

    Args:
        backbone: module mapping ``[B, C, H, W]`` to ``[B, D]`` with a ``num_features`` attribute (``D``); a
            residual trunk lets the gradient of the ``d0`` slice shape the whole representation.
        views: the view pipeline; ``None`` means every batch already holds the two views.
        d0: how many leading coordinates the loss sees, ``1 <= d0 <= D`` (paper: 360 of 2048).
        temperature: tau > 0 (paper: 0.1).
        negatives: ``"cross_view"`` (symmetric, B - 1 other-view negatives; Jing et al.) or ``"ntxent"``
            (SimCLR's NT-Xent on the ``d0`` slice, 2B - 2 negatives from both views).
        gather_distributed: contrast local anchors against the keys of all ranks (exact multi-GPU gradients).
    """

    def __init__(
        self,
        backbone: nn.Module,
        views: ViewPipeline | None,
        *,
        d0: int,
        temperature: float = 0.1,
        negatives: str = "cross_view",
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        check_positive("temperature", temperature)
        num_features = int(getattr(backbone, "num_features", 0))
        if num_features <= 0:
            raise ValueError("backbone needs a positive `num_features` attribute (its output size)")
        if not isinstance(d0, int) or isinstance(d0, bool) or not 1 <= d0 <= num_features:
            raise ValueError(f"d0 must be an int in [1, {num_features}] (the backbone's num_features), got {d0!r}")
        if negatives not in NEGATIVES:
            raise ValueError(f"negatives must be one of {', '.join(NEGATIVES)}, got {negatives!r}")
        self.backbone = backbone
        self.views = views
        self.d0 = d0
        self.temperature = temperature
        self.negatives = negatives
        self.gather_distributed = gather_distributed

    def forward(self, x: Tensor) -> Tensor:
        """The space the loss sees, ``z = f(x)[:, :d0]``, ``[B, d0]``."""
        return self.backbone(x)[:, : self.d0]

    def embed(self, x: Tensor) -> Tensor:
        """The full representation ``r = f(x)`` used for evaluation, ``[B, num_features]``."""
        return self.backbone(x)

    def make_views(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Two random views ``[B, C, H, W]`` of ``images`` from the view pipeline (``generator``: its random draws)."""
        return draw_two_views("DirectCLR", self.views, images, generator)

    def loss(self, r1: Tensor, r2: Tensor) -> Tensor:
        """The DirectCLR loss of two representation batches ``r1, r2`` ``[B, D]``: InfoNCE of their first ``d0``
        columns (scalar)."""
        z1, z2 = r1[:, : self.d0], r2[:, : self.d0]
        if self.negatives == "cross_view":
            return cross_view_info_nce(
                z1, z2, self.temperature, symmetric=True, gather_distributed=self.gather_distributed
            )
        return nt_xent(z1, z2, temperature=self.temperature, gather_distributed=self.gather_distributed)

    def training_step(self, batch: Batch | Tensor | tuple[Tensor, ...]) -> dict[str, Tensor]:
        """One step: views, one forward of both views together, InfoNCE on the ``d0`` slice.

        Returns ``{"loss": ..., "embeddings": detached backbone features of view 1 [B, D]}``.
        """
        _, view1, view2 = two_views_of("DirectCLR", batch, self.make_views)
        features = self.backbone(torch.cat([view1, view2]))
        if features.ndim != 2 or features.shape[1] < self.d0:
            raise ValueError(f"the backbone returned {tuple(features.shape)}, expected [B, >= d0={self.d0}] features")
        r1, r2 = features.chunk(2)
        return {"loss": self.loss(r1, r2), "embeddings": r1.detach()}


@dataclass
class DirectCLRConfig(MethodConfig):
    """``method: {name: directclr}``: InfoNCE on the first ``d0`` backbone dimensions, no projector."""

    name: str = "directclr"
    d0: int = 64
    temperature: float = 0.1
    negatives: str = "cross_view"
    gather_distributed: bool = True

    def check(self, where: str = "method") -> None:
        require_at_least(f"{where}.d0", self.d0, 1)
        require_greater(f"{where}.temperature", self.temperature, 0)
        require_choice(f"{where}.negatives", self.negatives, NEGATIVES)


def build_directclr(cfg: DirectCLRConfig, ctx: BuildContext) -> DirectCLR:
    """DirectCLR on the configured backbone and views."""
    return DirectCLR(
        ctx.backbone,
        ctx.views,
        d0=cfg.d0,
        temperature=cfg.temperature,
        negatives=cfg.negatives,
        gather_distributed=cfg.gather_distributed,
    )


register_method(DirectCLRConfig, build_directclr)
