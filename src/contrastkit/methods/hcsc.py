"""HCSC (Guo et al., CVPR 2022, "HCSC: Hierarchical Contrastive Selective Coding") and the PCL baseline (Li et al.,
ICLR 2021, "Prototypical Contrastive Learning of Unsupervised Representations"), on MoCo v2.

At the start of every epoch after ``warmup_epochs`` (plain MoCo v2 until then), the momentum encoder embeds the
un-augmented training set in eval mode and :func:`contrastkit.cluster.hierarchical_kmeans` builds ``L`` levels of
prototypes ``C_l`` ``[M_l, d]`` with concentrations ``phi_l`` and parents (level l -> l+1). For a query ``q_i``
with dataset index ``i`` and level-l prototype ``c_l(i)``:

* **ICSC** (instance-wise selective coding): queue negative ``n_j`` is kept with probability
  ``1 - softmax_c(n_j.c / phi_c)[c_l(i)]`` (clamped to [0, 0.999]), the probability that it is *not* in the query's
  cluster; ``L_ins = reduce_l InfoNCE_l`` with a fresh Bernoulli mask per level;
* **PCSC** (prototypical selective coding): the positive is ``c_l(i)``, the candidate negatives are the level-l
  prototypes that are the positive of no query in the (global) batch; below the top level each is kept with
  probability ``1 - softmax_p(c_j.p / phi_p)[parent(c_l(i))]`` over level l+1 (clamped to [1e-4, 0.999]); logits
  are divided by the per-prototype ``phi`` instead of T; ``L_proto = reduce_l CE_l``.

``L = L_ins + L_proto``. The paper's ambiguities and the official code's choices are switches (defaults: the
official code, except the off-by-one): ``mask_fill`` ("zero": a dropped logit becomes 0 and still adds 1 to the
denominator, as the code does; "neg_inf": it leaves the denominator, the paper's "selection"), the level reductions
(the code sums the instance losses and averages the prototype losses), ``include_highest_cluster_id`` (false: the
code's ``range(max id)`` that never uses the highest prototype as a negative). Selection off on both sides with the
prototype loss on is PCL on the hierarchy (``method.name: pcl``); all off is MoCo v2.

Masks are drawn from a generator seeded by ``(trainer.seed, key step, level)`` for the global batch, so DDP
processes draw the rows one process would. Under DDP every process embeds the training set and rank 0's clustering
is broadcast, so all ranks hold the same prototypes.

**Multi-crop** (paper section 3.4; off by default): ``local_crop_ratios`` ``(r_1, ..., r_V)`` adds V local views,
each the query view's pipeline at ``r_v`` times its side and crop area (:func:`contrastkit.augment.local_crop_pipeline`;
the official 192/160/128/96 px of 224: ``(6/7, 5/7, 4/7, 3/7)``). Each local query ``q_v`` is contrasted with the same
key and queue, ``L_local = sum_v InfoNCE(q_v)``; with ``selection_on_local`` (the code's default is off) and a
hierarchy, the global step's instance masks are reused, ``L_local = sum_v reduce_l InfoNCE_l(q_v)``. With the
prototype loss on, ``L_local_proto = sum_v reduce_l CE_l(q_v)`` with fresh prototype masks per view, as the code
does. ``L = L_ins + L_proto + L_local + L_local_proto``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from contrastkit import distributed
from contrastkit.augment import ViewPipeline, local_crop_pipeline
from contrastkit.cluster import BACKENDS, ClusterLevel, hierarchical_kmeans
from contrastkit.data.batch import Batch, as_batch
from contrastkit.losses.selective import (
    LEVEL_REDUCTIONS,
    MASK_FILLS,
    instance_keep_probability,
    negative_prototype_ids,
    prototype_keep_probability,
    reduce_levels,
    selective_info_nce,
)
from contrastkit.method_registry import (
    BuildContext,
    register_method,
    require_at_least,
    require_choice,
    require_in_range,
)
from contrastkit.methods._two_views import two_views_of
from contrastkit.methods.base import EpochContext, FitContext
from contrastkit.methods.moco import MoCo, MoCoConfig, moco_options

__all__ = ["HCSC", "HCSCConfig", "PCLConfig", "keep_rates_by_class"]

_STREAMS = 64  # random streams per key step: 2 per level (instance, prototype masks) per view (query + locals)


class HCSC(MoCo):
    """HCSC / PCL on MoCo v2 (module docstring); the MoCo arguments pass through ``moco``."""

    def __init__(
        self,
        backbone: torch.nn.Module,
        views: ViewPipeline | None,
        *,
        num_clusters: Sequence[int] = (100, 50, 20),
        warmup_epochs: int = 5,
        instance_selection: bool = True,
        prototype_selection: bool = True,
        prototype_loss: bool = True,
        mask_fill: str = "zero",
        instance_level_reduction: str = "sum",
        prototype_level_reduction: str = "mean",
        include_highest_cluster_id: bool = True,
        kmeans_backend: str = "auto",
        kmeans_niter: int = 20,
        kmeans_nredo: int = 5,
        local_crop_ratios: Sequence[float] = (),
        selection_on_local: bool = False,
        **moco: Any,
    ) -> None:
        super().__init__(backbone, views, **moco)
        sizes = [int(k) for k in num_clusters]
        if not sizes or any(k < 2 for k in sizes) or any(a <= b for a, b in zip(sizes, sizes[1:], strict=False)):
            raise ValueError(f"num_clusters must be strictly decreasing and >= 2 (e.g. [100, 50, 20]), got {sizes}")
        for name, value, allowed in (
            ("mask_fill", mask_fill, MASK_FILLS),
            ("instance_level_reduction", instance_level_reduction, LEVEL_REDUCTIONS),
            ("prototype_level_reduction", prototype_level_reduction, LEVEL_REDUCTIONS),
            ("kmeans_backend", kmeans_backend, BACKENDS),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        self.num_clusters, self.warmup_epochs = sizes, int(warmup_epochs)
        self.instance_selection, self.prototype_selection = instance_selection, prototype_selection
        self.prototype_loss, self.mask_fill = prototype_loss, mask_fill
        self.instance_level_reduction = instance_level_reduction
        self.prototype_level_reduction = prototype_level_reduction
        self.include_highest_cluster_id = include_highest_cluster_id
        self.kmeans = {"backend": kmeans_backend, "niter": int(kmeans_niter), "nredo": int(kmeans_nredo)}
        if 2 * len(sizes) * (len(local_crop_ratios) + 1) > _STREAMS:
            raise ValueError(f"at most {_STREAMS // (2 * len(sizes)) - 1} local crops with {len(sizes)} levels")
        if local_crop_ratios and views is None:
            raise ValueError("local_crop_ratios needs a view pipeline (views=...) to draw the local crops from")
        self.local_views = [local_crop_pipeline(views, float(r)) for r in local_crop_ratios]  # type: ignore[arg-type]
        self.selection_on_local = bool(selection_on_local)
        dim = self.queue.shape[1]
        for level, k in enumerate(sizes):
            self.register_buffer(f"centroids_{level}", torch.zeros(k, dim))
            self.register_buffer(f"concentration_{level}", torch.ones(k))
            self.register_buffer(f"parents_{level}", torch.zeros(k, dtype=torch.long))
            self.register_buffer(f"assignments_{level}", torch.zeros(0, dtype=torch.long))  # [N] once clustered
        self.register_buffer("hierarchy_ready", torch.zeros((), dtype=torch.bool))
        self.labels: Tensor | None = None
        self.mechanism: dict[str, float] = {}
        self.history: list[dict[str, float]] = []

    # ------------------------------------------------------------------------------------------ hierarchy

    def level(self, level: int) -> ClusterLevel:
        """The current prototypes of ``level`` (0 = finest) as a :class:`~contrastkit.cluster.ClusterLevel`."""
        top = level == len(self.num_clusters) - 1
        return ClusterLevel(
            assignments=getattr(self, f"assignments_{level}"),
            centroids=getattr(self, f"centroids_{level}"),
            concentration=getattr(self, f"concentration_{level}"),
            parents=None if top else getattr(self, f"parents_{level}"),
        )

    def set_hierarchy(self, levels: Sequence[ClusterLevel]) -> None:
        """Install a clustering (rank 0's under DDP) into the buffers that checkpoints keep."""
        if [lv.centroids.shape[0] for lv in levels] != self.num_clusters:
            raise ValueError(f"the hierarchy has {[lv.centroids.shape[0] for lv in levels]} prototypes per level, "
                             f"the method {self.num_clusters}")  # fmt: skip
        for i, lv in enumerate(levels):
            device = self.queue.device
            setattr(self, f"assignments_{i}", distributed.broadcast_from_zero(lv.assignments.to(device)))
            getattr(self, f"centroids_{i}").copy_(distributed.broadcast_from_zero(lv.centroids.to(device)))
            getattr(self, f"concentration_{i}").copy_(distributed.broadcast_from_zero(lv.concentration.to(device)))
            if lv.parents is not None:
                getattr(self, f"parents_{i}").copy_(distributed.broadcast_from_zero(lv.parents.to(device)))
        self.hierarchy_ready.fill_(True)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        for i in range(len(self.num_clusters)):  # the assignments are [N]: size them like the checkpoint's
            saved = state_dict.get(f"{prefix}assignments_{i}")
            if saved is not None:
                setattr(self, f"assignments_{i}", torch.zeros_like(saved, device=self.queue.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def on_fit_start(self, ctx: FitContext) -> None:
        """MoCo's checks; keep the training labels (if any) for the selection diagnostic."""
        super().on_fit_start(ctx)
        labels = getattr(ctx.source, "labels", None)
        self.labels = labels.cpu() if isinstance(labels, Tensor) and bool((labels >= 0).all()) else None

    def on_epoch_start(self, ctx: EpochContext) -> None:
        """After warm-up: embed the training set with the key encoder and rebuild the hierarchy."""
        if ctx.epoch < self.warmup_epochs or not (self.prototype_loss or self.instance_selection):
            return
        start = time.perf_counter()
        memory = ctx.features(self.key_embedding)
        embedded = time.perf_counter()
        levels = hierarchical_kmeans(memory, self.num_clusters, seed=self.seed, temperature=self.temperature,
                                     **self.kmeans)  # type: ignore[arg-type]  # fmt: skip
        clustered = time.perf_counter()
        self.set_hierarchy(levels)
        record = {"epoch": float(ctx.epoch), "embed_seconds": embedded - start, "kmeans_seconds": clustered - embedded}
        if self.labels is not None and self.labels.shape[0] == memory.shape[0]:
            self.mechanism = keep_rates_by_class(memory, self.labels, levels, seed=self.seed + ctx.epoch)
            record.update(self.mechanism)
        self.history.append(record)

    # ------------------------------------------------------------------------------------------- training

    def make_views(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, ...]:
        """The query and key views ``[B, C, H, W]`` of ``images``, then one local view per local crop ratio
        ``[B, C, round(r H), round(r W)]`` (none without multi-crop)."""
        views = super().make_views(images, generator)
        return (*views, *(pipeline(images, generator=generator) for pipeline in self.local_views))

    def _uniforms(self, rows: int, cols: int, local_rows: int, stream: int) -> Tensor:
        """Uniforms ``[local_rows, cols]``: this rank's rows of a draw for the global batch (DDP = one process)."""
        seed = (self.seed * 1_000_003 + int(self.key_steps) * _STREAMS + stream) % 2**63
        draw = torch.rand(rows, cols, generator=torch.Generator().manual_seed(seed))
        start = distributed.rank_offset(local_rows)
        return draw[start : start + local_rows].to(self.queue.device)

    def training_step(self, batch: Batch | Tensor | tuple[Tensor, ...]) -> dict[str, Tensor]:
        """MoCo v2's step plus the selective instance and prototype losses once the hierarchy exists.

        Returns ``{"loss", "loss_instance", "loss_prototype", "embeddings"}`` (with multi-crop also
        ``"loss_local"`` and ``"loss_local_prototype"``) and the last selection diagnostic.
        """
        batch = as_batch(batch)
        if not batch.views and batch.images is not None:  # draw the local views with the two global ones
            batch = batch.replace(views=tuple(self.make_views(batch.images)))
        batch, view_q, view_k = two_views_of("HCSC", batch, self.make_views)
        local_views = batch.views[2:]
        if len(local_views) != len(self.local_views):
            wanted = 2 + len(self.local_views)
            raise ValueError(f"HCSC with {len(self.local_views)} local crops needs {wanted} views per batch, got "
                             f"{len(batch.views)}: draw them with method.make_views(images)")  # fmt: skip
        features, q = self.queries(view_q)
        k, everyone = self.keys(view_k)
        ready = bool(self.hierarchy_ready)
        if ready and batch.indices is None:
            raise ValueError("HCSC needs the dataset index of every item (Batch.indices): use a data source")
        rows, b = everyone.shape[0], q.shape[0]
        owns, masks = [], []
        for level in range(len(self.num_clusters)) if ready else ():
            lv = self.level(level)
            owns.append(lv.assignments[batch.indices.to(lv.assignments.device)])  # type: ignore[union-attr]
            if self.instance_selection:
                keep = instance_keep_probability(self.queue, lv.centroids, lv.concentration, owns[-1])
                masks.append(self._uniforms(rows, keep.shape[1], b, 2 * level) < keep)
        loss_instance, loss_prototype = self.query_losses(q, k, owns, masks, batch.indices, rows)
        loss = loss_instance + loss_prototype
        out = {"loss_instance": loss_instance.detach(), "loss_prototype": loss_prototype.detach()}
        if local_views:
            local_instance, local_prototype = q.new_zeros(()), q.new_zeros(())
            for v, view in enumerate(local_views):
                local_masks = masks if self.selection_on_local else []
                terms = self.query_losses(self.queries(view)[1], k, owns, local_masks, batch.indices, rows, v + 1)
                local_instance, local_prototype = local_instance + terms[0], local_prototype + terms[1]
            loss = loss + local_instance + local_prototype
            out.update(loss_local=local_instance.detach(), loss_local_prototype=local_prototype.detach())
        self.remember(everyone, batch.indices)
        out.update(loss=loss, embeddings=features.detach())
        out.update({key: torch.tensor(value) for key, value in self.mechanism.items()})
        return out

    def query_losses(
        self,
        q: Tensor,
        k: Tensor,
        owns: Sequence[Tensor],
        masks: Sequence[Tensor],
        indices: Tensor | None,
        rows: int,
        view: int = 0,
    ) -> tuple[Tensor, Tensor]:
        """``(L_ins, L_proto)`` of the queries ``q`` ``[b, d]`` against the keys ``k`` ``[b, d]`` and the queue.

        ``owns[l]`` ``[b]`` are the queries' level-l prototypes (empty: no hierarchy yet, plain InfoNCE and no
        prototype term); ``masks[l]`` ``[b, K]`` the level-l instance keep masks (empty: no selection).
        ``L_ins = reduce_l InfoNCE(q, k, queue; masks[l])``, ``L_proto = reduce_l CE_l(q)``; ``view`` (0 = the
        query view, v >= 1 = local view v) picks the random stream of the prototype masks."""
        positive, negatives = self.instance_logits(q, k)
        instance = [selective_info_nce(positive, negatives, mask, mask_fill=self.mask_fill) for mask in masks]
        loss_instance = (
            reduce_levels(instance, self.instance_level_reduction)
            if instance
            else selective_info_nce(positive, negatives, None)
        )
        if not (owns and self.prototype_loss):
            return loss_instance, q.new_zeros(())
        stream = 2 * len(self.num_clusters) * view
        prototype = [self._prototype_loss(q, own, level, indices, rows, stream) for level, own in enumerate(owns)]
        return loss_instance, reduce_levels(prototype, self.prototype_level_reduction)

    def _prototype_loss(
        self, q: Tensor, own: Tensor, level: int, indices: Tensor | None, rows: int, stream: int = 0
    ) -> Tensor:
        """PCSC (or PCL without selection) at ``level``: CE of the own prototype against the shared negatives."""
        lv = self.level(level)
        assert indices is not None  # the hierarchy needs dataset indices (checked in training_step)
        batch_positives = lv.assignments[distributed.gather_no_grad(indices.to(lv.assignments.device))]
        candidates = negative_prototype_ids(
            lv.centroids.shape[0], batch_positives, include_highest_cluster_id=self.include_highest_cluster_id,
            max_id=None if self.include_highest_cluster_id else int(lv.assignments.max()),
        )  # fmt: skip
        phi = lv.concentration
        positive = (q * lv.centroids[own]).sum(1) / phi[own]
        negatives = q @ lv.centroids[candidates].T / phi[candidates]
        mask = None
        if self.prototype_selection and lv.parents is not None:
            upper = self.level(level + 1)
            keep = prototype_keep_probability(
                lv.centroids[candidates], upper.centroids, upper.concentration, lv.parents[own]
            )
            mask = self._uniforms(rows, keep.shape[1], q.shape[0], stream + 2 * level + 1) < keep
        return selective_info_nce(positive, negatives, mask, mask_fill=self.mask_fill)


@torch.no_grad()
def keep_rates_by_class(
    memory: Tensor,
    labels: Tensor,
    levels: Sequence[ClusterLevel],
    *,
    queries: int = 256,
    negatives: int = 1024,
    seed: int = 0,
) -> dict[str, float]:
    """The selection mechanism, a label-using diagnostic: per level, the mean ICSC keep probability of negatives of
    the query's class (``keep_same_level{l}``) and of other classes (``keep_other_level{l}``), l = 1 (finest)..L.

    ``memory`` ``[N, d]`` holds L2-normalised key embeddings (what the queue holds), ``labels`` ``[N]``; disjoint
    random sets of ``queries`` and ``negatives`` items are drawn with ``seed``. Selection does what Guo et al.
    (CVPR 2022) intend when same-class negatives are dropped far more often than others; an untrained encoder shows
    no gap.
    """
    n = memory.shape[0]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    q_ids, n_ids = order[: min(queries, n // 2)], order[min(queries, n // 2) :][:negatives]
    memory, labels = memory.float().cpu(), labels.cpu()
    same = labels[q_ids][:, None] == labels[n_ids][None, :]
    out: dict[str, float] = {}
    for i, lv in enumerate(levels, start=1):
        own = lv.assignments.cpu()[q_ids]
        keep = instance_keep_probability(memory[n_ids], lv.centroids.float().cpu(), lv.concentration.cpu(), own)
        out[f"keep_same_level{i}"] = float(keep[same].mean()) if bool(same.any()) else float("nan")
        out[f"keep_other_level{i}"] = float(keep[~same].mean()) if bool((~same).any()) else float("nan")
    return out


@dataclass
class HCSCConfig(MoCoConfig):
    """``method: {name: hcsc}``: HCSC on MoCo v2 (see :class:`HCSC`); the MoCo keys apply too."""

    name: str = "hcsc"
    num_clusters: list[int] = field(default_factory=lambda: [100, 50, 20])
    warmup_epochs: int = 5
    instance_selection: bool = True
    prototype_selection: bool = True
    prototype_loss: bool = True
    mask_fill: str = "zero"
    instance_level_reduction: str = "sum"
    prototype_level_reduction: str = "mean"
    include_highest_cluster_id: bool = True
    kmeans_backend: str = "auto"
    kmeans_niter: int = 20
    kmeans_nredo: int = 5
    local_crop_ratios: list[float] = field(default_factory=list)  # multi-crop off; official: [6/7, 5/7, 4/7, 3/7]
    selection_on_local: bool = False

    def check(self, where: str = "method") -> None:
        super().check(where)
        for i, ratio in enumerate(self.local_crop_ratios):
            require_in_range(f"{where}.local_crop_ratios[{i}]", ratio, 0.0, 1.0, interval="(]")
        require_at_least(f"{where}.warmup_epochs", self.warmup_epochs, 0)
        require_at_least(f"{where}.kmeans_niter", self.kmeans_niter, 1)
        require_at_least(f"{where}.kmeans_nredo", self.kmeans_nredo, 1)
        require_choice(f"{where}.mask_fill", self.mask_fill, MASK_FILLS)
        require_choice(f"{where}.instance_level_reduction", self.instance_level_reduction, LEVEL_REDUCTIONS)
        require_choice(f"{where}.prototype_level_reduction", self.prototype_level_reduction, LEVEL_REDUCTIONS)
        require_choice(f"{where}.kmeans_backend", self.kmeans_backend, BACKENDS)


@dataclass
class PCLConfig(HCSCConfig):
    """``method: {name: pcl}``: prototypes on the hierarchy without selection (HCSC's PCL-like baseline)."""

    name: str = "pcl"
    instance_selection: bool = False
    prototype_selection: bool = False


def build_hcsc(cfg: HCSCConfig, ctx: BuildContext) -> HCSC:
    """HCSC (or PCL) on the configured backbone, views and head sizes."""
    return HCSC(
        ctx.backbone, ctx.views, projection_dim=ctx.projection_dim, hidden_dim=ctx.hidden_dim,
        num_clusters=cfg.num_clusters, warmup_epochs=cfg.warmup_epochs, instance_selection=cfg.instance_selection,
        prototype_selection=cfg.prototype_selection, prototype_loss=cfg.prototype_loss, mask_fill=cfg.mask_fill,
        instance_level_reduction=cfg.instance_level_reduction,
        prototype_level_reduction=cfg.prototype_level_reduction,
        include_highest_cluster_id=cfg.include_highest_cluster_id, kmeans_backend=cfg.kmeans_backend,
        kmeans_niter=cfg.kmeans_niter, kmeans_nredo=cfg.kmeans_nredo, local_crop_ratios=cfg.local_crop_ratios,
        selection_on_local=cfg.selection_on_local, **moco_options(cfg),
    )  # fmt: skip


register_method(HCSCConfig, build_hcsc)
register_method(PCLConfig, build_hcsc)
