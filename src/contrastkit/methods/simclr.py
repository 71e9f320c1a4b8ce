"""SimCLR (Chen et al., ICML 2020, "A Simple Framework for Contrastive Learning of Visual Representations").

Two augmented views of each image go through one backbone ``f`` and a projection head ``g``; the NT-Xent loss
pulls the two projections of an image together against the other ``2N - 2`` projections in the batch:

    z = g(f(t(x))),  L = nt_xent(z^(1), z^(2), temperature)

The method is a small composition of blocks (views, backbone, head, loss); drive it from any loop::

    method = SimCLR(resnet18(in_channels=1, small_stem=True, width=0.25), views=simclr_views(28, 1))
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
from contrastkit.method_registry import BuildContext, MethodConfig, register_method, require_choice, require_greater
from contrastkit.methods._two_views import draw_two_views, two_views_of
from contrastkit.models import SimCLRProjectionHead

PROJECTORS = ("mlp", "linear", "none")
NEGATIVES = ("ntxent", "cross_view")


class SimCLR(nn.Module):
    """SimCLR: backbone + projection head + NT-Xent.

    Args:
        backbone: module mapping ``[B, C, H, W]`` to ``[B, D]`` with a ``num_features`` attribute (``D``).
        views: the view pipeline; each call draws fresh random views. ``None`` means every batch already holds the
            two views, as a tuple ``(view1, view2)`` or a :class:`ViewBatch`.
        projection_dim: output size of the projection head (128 in the paper).
        hidden_dim: hidden size of the 2-layer head (``None``: the backbone's ``num_features``, as in the paper).
        temperature: NT-Xent temperature (0.5 in the paper's CIFAR setting; 0.1-0.2 for large batches).
        gather_distributed: contrast local anchors against the keys of all ranks (exact multi-GPU SimCLR).
        projector: ``"mlp"`` (the paper's 2-layer head ``W2 relu(BN(W1 h))``), ``"linear"`` (one bias-free
            linear layer ``W h``, ``[D] -> [projection_dim]``, DirectCLR's "single" baseline) or ``"none"`` (the
            loss sees ``h`` itself; ``projection_dim`` and ``hidden_dim`` are unused). Jing et al. (ICLR 2022)
            compare the three: dimensional collapse grows from MLP to linear to none.
        negatives: ``"ntxent"`` (2N - 2 negatives from both views, SimCLR) or ``"cross_view"`` (symmetric
            cross-view InfoNCE, N - 1 negatives from the other view: the loss Jing et al. (ICLR 2022) use for
            every arm, so that projector comparisons differ only in the projector).
    """

    def __init__(
        self,
        backbone: nn.Module,
        views: ViewPipeline | None,
        *,
        projection_dim: int = 128,
        hidden_dim: int | None = None,
        temperature: float = 0.5,
        gather_distributed: bool = False,
        projector: str = "mlp",
        negatives: str = "ntxent",
    ) -> None:
        super().__init__()
        check_positive("temperature", temperature)
        if projector not in PROJECTORS:
            raise ValueError(f"projector must be one of {', '.join(PROJECTORS)}, got {projector!r}")
        if negatives not in NEGATIVES:
            raise ValueError(f"negatives must be one of {', '.join(NEGATIVES)}, got {negatives!r}")
        num_features = int(getattr(backbone, "num_features", 0))
        if num_features <= 0:
            raise ValueError("backbone needs a positive `num_features` attribute (its output size)")
        self.backbone = backbone
        self.views = views
        self.projection_head: nn.Module
        if projector == "mlp":
            self.projection_head = SimCLRProjectionHead(
                num_features, hidden_dim=hidden_dim or num_features, out_dim=projection_dim
            )
        elif projector == "linear":
            check_positive("projection_dim", projection_dim)
            self.projection_head = nn.Linear(num_features, int(projection_dim), bias=False)
        else:
            self.projection_head = nn.Identity()
        self.projector = projector
        self.negatives = negatives
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    def forward(self, x: Tensor) -> Tensor:
        """Projections ``z = g(f(x))`` (the space the loss sees), ``[B, projection_dim]`` (``[B, D]`` for
        ``projector="none"``)."""
        return self.projection_head(self.backbone(x))

    def embed(self, x: Tensor) -> Tensor:
        """The representation ``h = f(x)`` used for evaluation, ``[B, num_features]``."""
        return self.backbone(x)

    def make_views(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Two random views ``[B, C, H, W]`` of ``images`` from the view pipeline (``generator``: its random draws)."""
        return draw_two_views("SimCLR", self.views, images, generator)

    def training_step(self, batch: Batch | Tensor | tuple[Tensor, ...]) -> dict[str, Tensor]:
        """One step: views, one forward of both views together, NT-Xent (or cross-view InfoNCE).

        Returns ``{"loss": ..., "embeddings": detached backbone features of view 1 [B, D]}``.
        """
        _, view1, view2 = two_views_of("SimCLR", batch, self.make_views)
        features = self.backbone(torch.cat([view1, view2]))
        z = self.projection_head(features)
        z1, z2 = z.chunk(2)
        if self.negatives == "cross_view":
            loss = cross_view_info_nce(z1, z2, self.temperature, gather_distributed=self.gather_distributed)
        else:
            loss = nt_xent(z1, z2, temperature=self.temperature, gather_distributed=self.gather_distributed)
        return {"loss": loss, "embeddings": features[: view1.shape[0]].detach()}


@dataclass
class SimCLRConfig(MethodConfig):
    """``method: {name: simclr}``: NT-Xent ``temperature``; ``gather_distributed`` contrasts against all ranks;
    ``projector`` and ``negatives`` are the DirectCLR paper's baseline switches (see :class:`SimCLR`)."""

    name: str = "simclr"
    temperature: float = 0.2
    gather_distributed: bool = True
    projector: str = "mlp"
    negatives: str = "ntxent"

    def check(self, where: str = "method") -> None:
        require_greater(f"{where}.temperature", self.temperature, 0)
        require_choice(f"{where}.projector", self.projector, PROJECTORS)
        require_choice(f"{where}.negatives", self.negatives, NEGATIVES)


def build_simclr(cfg: SimCLRConfig, ctx: BuildContext) -> SimCLR:
    """SimCLR on the configured backbone, views and head sizes."""
    return SimCLR(
        ctx.backbone,
        ctx.views,
        projection_dim=ctx.projection_dim,
        hidden_dim=ctx.hidden_dim,
        temperature=cfg.temperature,
        gather_distributed=cfg.gather_distributed,
        projector=cfg.projector,
        negatives=cfg.negatives,
    )


register_method(SimCLRConfig, build_simclr)
