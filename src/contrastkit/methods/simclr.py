"""SimCLR (Chen et al., ICML 2020, "A Simple Framework for Contrastive Learning of Visual Representations").

Two augmented views of each image go through one backbone ``f`` and a projection head ``g``; the NT-Xent loss
pulls the two projections of an image together against the other ``2N - 2`` projections in the batch:

    z = g(f(t(x))),  L = nt_xent(z^(1), z^(2), temperature)

The method is a small composition of blocks (views, backbone, head, loss); drive it from any loop::

    method = SimCLR(resnet18(in_channels=1, small_stem=True, width=0.25), views=simclr_views(28, 1))
    loss = method.training_step(images)["loss"]; loss.backward(); optimizer.step()
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from contrastkit._checks import check_images, check_positive
from contrastkit.augment import ViewPipeline, multi_view
from contrastkit.losses import nt_xent
from contrastkit.methods.base import Batch, ViewBatch, split_batch
from contrastkit.models import SimCLRProjectionHead


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
    ) -> None:
        super().__init__()
        check_positive("temperature", temperature)
        num_features = int(getattr(backbone, "num_features", 0))
        if num_features <= 0:
            raise ValueError("backbone needs a positive `num_features` attribute (its output size)")
        self.backbone = backbone
        self.views = views
        self.projection_head = SimCLRProjectionHead(
            num_features, hidden_dim=hidden_dim or num_features, out_dim=projection_dim
        )
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    def forward(self, x: Tensor) -> Tensor:
        """Projections ``z = g(f(x))``, ``[B, projection_dim]``."""
        return self.projection_head(self.backbone(x))

    def embed(self, x: Tensor) -> Tensor:
        """The representation ``h = f(x)`` used for evaluation, ``[B, num_features]``."""
        return self.backbone(x)

    def make_views(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Two random views ``[B, C, H, W]`` of ``images`` from the view pipeline (``generator``: its random draws)."""
        if self.views is None:
            raise ValueError("SimCLR(views=None) has no view pipeline: pass ready views or construct it with views=")
        images = check_images("images", images)
        if images.shape[0] < 2:
            raise ValueError("SimCLR needs a batch of at least 2 images (every image is a negative for the others)")
        view1, view2 = multi_view(images, 2, self.views, generator=generator)
        return view1, view2

    def _views_of(self, batch: Batch) -> tuple[Tensor, Tensor]:
        if isinstance(batch, ViewBatch):
            if len(batch.views) != 2:
                raise ValueError(f"SimCLR trains on 2 views, got a ViewBatch with {len(batch.views)}")
            return check_images("view1", batch.views[0]), check_images("view2", batch.views[1])
        if self.views is None:
            if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                raise ValueError("SimCLR(views=None) expects batches of two ready views (view1, view2)")
            return check_images("view1", batch[0]), check_images("view2", batch[1])
        images, _ = split_batch(batch)
        return self.make_views(images)

    def training_step(self, batch: Batch) -> dict[str, Tensor]:
        """One step: views, one forward of both views together, NT-Xent.

        Returns ``{"loss": ..., "embeddings": detached backbone features of view 1 [B, D]}``.
        """
        view1, view2 = self._views_of(batch)
        if view1.shape[0] < 2 or view1.shape != view2.shape:
            raise ValueError(
                f"SimCLR needs two views of the same >= 2 images, got {tuple(view1.shape)} and {tuple(view2.shape)}"
            )
        features = self.backbone(torch.cat([view1, view2]))
        z = self.projection_head(features)
        z1, z2 = z.chunk(2)
        loss = nt_xent(z1, z2, temperature=self.temperature, gather_distributed=self.gather_distributed)
        return {"loss": loss, "embeddings": features[: view1.shape[0]].detach()}
