r"""Dataset condensation by gradient matching: DC (Zhao, Mopuri & Bilen, ICLR 2021), DSA (Zhao & Bilen, ICML 2021)
and DCC / DSAC (Lee et al., "Dataset Condensation with Contrastive Signals", ICML 2022), with the algorithm and
settings of Lee et al., plus seeded generators, distinct loop names and a log of the loss actually
optimised.

A synthetic set ``S [C * ipc, ch, H, W]`` (labels ``[0]*ipc + [1]*ipc + ...``) is learned. For each outer
iteration ``ol`` a fresh network ``theta`` is drawn; then for ``il = 0 .. inner_loop - 1``::

    use_dcc = matching == "dcc" and (ol >= outer_warmup or il >= inner_warmup)       # bi-level warm-up
    G_r[c]  = grad_theta CE(theta; dsa(T_c, p_c))        for every class at once (torch.func.vmap)
    DC:  L = sum_c D( grad_theta CE(theta; dsa(S_c, p_c)), G_r[c] )                 (vmap over classes)
    DCC: L = D( grad_theta CE(theta; dsa(S, p)), (1/C) sum_c G_r[c] )                (one gradient over S)
    S <- SGD(lr_img 0.1, momentum 0.5) step on L
    if il < inner_loop - 1: T epochs of SGD(lr_net 0.01, batch 256) of theta on (S, labels) (DSA per image)

``T_c`` is a batch of ``batch_real`` (256) real images of class ``c``; ``p_c`` the DSA parameters drawn once
per class and shared by the real and synthetic batch of that class (identity without DSA); ``D`` the
distance of :mod:`contrastkit.losses.gradient_matching`. ``(inner_loop, T)`` comes from :func:`get_loops`.

This module holds the pure pieces: the switches (:class:`CondensationConfig`, :func:`get_loops`,
:func:`use_contrastive`), the matching loss, the sampling of real images and :class:`SetClassifier` (the network
``theta`` as a method, so that its training goes through the engine). The outer loop above
(``condense``) and the evaluation of a set live in :mod:`contrastkit.train.condensation`, next to the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from contrastkit._checks import check_labels, check_tensor
from contrastkit.augment.dsa import DSAConfig, dsa_random
from contrastkit.data.batch import Batch, as_batch
from contrastkit.losses.gradient_matching import GRADIENT_DISTANCES, dc_matching_loss, dcc_matching_loss

__all__ = [
    "LOOP_TABLES",
    "CondensationConfig",
    "SetClassifier",
    "class_gradients",
    "get_loops",
    "initial_images",
    "matching_loss",
    "real_class_indices",
    "sample_real",
    "use_contrastive",
]

# ipc -> (inner_loop: matching steps per network, T: epochs of network training between steps)
LOOP_TABLES: dict[str, dict[int, tuple[int, int]]] = {
    "dcc_table": {1: (10, 5), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)},
    "dc_table": {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)},
}


def get_loops(ipc: int, table: str = "dcc_table") -> tuple[int, int]:
    """``(inner_loop, T)`` for ``ipc`` images per class (the loop settings of Lee et al.; DC's differ only at ipc 1)."""
    if table not in LOOP_TABLES:
        raise ValueError(f"table must be one of {list(LOOP_TABLES)}, got {table!r}")
    if ipc not in LOOP_TABLES[table]:
        raise ValueError(f"no loop setting for ipc={ipc}; known: {sorted(LOOP_TABLES[table])} (or pass inner_loop/T)")
    return LOOP_TABLES[table][ipc]


def use_contrastive(outer_iteration: int, inner_step: int, outer_warmup: int, inner_warmup: int) -> bool:
    """Bi-level warm-up rule of DCC: the contrastive loss is used iff ``ol >= outer_warmup or il >= inner_warmup``."""
    return outer_iteration >= outer_warmup or inner_step >= inner_warmup


@dataclass(frozen=True)
class CondensationConfig:
    """Switches of the method; defaults follow Lee et al. (ICML 2022).

    ``inner_loop`` / ``epochs_between`` override :func:`get_loops` (``loops`` table) when set.
    ``dsa=True`` with ``matching="dcc"`` is DSAC. ``real_grad_reduction``: ``"mean"`` (class_mean) or ``"sum"``.
    ``vmap_chunk_size``: classes per batched call of :func:`class_gradients` (None = all at once, fastest on a
    GPU; 1 is about 2x faster on a CPU, where one big batch falls out of cache).
    ``class_grad_method``: ``"vmap"`` or ``"loop"`` (see :func:`class_gradients`; ``"loop"`` is 1.2-1.5x faster
    on a CPU). Lee et al.'s requirement ``inner_warmup <= inner_loop`` is enforced for ``matching="dcc"`` only (DC
    ignores the warm-up).
    """

    ipc: int = 1
    matching: str = "dcc"
    dsa: bool = False
    dsa_config: DSAConfig = field(default_factory=DSAConfig)
    outer_loop: int = 1000
    outer_warmup: int = 250
    inner_warmup: int = 10
    loops: str = "dcc_table"
    inner_loop: int | None = None
    epochs_between: int | None = None
    dis_metric: str = "ours"
    real_grad_reduction: str = "mean"
    init: str = "real"
    lr_img: float = 0.1
    momentum_img: float = 0.5
    lr_net: float = 0.01
    batch_real: int = 256
    batch_train: int = 256
    vmap_chunk_size: int | None = None
    class_grad_method: str = "vmap"

    def __post_init__(self) -> None:
        if self.matching not in ("dc", "dcc"):
            raise ValueError(f"matching must be 'dc' or 'dcc', got {self.matching!r}")
        if self.dis_metric not in GRADIENT_DISTANCES:
            raise ValueError(f"dis_metric must be one of {list(GRADIENT_DISTANCES)}, got {self.dis_metric!r}")
        if self.init not in ("real", "noise"):
            raise ValueError(f"init must be 'real' or 'noise', got {self.init!r}")
        if self.class_grad_method not in ("vmap", "loop"):
            raise ValueError(f"class_grad_method must be 'vmap' or 'loop', got {self.class_grad_method!r}")
        if self.real_grad_reduction not in ("mean", "sum"):
            raise ValueError(f"real_grad_reduction must be 'mean' or 'sum', got {self.real_grad_reduction!r}")
        for name in ("ipc", "outer_loop", "batch_real", "batch_train"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        for name in ("outer_warmup", "inner_warmup"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.vmap_chunk_size is not None and (
            isinstance(self.vmap_chunk_size, bool)
            or not isinstance(self.vmap_chunk_size, int)
            or self.vmap_chunk_size < 1
        ):
            raise ValueError(f"vmap_chunk_size must be None or an int >= 1, got {self.vmap_chunk_size!r}")
        inner, _ = self.resolved_loops()
        if self.matching == "dcc" and self.inner_warmup > inner:
            raise ValueError(f"inner_warmup={self.inner_warmup} must be <= inner_loop={inner} (DCC's bi-level warm-up)")

    def resolved_loops(self) -> tuple[int, int]:
        """``(inner_loop, T)`` after the overrides."""
        if self.inner_loop is not None and self.epochs_between is not None:
            inner, epochs = self.inner_loop, self.epochs_between
        else:
            table_inner, table_epochs = get_loops(self.ipc, self.loops)
            inner = self.inner_loop if self.inner_loop is not None else table_inner
            epochs = self.epochs_between if self.epochs_between is not None else table_epochs
        if inner < 1 or epochs < 0:
            raise ValueError(f"need inner_loop >= 1 and epochs_between >= 0, got {inner}, {epochs}")
        return inner, epochs

    def with_(self, **changes: Any) -> CondensationConfig:
        """A copy with ``changes`` applied (validated again)."""
        return replace(self, **changes)


def class_gradients(
    net: nn.Module,
    params: Mapping[str, Tensor],
    images: Tensor,
    labels: Tensor,
    *,
    chunk_size: int | None = None,
    method: str = "vmap",
) -> dict[str, Tensor]:
    """Per-class gradients ``grad_theta CE(theta; images[c], labels[c])`` for every class ``c``.

    Args:
        net: the network (its own parameters are not used: ``params`` are).
        params: name -> tensor (detach them so nothing accumulates in ``net``).
        images: ``[C, n, ch, H, W]``; labels: ``[C, n]``.
        chunk_size: classes per batched call (``torch.func.vmap(chunk_size=...)``); None = all at once.
        method: ``"vmap"`` (``torch.func.vmap`` of ``torch.func.grad``: no Python loop over classes) or
            ``"loop"`` (one ``torch.autograd.grad`` per class: equal up to rounding, and on a CPU 1.2-1.5x faster
            for the DC ConvNet, whose vmapped GroupNorm falls back to unfused elementwise kernels).

    Returns:
        name -> ``[C, *param_shape]``; differentiable w.r.t. ``images`` when they require grad.
    """
    if images.ndim < 2 or labels.shape != images.shape[:2]:
        raise ValueError(
            f"images must be [C, n, ...] and labels [C, n], got {tuple(images.shape)} and {tuple(labels.shape)}"
        )
    if method == "loop":
        return _class_gradients_loop(net, params, images, labels)
    if method != "vmap":
        raise ValueError(f"method must be 'vmap' or 'loop', got {method!r}")

    def loss(p: Mapping[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(functional_call(net, p, (x,)), y)

    return vmap(grad(loss), in_dims=(None, 0, 0), chunk_size=chunk_size)(dict(params), images, labels)


def _class_gradients_loop(
    net: nn.Module, params: Mapping[str, Tensor], images: Tensor, labels: Tensor
) -> dict[str, Tensor]:
    names = list(params)
    create_graph = images.requires_grad
    per_class: list[tuple[Tensor, ...]] = []
    for x, y in zip(images, labels, strict=True):
        leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        loss = F.cross_entropy(functional_call(net, leaves, (x,)), y)
        per_class.append(torch.autograd.grad(loss, [leaves[k] for k in names], create_graph=create_graph))
    return {k: torch.stack([g[i] for g in per_class]) for i, k in enumerate(names)}


def _set_gradient(net: nn.Module, params: Mapping[str, Tensor], images: Tensor, labels: Tensor) -> dict[str, Tensor]:
    def loss(p: Mapping[str, Tensor]) -> Tensor:
        return F.cross_entropy(functional_call(net, p, (images,)), labels)

    return grad(loss)(dict(params))


def matching_loss(
    net: nn.Module,
    syn_images: Tensor,
    real_images: Tensor,
    *,
    contrastive: bool,
    metric: str = "ours",
    reduction: str = "mean",
    chunk_size: int | None = None,
    class_grad_method: str = "vmap",
) -> Tensor:
    """One matching loss (already-augmented inputs).

    Args:
        net: classifier with ``C`` outputs; its parameters are detached for the computation.
        syn_images: ``[C, ipc, ch, H, W]`` (requires grad); real_images: ``[C, B, ch, H, W]``.
        contrastive: DCC (``D(G_S, reduce_c G_r[c])``) when True, DC (``sum_c D(G_S[c], G_r[c])``) when False.
        metric, reduction: see :func:`contrastkit.losses.dcc_matching_loss`.
        chunk_size, class_grad_method: ``chunk_size`` and ``method`` of :func:`class_gradients`.

    Returns:
        A 0-d tensor, differentiable w.r.t. ``syn_images``.
    """
    check_tensor("syn_images", syn_images, 5, floating=True, finite=False)
    check_tensor("real_images", real_images, 5, floating=True, finite=False)
    c, ipc = syn_images.shape[:2]
    if real_images.shape[0] != c:
        raise ValueError(f"syn_images has {c} classes but real_images {real_images.shape[0]}; they must match")
    params = {k: v.detach() for k, v in net.named_parameters()}
    names = list(params)
    classes = torch.arange(c, device=syn_images.device)
    real_labels = classes[:, None].expand(c, real_images.shape[1])
    g_real = class_gradients(net, params, real_images, real_labels, chunk_size=chunk_size, method=class_grad_method)
    g_real_list = [g_real[k].detach() for k in names]
    if contrastive:
        flat = syn_images.reshape(c * ipc, *syn_images.shape[2:])
        g_syn = _set_gradient(net, params, flat, classes.repeat_interleave(ipc))
        return dcc_matching_loss([g_syn[k] for k in names], g_real_list, metric, reduction)
    g_syn_c = class_gradients(
        net, params, syn_images, classes[:, None].expand(c, ipc), chunk_size=chunk_size, method=class_grad_method
    )
    return dc_matching_loss([g_syn_c[k] for k in names], g_real_list, metric)


def initial_images(images: Tensor, labels: Tensor, num_classes: int, ipc: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """The real images ``condense`` (:mod:`contrastkit.train.condensation`) starts from with ``init="real"`` and the
    same ``seed``.

    ``ipc`` distinct random images per class, class-major: ``([C * ipc, ch, H, W], [C * ipc])``. Used as the
    random-selection baseline, it is paired with the condensation runs of the same seed (same starting images).
    """
    check_tensor("images", images, 4, floating=True)
    check_labels("labels", labels, images.shape[0], num_classes)
    generator = torch.Generator().manual_seed(seed)
    class_indices = real_class_indices(labels, num_classes, ipc)
    picked = sample_real(images, class_indices, ipc, generator).reshape(num_classes * ipc, *images.shape[1:])
    return picked, torch.arange(num_classes, device=images.device).repeat_interleave(ipc)


def real_class_indices(labels: Tensor, num_classes: int, ipc: int) -> list[Tensor]:
    """The indices of each class's images (``C`` tensors); a class with fewer than ``ipc`` images is an error."""
    class_indices = [torch.nonzero(labels.cpu() == c).flatten() for c in range(num_classes)]
    smallest = min(idx.numel() for idx in class_indices)
    if smallest < ipc:
        raise ValueError(f"a class has only {smallest} images, fewer than ipc={ipc}; lower ipc")
    return class_indices


def sample_real(images: Tensor, class_indices: list[Tensor], n: int, generator: torch.Generator) -> Tensor:
    """``[C, n, ch, H, W]``: ``n`` distinct random real images of each class."""
    picks = [idx[torch.randperm(idx.numel(), generator=generator)[:n]] for idx in class_indices]
    return images[torch.cat(picks).to(images.device)].view(len(class_indices), n, *images.shape[1:])


class SetClassifier(nn.Module):
    """A classifier network trained on a small in-memory set: the networks of DC / DSA / DCC, both the ``theta``
    trained between matching steps and the fresh nets that evaluate a condensed set.

    ``training_step(batch) = CE(net(view), labels)`` (mean over the batch) on one view, the batch's images with
    DSA drawn per image from the engine's generator (``augment``; one transformation family per batch when
    ``shared_family``, as DSA trains, else one per image, as DC's ``crop_scale_rotate`` augmentation), or the images as
    they are when ``augment`` is None.

    Args:
        net: ``[B, ch, H, W] -> [B, C]`` logits.
        augment: the DSA ops of the view (None: no augmentation).
        shared_family: draw one family for the whole batch (True) or one per image.
    """

    def __init__(self, net: nn.Module, augment: DSAConfig | None = None, *, shared_family: bool = True) -> None:
        super().__init__()
        self.net = net
        self.augment, self.shared_family = augment, shared_family

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[B, C]``."""
        return self.net(x)

    def embed(self, x: Tensor) -> Tensor:
        """The logits ``[B, C]`` (the only representation such a net has)."""
        return self.net(x)

    def make_views(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor]:
        """One view ``[B, ch, H, W]``: DSA per image with ``generator``, or ``images`` themselves."""
        if self.augment is None:
            return (images,)
        return (dsa_random(images, self.augment, generator=generator, shared_family=self.shared_family),)

    def training_step(self, batch: Batch | Any) -> dict[str, Tensor]:
        """``{"loss": CE(net(view), labels)}``; the batch's ready view when it has one, else :meth:`make_views`."""
        batch = as_batch(batch)
        if batch.labels is None:
            raise ValueError("SetClassifier trains on labelled batches: the batch holds no labels")
        if batch.views:
            x = batch.views[0]
        elif batch.images is not None:
            (x,) = self.make_views(batch.images)
        else:
            raise ValueError("SetClassifier: the batch holds neither images nor views")
        return {"loss": F.cross_entropy(self.net(x), batch.labels)}
