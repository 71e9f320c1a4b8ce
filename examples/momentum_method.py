r"""A new method in one file: a MoCo-style momentum encoder written as an engine hook (docs/architecture.md).

The query branch ``q = g(f(v1))`` is trained; the key branch ``k = g_m(f_m(v2))`` is an exponential moving average
of it, updated after every optimiser step by the ``on_step_end`` hook (He et al., CVPR 2020, Eq. 2)::

    theta_m <- m theta_m + (1 - m) theta,      L = InfoNCE(q, k) over the batch (keys of the other images are
                                               the negatives; MoCo's queue would be one more buffer)

The file declares the method, its typed config and its builder, and registers both; a YAML then trains it::

    method: {name: momentum_example, temperature: 0.2, momentum: 0.99}

Copied into ``src/contrastkit/methods/`` (and imported in its ``__init__``), ``contrastkit train`` finds it; as an
example it registers when imported.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from contrastkit.augment import ViewPipeline, multi_view
from contrastkit.losses import cross_view_info_nce
from contrastkit.method_registry import BuildContext, MethodConfig, register_method, require_greater, require_in_range
from contrastkit.methods import MethodHooks, StepContext, views_of
from contrastkit.models import SimCLRProjectionHead


class MomentumContrast(nn.Module, MethodHooks):
    """Online encoder + projection head trained with InfoNCE against an EMA copy of both."""

    def __init__(
        self, backbone: nn.Module, views: ViewPipeline, projection_dim: int, temperature: float, momentum: float
    ) -> None:
        super().__init__()
        self.backbone, self.views = backbone, views
        self.projection_head = SimCLRProjectionHead(backbone.num_features, backbone.num_features, projection_dim)
        self.momentum_backbone = copy.deepcopy(backbone).requires_grad_(False)
        self.momentum_head = copy.deepcopy(self.projection_head).requires_grad_(False)
        self.temperature, self.momentum = temperature, momentum

    def make_views(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, ...]:
        return multi_view(images, 2, self.views, generator=generator)

    def embed(self, x: Tensor) -> Tensor:
        return self.backbone(x)

    def training_step(self, batch: object) -> dict[str, Tensor]:
        _, (view1, view2) = views_of("MomentumContrast", batch, 2, self.make_views)
        features = self.backbone(view1)
        with torch.no_grad():
            keys = self.momentum_head(self.momentum_backbone(view2))
        loss = cross_view_info_nce(self.projection_head(features), keys, self.temperature, symmetric=False)
        return {"loss": loss, "embeddings": features.detach()}

    @torch.no_grad()
    def on_step_end(self, ctx: StepContext) -> None:
        """The EMA update, after the optimiser step: ``theta_m <- m theta_m + (1 - m) theta``."""
        online = [*self.backbone.parameters(), *self.projection_head.parameters()]
        target = [*self.momentum_backbone.parameters(), *self.momentum_head.parameters()]
        torch._foreach_lerp_(target, online, 1.0 - self.momentum)


@dataclass
class MomentumContrastConfig(MethodConfig):
    """``method: {name: momentum_example}``."""

    name: str = "momentum_example"
    temperature: float = 0.2
    momentum: float = 0.99

    def check(self, where: str = "method") -> None:
        require_greater(f"{where}.temperature", self.temperature, 0)
        require_in_range(f"{where}.momentum", self.momentum, 0, 1, interval="[)")


def build_momentum_contrast(cfg: MomentumContrastConfig, ctx: BuildContext) -> MomentumContrast:
    return MomentumContrast(ctx.backbone, ctx.views, ctx.projection_dim, cfg.temperature, cfg.momentum)


register_method(MomentumContrastConfig, build_momentum_contrast)
