r"""Supervised classifier on a backbone: the imbalanced-learning baselines and SuperCon's stage 2.

``logits = W f(t(x)) + b`` (``f`` the backbone ``[B, C, H, W] -> [B, D]``, ``t`` one random view, ``W`` a
:class:`~contrastkit.models.LinearClassifier` ``[D] -> [K]``), trained with one of (``n_y`` the training count of
class y, weights from the TRAINING split):

* ``"ce"``: ``mean_n CE_n``;
* ``"weighted_ce"``: ``sum_n w_{y_n} CE_n / sum_n w_{y_n}`` with inverse-frequency ``w_c ∝ 1 / n_c`` (sum C),
  PyTorch's ``F.cross_entropy(weight=w)``;
* ``"focal"``: ``mean_n -(1 - p_t)^gamma log p_t`` (Lin et al. 2017, gamma = 2, no alpha);
* ``"class_balanced"``: ``mean_n w_{y_n} CE_n`` with ``w_c ∝ (1 - beta) / (1 - beta^{n_c})`` (sum C; Cui et al.
  2019, beta = 0.999).

``freeze_encoder=True`` (SupCon's linear evaluation, Khosla et al., NeurIPS 2020) trains only ``W``: the backbone's
parameters get ``requires_grad=False``, it stays in eval mode (no BatchNorm statistics update) and runs under
``no_grad``. Drive it from any loop::

    model = SupervisedClassifier(backbone, simclr_views(28, 1), num_classes=10, loss="focal")
    loss = model.training_step((images, labels))["loss"]  # back-propagate it and step the optimiser in any loop
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from contrastkit._checks import check_images, check_labels, check_positive
from contrastkit.augment import ViewPipeline
from contrastkit.data.batch import Batch
from contrastkit.losses import CLASSIFICATION_LOSSES, build_classification_loss
from contrastkit.method_registry import (
    BuildContext,
    MethodConfig,
    register_method,
    require_at_least,
    require_choice,
    require_in_range,
)
from contrastkit.methods.base import views_of
from contrastkit.models import LinearClassifier


def _at_least_float32(x: Tensor) -> Tensor:
    """Features for the classifier: bf16 (autocast) promoted to float32, float32 and float64 kept."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


