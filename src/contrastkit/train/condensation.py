r"""Dataset condensation's training: the outer loop (:func:`condense`) and the evaluation of a set
(:func:`evaluate_synset`), both training their networks through :class:`~contrastkit.train.engine.Engine` with
:func:`train_on_set`. DC (Zhao, Mopuri & Bilen, ICLR 2021), DSA (Zhao & Bilen, ICML 2021), DCC / DSAC (Lee et al.,
ICML 2022).

**Condensation** (:func:`condense`; the switches, the matching loss and the algorithm are documented in
:mod:`contrastkit.methods.dcc`). Per outer iteration ``ol`` a fresh net ``theta``; per inner step ``il``::

    S <- SGD(lr_img, momentum_img) step on L = matching_loss(theta; dsa(S), dsa(T))     (gradient w.r.t. S)
    if il < inner_loop - 1: train_on_set(theta, S, epochs=T, batch=batch_train, lr=lr_net)  (DSA per image)

The first line is a bi-level step on the *images* through a net that is thrown away after the outer iteration;
it is the one gradient step here outside the engine. DC's network optimiser is SGD without momentum, so a fresh
optimiser per :func:`train_on_set` call equals DC's one optimiser per outer iteration.

**Evaluation** (:func:`evaluate_synset`, the protocol of :class:`~contrastkit.evaluate.condensation.SynsetEvalConfig`,
DC's evaluation protocol): ``K`` fresh nets, each trained on the set with SGD (lr 0.01, momentum 0.9,
weight decay 5e-4, batch 256) for ``E`` epochs, ``lr x 0.1`` from epoch ``E // 2`` on, then tested on the real test
split. Baselines: :func:`random_real_subset` and :func:`whole_data_accuracy`. DC's choice of ``E``
(:func:`dc_eval_epochs`): 1,000 epochs when the training views are augmented, 300 when not.

**How far a set moved** (:func:`image_change`): ``||S - S0||_F / ||S0||_F`` between the learned set ``S`` and the
real images ``S0 [C * ipc, ch, H, W]`` it started from, both in the (standardised) units of the real images; the
ratio of the RMS pixel change to the RMS of the starting images, 0 for an untouched set (random selection).
:func:`condense` records it after every outer iteration (:attr:`CondensationResult.image_change`).

**Seeding.** :func:`train_on_set` follows the engine's rule: the order of epoch ``e`` is
``epoch_order(M, seed, e)`` and the views of step ``s`` are drawn from ``step_generator(seed, s)``. :func:`condense`
draws each inner training's ``seed`` from its own generator (seeded with its ``seed``); :func:`evaluate_synset`
uses net ``k``'s seed ``seed * 1009 + k`` (also its initialisation). Both are bit-identical on CPU across calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from contrastkit._checks import check_labels, check_tensor
from contrastkit.augment.dsa import DSAConfig, dsa_apply, sample_dsa_params
from contrastkit.data.sources import TensorSource
from contrastkit.evaluate.condensation import SYNSET_AUGMENTS, SynsetEvalConfig, SynsetEvaluation, test_accuracy
from contrastkit.methods.dcc import (
    CondensationConfig,
    SetClassifier,
    initial_images,
    matching_loss,
    real_class_indices,
    sample_real,
    use_contrastive,
)
from contrastkit.train.engine import Engine
from contrastkit.train.runtime import LocalRuntime

__all__ = [
    "CondensationResult",
    "condense",
    "dc_eval_epochs",
    "evaluate_synset",
    "image_change",
    "random_real_subset",
    "train_on_set",
    "train_on_synset",
    "whole_data_accuracy",
]

LR_DECAY = 0.1  # DC's evaluation: lr x 0.1 once, from epoch E // 2 on
EVAL_EPOCHS_PLAIN, EVAL_EPOCHS_AUGMENTED = 300, 1000  # DC/DSA's epoch_eval_train without / with augmentation


def dc_eval_epochs(augment: str) -> int:
    """DC's (and DSA's, DCC's) number of evaluation epochs: 1,000 when the nets train on augmented views
    (``augment`` ``"dc"`` or ``"dsa"``), 300 when not (``"none"``) (Zhao et al., ICLR 2021: "training with data
    augmentation needs more epochs")."""
    if augment not in SYNSET_AUGMENTS:
        raise ValueError(f"augment must be one of {list(SYNSET_AUGMENTS)}, got {augment!r}")
    return EVAL_EPOCHS_PLAIN if augment == "none" else EVAL_EPOCHS_AUGMENTED


def image_change(images: Tensor, start: Tensor) -> float:
    """How far a set moved from its starting images: ``||images - start||_F / ||start||_F``.

    ``images`` and ``start`` are ``[M, ch, H, W]`` in the same units (the standardised pixels of the real data), so
    the value is the RMS pixel change relative to the RMS of the starting images: 0 when nothing moved, 1 when the
    change is as large as the images themselves. Computed in float64.
    """
    check_tensor("images", images, 4, floating=True)
    if images.shape != start.shape:
        raise ValueError(f"images {tuple(images.shape)} and start {tuple(start.shape)} must have the same shape")
    scale = float(start.detach().double().norm())
    if scale == 0.0:
        raise ValueError("the starting images are all zero, so a relative change is undefined; pass non-zero images")
    return float((images.detach().double() - start.detach().double()).norm()) / scale


def train_on_set(
    net: nn.Module,
    images: Tensor,
    labels: Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    lr_decay_epoch: int | None = None,
    augment: DSAConfig | None = None,
    shared_family: bool = True,
) -> nn.Module:
    """Train the classifier ``net`` in place on ``(images [M, ch, H, W], labels [M])`` through the engine; returns it.

    ``epochs`` epochs of SGD(``lr``, ``momentum``, ``weight_decay``) on ``CE(net(view), label)``
    (:class:`~contrastkit.methods.dcc.SetClassifier`), batches of ``batch_size`` in the shuffled order of the epoch,
    the last partial batch included (DC trains on every image): ``ceil(M / batch_size)`` steps per epoch,
    ``epochs * ceil(M / batch_size)`` in all. The learning rate is ``lr * 0.1`` from step
    ``lr_decay_epoch * ceil(M / batch_size)`` on (None: constant). Views: DSA per image with ``augment`` (one
    family per batch when ``shared_family``), the images as they are when None. Runs on ``images.device`` with
    no autocast (the dtype of ``net`` and ``images``), seeded by ``seed`` (module docstring).
    """
    check_tensor("images", images, 4, floating=True)
    check_labels("labels", labels, images.shape[0])
    if epochs < 0 or batch_size < 1:
        raise ValueError(f"need epochs >= 0 and batch_size >= 1, got {epochs} and {batch_size}")
    source = TensorSource(images, labels, drop_last=False)
    steps_per_epoch = source.num_batches(batch_size)
    max_steps = epochs * steps_per_epoch
    if max_steps == 0:
        return net
    lr_factor: Callable[[float], float] | None = None
    if lr_decay_epoch is not None and lr_decay_epoch < epochs:
        # the engine's progress is step / max_steps: the same division gives exactly this value at the switch step
        switch = (lr_decay_epoch * steps_per_epoch) / max_steps

        def decayed(progress: float) -> float:
            return LR_DECAY if progress >= switch else 1.0

        lr_factor = decayed

    runtime = LocalRuntime(images.device, "32")
    model = SetClassifier(net, augment, shared_family=shared_family)  # the runtime moves it to images.device
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    Engine(model, source, [optimizer], batch_size=batch_size, seed=seed, max_steps=max_steps, lr_factor=lr_factor,
           runtime=runtime).run()  # fmt: skip
    return net


def train_on_synset(
    net: nn.Module, images: Tensor, labels: Tensor, config: SynsetEvalConfig, *, seed: int
) -> nn.Module:
    """Train ``net`` in place on ``(images [M, ch, H, W], labels [M])`` with the evaluation protocol of ``config``
    (:func:`train_on_set` with its lr, momentum, weight decay, batch, epochs, the decay at ``E // 2`` and its
    augmentation); returns it."""
    augment, shared_family = config.augmentation(int(images.shape[-1]))
    return train_on_set(
        net,
        images,
        labels,
        epochs=config.epochs,
        batch_size=config.batch,
        lr=config.lr,
        seed=seed,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        lr_decay_epoch=config.lr_decay_epoch(),
        augment=augment,
        shared_family=shared_family,
    )


@dataclass
class CondensationResult:
    """The learned set and its log.

    Attributes:
        images: ``[C * ipc, ch, H, W]`` synthetic images (detached), in the space of the real images.
        labels: ``[C * ipc]`` int64, ``repeat_interleave(arange(C), ipc)``.
        history: one dict per matching step: ``outer``, ``inner``, ``loss`` (the optimised one), ``used``
            (``"dc"`` or ``"dcc"``).
        seconds_per_outer: wall-clock seconds of each outer iteration.
        start: ``[C * ipc, ch, H, W]`` the images the set started from (real images, or noise with
            ``init="noise"``).
        image_change: :func:`image_change` of the set from ``start`` after each outer iteration.
    """

    images: Tensor
    labels: Tensor
    history: list[dict[str, Any]]
    seconds_per_outer: list[float]
    start: Tensor
    image_change: list[float]

    @property
    def contrastive_share(self) -> float:
        """The fraction of matching steps that optimised the contrastive (DCC) loss (0 for DC)."""
        return sum(h["used"] == "dcc" for h in self.history) / max(1, len(self.history))


def condense(
    images: Tensor,
    labels: Tensor,
    num_classes: int,
    make_net: Callable[[], nn.Module],
    config: CondensationConfig,
    *,
    seed: int = 0,
    log_every: int | None = None,
    log: Callable[[str], None] = print,
) -> CondensationResult:
    """Learn ``config.ipc`` images per class from real ``images [N, ch, H, W]`` / ``labels [N]``.

    ``make_net()`` returns a fresh classifier with ``num_classes`` outputs; it is called under a forked CPU RNG
    seeded from ``(seed, outer iteration)``, so its initialisation is reproducible. Everything random draws from
    a generator seeded by ``seed`` (the real batches, DSA's parameters, each inner training's seed): the same call
    gives bit-identical sets on CPU. Runs on ``images.device``.
    """
    check_tensor("images", images, 4, floating=True)
    check_labels("labels", labels, images.shape[0], num_classes)
    inner_loop, epochs = config.resolved_loops()
    device = images.device
    generator = torch.Generator().manual_seed(seed)
    class_indices = real_class_indices(labels, num_classes, config.ipc)
    smallest = min(idx.numel() for idx in class_indices)
    batch_real = min(config.batch_real, smallest)
    ipc, c = config.ipc, num_classes
    syn_labels = torch.arange(c, device=device).repeat_interleave(ipc)
    if config.init == "real":
        init = sample_real(images, class_indices, ipc, generator).reshape(c * ipc, *images.shape[1:])
    else:
        init = torch.randn((c * ipc, *images.shape[1:]), generator=generator).to(device)
    syn = init.detach().clone().requires_grad_(True)
    opt_img = torch.optim.SGD([syn], lr=config.lr_img, momentum=config.momentum_img)
    size = (images.shape[2], images.shape[3])
    real_groups = torch.arange(c, device=device).repeat_interleave(batch_real)
    history: list[dict[str, Any]] = []
    seconds: list[float] = []
    changes: list[float] = []
    for ol in range(config.outer_loop):
        t0 = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 1_000_003 + ol)
            net = make_net().to(device)
        net.train()
        for il in range(inner_loop):
            contrastive = config.matching == "dcc" and use_contrastive(ol, il, config.outer_warmup, config.inner_warmup)
            real = sample_real(images, class_indices, batch_real, generator).reshape(c * batch_real, *images.shape[1:])
            syn_in = syn
            if config.dsa:
                params = sample_dsa_params(c, size, config.dsa_config, generator=generator, device=device)
                real = dsa_apply(real, params, real_groups)
                syn_in = dsa_apply(syn, params, syn_labels)
            loss = matching_loss(
                net,
                syn_in.reshape(c, ipc, *images.shape[1:]),
                real.reshape(c, batch_real, *images.shape[1:]),
                contrastive=contrastive,
                metric=config.dis_metric,
                reduction=config.real_grad_reduction,
                chunk_size=config.vmap_chunk_size,
                class_grad_method=config.class_grad_method,
            )
            opt_img.zero_grad(set_to_none=True)
            # allowed outside the engine: the bi-level outer step takes the gradient w.r.t. the synthetic images
            # through a fresh net of this outer iteration (net parameters detached); it is no training step of a
            # method, and the net's own training below goes through the engine (train_on_set)
            loss.backward()
            opt_img.step()
            history.append(
                {"outer": ol, "inner": il, "loss": float(loss.detach()), "used": "dcc" if contrastive else "dc"}
            )
            if il < inner_loop - 1 and epochs > 0:
                net_seed = int(torch.randint(2**62, (), generator=generator))
                augment = config.dsa_config if config.dsa else None
                train_on_set(net, syn.detach(), syn_labels, epochs=epochs, batch_size=config.batch_train,
                             lr=config.lr_net, seed=net_seed, augment=augment)  # fmt: skip
        seconds.append(time.perf_counter() - t0)
        changes.append(image_change(syn, init))
        if log_every and (ol % log_every == 0 or ol == config.outer_loop - 1):
            recent = [h["loss"] for h in history if h["outer"] == ol]
            log(
                f"outer {ol}: loss {sum(recent) / len(recent):.4f} ({history[-1]['used']}), {seconds[-1]:.2f}s, "
                f"image change {changes[-1]:.3f}"
            )
    return CondensationResult(syn.detach().clone(), syn_labels, history, seconds, init.detach().clone(), changes)


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

    Net ``k`` is initialised under the CPU RNG seeded with ``seed * 1009 + k`` and trained (:func:`train_on_synset`)
    with the same seed, so an evaluation is repeatable and two sets evaluated with the same ``seed`` meet the same
    nets.
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
        train_on_synset(net, images, labels, cfg, seed=run_seed)
        accuracies.append(test_accuracy(net, test_images, test_labels, cfg.test_batch))
    return SynsetEvaluation(tuple(accuracies), time.perf_counter() - start)


def random_real_subset(
    images: Tensor, labels: Tensor, num_classes: int, ipc: int, *, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """``ipc`` random real images per class, class-major: ``([C * ipc, ...], [C * ipc])`` (random selection).

    The same images :func:`condense` starts from with ``init="real"`` and the same seed
    (:func:`contrastkit.methods.dcc.initial_images`).
    """
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
