r"""Evaluation of a condensed (synthetic) training set, as in dataset condensation (DC: Zhao, Mopuri & Bilen,
ICLR 2021, whose evaluation protocol this is; DSA: Zhao & Bilen, ICML 2021; DCC: Lee et al., ICML 2022).

A synthetic set ``S`` (``[M, ch, H, W]`` with labels ``[M]``) is judged by training ``K`` fresh randomly
initialised networks on it and testing them on the real test split:

* SGD, lr ``0.01``, momentum ``0.9``, weight decay ``5e-4``, batch ``256``, ``E`` epochs over ``S``;
* the learning rate is multiplied by ``0.1`` once, from epoch ``E // 2`` on (0-based; DC decays after epoch
  ``E // 2 + 1`` of ``E + 1``); no decay when ``E = 1``;
* augmentation while training (``augment``): ``"none"``; ``"dsa"`` (DSA ops, one family per batch, parameters per
  image: DSA/DSAC); ``"dc"`` (DC's MNIST augmentation ``crop_scale_rotate``, emulated with the DSA ops: one of
  crop (4 px shift), scale (x [1/1.2, 1.2]) or rotate (+-45 deg) per image);
* the result is the test accuracy of each net; report mean +- std over the ``K`` nets (and, across condensation
  runs, over runs x nets).

Baselines of the same protocol: ``random_real_subset`` (``ipc`` random real images per class, the "random
selection" of the DC paper) and ``whole_data_accuracy`` (the upper bound: the same network trained on the whole
training split).

This module holds the protocol (:class:`SynsetEvalConfig`), its result and the test pass; the training itself goes
through the engine, so ``train_on_synset``, ``evaluate_synset`` and the baselines live in
:mod:`contrastkit.train.condensation`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from contrastkit._checks import check_labels
from contrastkit.augment.dsa import DSAConfig

__all__ = ["SYNSET_AUGMENTS", "SynsetEvalConfig", "SynsetEvaluation", "dc_augment_config", "test_accuracy"]

SYNSET_AUGMENTS: tuple[str, ...] = ("none", "dc", "dsa")


def dc_augment_config(image_size: int = 28) -> DSAConfig:
    """DC's evaluation augmentation for MNIST (``crop_scale_rotate``: crop 4 px, scale 0.2, rotate 45 deg)."""
    return DSAConfig(strategy="crop_scale_rotate", ratio_crop_pad=4 / image_size, ratio_scale=1.2, ratio_rotate=45.0)


@dataclass(frozen=True)
class SynsetEvalConfig:
    """Protocol of ``evaluate_synset`` (defaults: DC/DSA/DCC ``evaluate_synset`` without augmentation).

    ``dsa_config`` is used by ``augment="dsa"``; ``augment="dc"`` uses :func:`dc_augment_config` of the image size.
    ``test_batch`` only chunks the test forward pass.
    """

    num_nets: int = 10
    epochs: int = 300
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch: int = 256
    augment: str = "none"
    dsa_config: DSAConfig = field(default_factory=lambda: DSAConfig(strategy="color_crop_cutout_scale_rotate"))
    test_batch: int = 1000

    def __post_init__(self) -> None:
        for name in ("num_nets", "epochs", "batch", "test_batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        for name in ("lr", "momentum", "weight_decay"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.augment not in SYNSET_AUGMENTS:
            raise ValueError(f"augment must be one of {list(SYNSET_AUGMENTS)}, got {self.augment!r}")

    def augmentation(self, image_size: int) -> tuple[DSAConfig | None, bool]:
        """``(ops, shared_family)`` of the training views of ``image_size``-pixel images: ``"dsa"``: ``dsa_config``
        with one family per batch (DSA's evaluation); ``"dc"``: :func:`dc_augment_config` with one of crop, scale or
        rotate per image; ``"none"``: ``(None, True)``."""
        if self.augment == "dsa":
            return self.dsa_config, True
        if self.augment == "dc":
            return dc_augment_config(image_size), False
        return None, True

    def lr_decay_epoch(self) -> int | None:
        """The 0-based epoch from which the learning rate is ``lr * 0.1``: ``epochs // 2`` (None for one epoch)."""
        return self.epochs // 2 if self.epochs >= 2 else None


@dataclass(frozen=True)
class SynsetEvaluation:
    """Test accuracies of the ``K`` nets trained on one set, their mean and std (population std, ddof 0, as in DC)."""

    accuracies: tuple[float, ...]
    seconds: float

    @property
    def mean(self) -> float:
        return sum(self.accuracies) / len(self.accuracies)

    @property
    def std(self) -> float:
        m = self.mean
        return math.sqrt(sum((a - m) ** 2 for a in self.accuracies) / len(self.accuracies))

    def __str__(self) -> str:
        return f"{100 * self.mean:.2f} +- {100 * self.std:.2f} % over {len(self.accuracies)} nets"


@torch.no_grad()
def test_accuracy(net: nn.Module, images: Tensor, labels: Tensor, batch: int = 1000) -> float:
    """Top-1 accuracy of ``net`` (eval mode) on ``(images [N, ...], labels [N])``."""
    check_labels("labels", labels, images.shape[0])
    net.eval()
    correct = 0
    for start in range(0, images.shape[0], batch):
        logits = net(images[start : start + batch])
        correct += int((logits.argmax(1) == labels[start : start + batch].to(logits.device)).sum())
    return correct / max(1, images.shape[0])
