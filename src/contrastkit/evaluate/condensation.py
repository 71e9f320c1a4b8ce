r"""Evaluation of a condensed (synthetic) training set, as in dataset condensation (DC: Zhao, Mopuri & Bilen,
ICLR 2021, ``utils.py: evaluate_synset``; DSA: Zhao & Bilen, ICML 2021; DCC: Lee et al., ICML 2022).

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

Baselines of the same protocol: :func:`random_real_subset` (``ipc`` random real images per class, the "random
selection" of the DC paper) and :func:`whole_data_accuracy` (the upper bound: the same network trained on the whole
training split).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contrastkit._checks import check_labels, check_tensor
from contrastkit.augment.dsa import DSAConfig, dsa_random

__all__ = [
    "SYNSET_AUGMENTS",
    "SynsetEvalConfig",
    "SynsetEvaluation",
    "dc_augment_config",
    "evaluate_synset",
    "random_real_subset",
    "test_accuracy",
    "train_on_synset",
    "whole_data_accuracy",
]

SYNSET_AUGMENTS: tuple[str, ...] = ("none", "dc", "dsa")


def dc_augment_config(image_size: int = 28) -> DSAConfig:
    """DC's evaluation augmentation for MNIST (``crop_scale_rotate``: crop 4 px, scale 0.2, rotate 45 deg)."""
    return DSAConfig(strategy="crop_scale_rotate", ratio_crop_pad=4 / image_size, ratio_scale=1.2, ratio_rotate=45.0)


@dataclass(frozen=True)
class SynsetEvalConfig:
    """Protocol of :func:`evaluate_synset` (defaults: DC/DSA/DCC ``evaluate_synset`` without augmentation).

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


@dataclass(frozen=True)
class SynsetEvaluation:
    """Test accuracies of the ``K`` nets trained on one set, their mean and std (ddof 0 as numpy, DC's code)."""

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


def _augment(x: Tensor, config: SynsetEvalConfig, generator: torch.Generator) -> Tensor:
    if config.augment == "dsa":
        return dsa_random(x, config.dsa_config, generator=generator, shared_family=True)
    if config.augment == "dc":
        return dsa_random(x, dc_augment_config(x.shape[-1]), generator=generator, shared_family=False)
    return x


def train_on_synset(
    net: nn.Module, images: Tensor, labels: Tensor, config: SynsetEvalConfig, *, generator: torch.Generator
) -> nn.Module:
    """Train ``net`` in place on ``(images [M, ch, H, W], labels [M])`` with the protocol of ``config``; returns it."""
    check_tensor("images", images, 4, floating=True)
    check_labels("labels", labels, images.shape[0])
    net.train()
    optimizer = torch.optim.SGD(
        net.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    n = images.shape[0]
    for epoch in range(config.epochs):
        if config.epochs >= 2 and epoch == config.epochs // 2:
            for group in optimizer.param_groups:
                group["lr"] = config.lr * 0.1
        order = torch.randperm(n, generator=generator).to(images.device)
        for start in range(0, n, config.batch):
            idx = order[start : start + config.batch]
            loss = F.cross_entropy(net(_augment(images[idx], config, generator)), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return net


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


def evaluate_synset(
    make_net: Callable[[], nn.Module],
    images: Tensor,
    labels: Tensor,
    test_images: Tensor,
    test_labels: Tensor,
    config: SynsetEvalConfig | None = None,
    *,
    seed: int = 0,
) -> SynsetEvaluation:
    """Train ``config.num_nets`` fresh nets from ``make_net()`` on the set and test each; see the module docstring.

    Net ``k`` is initialised under the CPU RNG seeded with ``seed * 1009 + k`` and trained with a generator of the
    same seed, so an evaluation is repeatable and two sets evaluated with the same ``seed`` meet the same nets.
    """
    cfg = config or SynsetEvalConfig()
    check_tensor("test_images", test_images, 4, floating=True)
    start = time.perf_counter()
    accuracies = []
    for k in range(cfg.num_nets):
        run_seed = seed * 1009 + k
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(run_seed)
            net = make_net().to(images.device)
        generator = torch.Generator().manual_seed(run_seed)
        train_on_synset(net, images, labels, cfg, generator=generator)
        accuracies.append(test_accuracy(net, test_images, test_labels, cfg.test_batch))
    return SynsetEvaluation(tuple(accuracies), time.perf_counter() - start)


def random_real_subset(
    images: Tensor, labels: Tensor, num_classes: int, ipc: int, *, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """``ipc`` random real images per class, class-major: ``([C * ipc, ...], [C * ipc])`` (random selection).

    The same images :func:`contrastkit.methods.condense` starts from with ``init="real"`` and the same seed.
    """
    from contrastkit.methods.dcc import initial_images

    return initial_images(images, labels, num_classes, ipc, seed)


def whole_data_accuracy(
    make_net: Callable[[], nn.Module],
    images: Tensor,
    labels: Tensor,
    test_images: Tensor,
    test_labels: Tensor,
    *,
    epochs: int = 1,
    lr: float = 0.01,
    batch: int = 256,
    seed: int = 0,
) -> float:
    """Upper bound: one net trained on the whole training set (SGD momentum 0.9, wd 5e-4, lr step at E/2)."""
    cfg = SynsetEvalConfig(num_nets=1, epochs=epochs, lr=lr, batch=batch)
    return evaluate_synset(make_net, images, labels, test_images, test_labels, cfg, seed=seed).accuracies[0]
