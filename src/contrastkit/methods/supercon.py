r"""SuperCon (Chen, Zhuang & Chang, arXiv 2202.05685, 2022, "SuperCon: Supervised Contrastive Learning for
Imbalanced Skin Lesion Classification"): two stages, reconstructed from SupCon (Khosla et al., NeurIPS 2020).

**Stage 1** (:class:`SuperCon`): two views of every image go through the backbone ``f`` and the projection head
``g = Linear(D, D) -> ReLU -> Linear(D, 128)`` (the MLP head of Khosla et al.); the SupCon loss L_out pulls all
same-class views together::

    x [B, C, H, W], y [B] -> v1, v2 = t(x), t(x) -> z = normalize(g(f(cat(v1, v2))))  [2B, 128]
    L = (tau / tau_base) * mean_i -1/|P(i)| sum_{p in P(i)} log softmax_{a != i}(z_i . z_a / tau)_p,
    P(i) = {p != i : y_p = y_i}  (always holds i's other view)

``supcon_reduction="all_anchors"`` averages over all 2B anchors (Khosla et al.; an anchor without positive adds
0), ``"nonzero_anchors"`` only over the anchors with at least one positive (anchors without one are dropped from
the mean, not counted as 0); with two views every anchor has a positive and they coincide.
Balanced batches (CICL) come from :class:`contrastkit.data.ClassBalancedBatchSampler`.

**Stage 2** (:func:`supercon_classifier`): drop ``g``, put a linear classifier on ``f`` and train it with
``stage2_loss`` (``ce | weighted_ce | focal | class_balanced``) on one view, the encoder frozen
(``freeze_encoder=True``, the linear evaluation of Khosla et al.) or fine-tuned. The paper's stage-2 loss and freezing
are not stated unambiguously in the paper; the defaults are those of Khosla et al. (``ce``, frozen). A frozen head
trained by SGD on raw features converges slowly; ``contrastkit reproduce supercon`` therefore fits stage 2 with the
frozen-head protocol (:mod:`contrastkit.evaluate.frozen_head`: L-BFGS to convergence on standardised features).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from contrastkit._checks import check_labels, check_positive
from contrastkit.augment import ViewPipeline
from contrastkit.data.batch import Batch
from contrastkit.losses import Reduction, supcon
from contrastkit.method_registry import BuildContext, MethodConfig, register_method, require_choice, require_greater
from contrastkit.methods._two_views import draw_two_views, two_views_of
from contrastkit.methods.supervised import SupervisedClassifier
from contrastkit.models import MoCoV2ProjectionHead

SUPCON_REDUCTIONS = ("all_anchors", "nonzero_anchors")


class SuperCon(nn.Module):
    """SuperCon stage 1: backbone + MLP projection head + SupCon loss on two views (see the module docstring).

    Args:
        backbone: module ``[B, C, H, W] -> [B, D]`` with a ``num_features`` attribute (``D``).
        views: view pipeline (None: batches hold ready views, ``Batch(views=(v1, v2), labels=y)``).
        projection_dim: output size of ``g`` (128 in Khosla et al.).
        hidden_dim: hidden size of ``g`` (None: ``D``, as Khosla et al.).
        temperature: tau (default 0.07, the SupCon loss's default in Khosla et al.'s setup; their reported runs
            use 0.1).
        base_temperature: tau_base; the loss is scaled by tau / tau_base (None: no scaling, the plain
            loss L_out without the tau / tau_base factor).
        supcon_reduction: ``"all_anchors"`` (Khosla et al.) or ``"nonzero_anchors"`` (see the module docstring).
        gather_distributed: contrast local anchors with the views of all DDP ranks.
    """

    def __init__(
        self,
        backbone: nn.Module,
        views: ViewPipeline | None,
        *,
        projection_dim: int = 128,
        hidden_dim: int | None = None,
        temperature: float = 0.07,
        base_temperature: float | None = 0.07,
        supcon_reduction: str = "all_anchors",
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        check_positive("temperature", temperature)
        if base_temperature is not None:
            check_positive("base_temperature", base_temperature)
        if supcon_reduction not in SUPCON_REDUCTIONS:
            raise ValueError(f"supcon_reduction must be one of {SUPCON_REDUCTIONS}, got {supcon_reduction!r}")
        num_features = int(getattr(backbone, "num_features", 0))
        if num_features <= 0:
            raise ValueError("backbone needs a positive `num_features` attribute (its output size)")
        self.backbone = backbone
        self.views = views
        self.projection_head = MoCoV2ProjectionHead(num_features, hidden_dim or num_features, projection_dim)
        self.temperature = temperature
        self.base_temperature = base_temperature
        self.supcon_reduction = supcon_reduction
        self.gather_distributed = gather_distributed

    def forward(self, x: Tensor) -> Tensor:
        """Projections ``z = g(f(x))`` ``[B, projection_dim]`` (not normalised; the loss normalises)."""
        return self.projection_head(self.backbone(x))

    def embed(self, x: Tensor) -> Tensor:
        """The representation ``f(x)`` used by stage 2 and for evaluation, ``[B, D]``."""
        return self.backbone(x)

    def make_views(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Two random views ``[B, C, H, W]`` of ``images``."""
        return draw_two_views("SuperCon", self.views, images, generator)

    def loss(self, z: Tensor, labels: Tensor) -> Tensor:
        """SupCon loss of projections ``z`` ``[V * B, d]`` (views stacked) and ``labels`` ``[V * B]``, computed in
        at least float32 (bf16 autocast outputs are promoted)."""
        reduction: Reduction = "none" if self.supcon_reduction == "all_anchors" else "mean"
        out = supcon(
            z.to(torch.promote_types(z.dtype, torch.float32)),
            labels,
            self.temperature,
            self.base_temperature,
            gather_distributed=self.gather_distributed,
            reduction=reduction,
        )
        return out.mean() if reduction == "none" else out

    def training_step(self, batch: Batch | Tensor | tuple[Tensor, ...]) -> dict[str, Tensor]:
        """One step on ``(images, labels)`` or ``Batch(views=(v1, v2), labels=y)``.

        Returns ``{"loss", "embeddings": detached f(v1) [B, D]}``.
        """
        batch, view1, view2 = two_views_of("SuperCon", batch, self.make_views)
        labels = batch.labels
        if labels is None:
            raise ValueError("SuperCon is supervised: pass (images, labels) or Batch(views=..., labels=...)")
        labels = check_labels("labels", labels, view1.shape[0]).to(view1.device)
        features = self.backbone(torch.cat([view1, view2]))
        z = self.projection_head(features)
        loss = self.loss(z, torch.cat([labels, labels]))
        return {"loss": loss, "embeddings": features[: view1.shape[0]].detach()}