class SupervisedClassifier(nn.Module):
    """Backbone + linear classifier trained with a (re-weighted) classification loss on one random view.

    Args:
        backbone: module ``[B, C, H, W] -> [B, D]`` with a ``num_features`` attribute (``D``).
        views: view pipeline applied to every training batch (None: batches are already augmented).
        num_classes: K.
        loss: ``"ce" | "weighted_ce" | "focal" | "class_balanced"``.
        class_counts: [K] training samples per class (needed by ``weighted_ce`` and ``class_balanced``).
        focal_gamma: gamma of the focal loss (2 in Lin et al.).
        cb_beta: beta of the class-balanced weights (0.999).
        freeze_encoder: train only the classifier (SupCon linear evaluation) instead of end to end. The flag
            sets ``requires_grad`` of EVERY backbone parameter (False when frozen, True otherwise).
    """

    def __init__(
        self,
        backbone: nn.Module,
        views: ViewPipeline | None,
        num_classes: int,
        *,
        loss: str = "ce",
        class_counts: Sequence[int] | Tensor | None = None,
        focal_gamma: float = 2.0,
        cb_beta: float = 0.999,
        freeze_encoder: bool = False,
    ) -> None:
        super().__init__()
        num_features = int(getattr(backbone, "num_features", 0))
        if num_features <= 0:
            raise ValueError("backbone needs a positive `num_features` attribute (its output size)")
        check_positive("num_classes", num_classes)
        if class_counts is not None and len(class_counts) != num_classes:
            raise ValueError(f"class_counts has {len(class_counts)} entries but num_classes is {num_classes}")
        self.backbone = backbone
        self.views = views
        self.num_classes = int(num_classes)
        self.classifier = LinearClassifier(num_features, self.num_classes)
        self.loss_name = loss
        self.criterion = build_classification_loss(loss, class_counts, focal_gamma=focal_gamma, cb_beta=cb_beta)
        self.freeze_encoder = bool(freeze_encoder)
        # the whole encoder is trained or none of it (also undoes an earlier freeze of a shared backbone)
        self.backbone.requires_grad_(not self.freeze_encoder)
        if self.freeze_encoder:
            self.backbone.eval()

    def train(self, mode: bool = True) -> SupervisedClassifier:
        """Like ``nn.Module.train``, but a frozen backbone stays in eval mode."""
        super().train(mode)
        if self.freeze_encoder:
            self.backbone.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters the optimiser should update (only the classifier's when the encoder is frozen)."""
        return [p for p in self.parameters() if p.requires_grad]

    def embed(self, x: Tensor) -> Tensor:
        """The representation ``f(x)``, ``[B, D]``."""
        return self.backbone(x)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``[B, K]`` of images ``x`` (no augmentation)."""
        if self.freeze_encoder:
            with torch.no_grad():
                features = self.backbone(x)
            return self.classifier(_at_least_float32(features))
        return self.classifier(_at_least_float32(self.backbone(x)))

    def predict(self, x: Tensor) -> Tensor:
        """Class logits ``[B, K]`` (the optional classifier member of the method protocol; monitors report the
        held-out accuracy and macro-F1 of its argmax)."""
        return self(x)

    def make_views(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor]:
        """One random view ``[B, C, H, W]`` of ``images`` (the images themselves when ``views`` is None)."""
        images = check_images("images", images)
        return (images if self.views is None else self.views(images, generator=generator),)

    def training_step(self, batch: Batch | Tensor | tuple[Tensor, ...]) -> dict[str, Tensor]:
        """One step on ``(images, labels)`` (or ``Batch(views=(view,), labels=y)``): ``{"loss", "embeddings"}``."""
        batch, (view,) = views_of("SupervisedClassifier", batch, 1, self.make_views)
        labels = batch.labels
        if labels is None:
            raise ValueError("a supervised step needs labels: pass (images, labels) or Batch(views=..., labels=...)")
        labels = check_labels("labels", labels, view.shape[0], self.num_classes).to(view.device)
        if self.freeze_encoder:
            with torch.no_grad():
                features = self.backbone(view)
        else:
            features = self.backbone(view)
        logits = self.classifier(_at_least_float32(features))
        return {"loss": self.criterion(logits, labels), "embeddings": features.detach()}


@dataclass
class SupervisedConfig(MethodConfig):
    """``method: {name: supervised}``: a linear classifier on the backbone trained with ``loss``
    (``ce | weighted_ce | focal | class_balanced``), end to end or on a frozen encoder (``freeze_encoder``; with
    ``model.init_from`` a stage-1 run this is SuperCon's stage 2)."""

    name: str = "supervised"
    loss: str = "ce"
    focal_gamma: float = 2.0
    cb_beta: float = 0.999
    freeze_encoder: bool = False

    def check(self, where: str = "method") -> None:
        require_choice(f"{where}.loss", self.loss, CLASSIFICATION_LOSSES)
        require_at_least(f"{where}.focal_gamma", self.focal_gamma, 0)
        require_in_range(f"{where}.cb_beta", self.cb_beta, 0, 1, interval="[)")


def build_supervised(cfg: SupervisedConfig, ctx: BuildContext) -> SupervisedClassifier:
    """The classifier on the configured backbone, one view per image, class weights from the training counts."""
    return SupervisedClassifier(
        ctx.backbone,
        ctx.views,
        ctx.num_classes,
        loss=cfg.loss,
        class_counts=ctx.class_counts,
        focal_gamma=cfg.focal_gamma,
        cb_beta=cfg.cb_beta,
        freeze_encoder=cfg.freeze_encoder,
    )


register_method(SupervisedConfig, build_supervised, needs_labels=True)