def supercon_classifier(
    stage1: SuperCon | nn.Module,
    num_classes: int,
    *,
    stage2_loss: str = "ce",
    freeze_encoder: bool = True,
    class_counts: Sequence[int] | Tensor | None = None,
    views: ViewPipeline | None = None,
    focal_gamma: float = 2.0,
    cb_beta: float = 0.999,
) -> SupervisedClassifier:
    """SuperCon stage 2: a :class:`SupervisedClassifier` on the stage-1 backbone (shared, not copied; the head
    ``g`` is dropped), trained with ``stage2_loss`` on one view from ``views`` (None: the images themselves).

    ``stage1`` is a :class:`SuperCon` (its ``backbone`` is used) or a backbone module itself.
    """
    backbone = stage1.backbone if isinstance(stage1, SuperCon) else stage1
    return SupervisedClassifier(
        backbone,
        views,
        num_classes,
        loss=stage2_loss,
        class_counts=class_counts,
        focal_gamma=focal_gamma,
        cb_beta=cb_beta,
        freeze_encoder=freeze_encoder,
    )


@dataclass
class SuperConConfig(MethodConfig):
    """``method: {name: supercon}``: SuperCon stage 1, SupCon L_out on two views. Stage 2 is
    ``method: {name: supervised, freeze_encoder: true, loss: ...}`` with ``model.init_from`` the stage-1 run."""

    name: str = "supercon"
    temperature: float = 0.1
    base_temperature: float | None = 0.07
    supcon_reduction: str = "all_anchors"
    gather_distributed: bool = True

    def check(self, where: str = "method") -> None:
        require_greater(f"{where}.temperature", self.temperature, 0)
        require_greater(f"{where}.base_temperature", self.base_temperature, 0)
        require_choice(f"{where}.supcon_reduction", self.supcon_reduction, SUPCON_REDUCTIONS)


def build_supercon(cfg: SuperConConfig, ctx: BuildContext) -> SuperCon:
    """SuperCon stage 1 on the configured backbone, views and head sizes."""
    return SuperCon(
        ctx.backbone,
        ctx.views,
        projection_dim=ctx.projection_dim,
        hidden_dim=ctx.hidden_dim,
        temperature=cfg.temperature,
        base_temperature=cfg.base_temperature,
        supcon_reduction=cfg.supcon_reduction,
        gather_distributed=cfg.gather_distributed,
    )


register_method(SuperConConfig, build_supercon, needs_labels=True)
