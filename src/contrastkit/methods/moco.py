"""MoCo v2 (He et al., CVPR 2020; Chen et al., arXiv 2003.04297, "Improved Baselines with Momentum Contrastive
Learning").

A query encoder ``f_q`` (backbone + MLP head) and a momentum key encoder ``f_k`` (its exponential moving average);
each query ``q_i = f_q(x_i^q)`` is contrasted against the key of its other view ``k_i = f_k(x_i^k)`` and against a
FIFO queue of the keys of earlier batches ``{n_j}``, j = 1..K (all L2-normalised, temperature T)::

    L = -(1/B) sum_i log( exp(q_i.k_i / T) / (exp(q_i.k_i / T) + sum_j exp(q_i.n_j / T)) )
    theta_k <- m theta_k + (1 - m) theta_q          (after every optimiser step)

Keys get no gradient, and neither does the queue. The EMA update and the enqueueing of the step's keys are the
engine's ``on_step_end`` hook (:mod:`contrastkit.methods.base`), so with gradient accumulation every batch of a
step sees the same queue and key encoder.

**Shuffle-BN** (``key_batch_norm="shuffle"``): the key encoder's batch norm would otherwise see the same rows as the
query's and leak the positive through the batch statistics. The global batch is permuted by a generator seeded by
``(trainer.seed, key step)``, cut into ``bn_splits`` groups whose keys are computed with the statistics of their own
group, and put back in order. Under DDP each of the ``W`` processes computes ``bn_splits / W`` of the groups (the
paper's per-GPU shuffle is ``bn_splits = W``); in one process the same groups are computed one after the other, so
``W`` processes give exactly what one process gives (``tests/methods/test_moco_ddp.py``). ``"plain"`` normalises the
keys over the local batch. The key encoder keeps per-process batch norms (``local_batch_norm``) even when the query
encoder uses global ones (``model.sync_batchnorm``). Its running statistics, which only an eval-mode key encoder uses
(HCSC's clustering), are not updated by its own forward passes (whose groups depend on how the batch is spread over
processes) but follow the query encoder's by the same EMA as the weights (integer counters are copied).

Under DDP the keys of every rank are gathered and enqueued on every rank, so all ranks hold the same queue.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contrastkit import distributed
from contrastkit._checks import check_positive
from contrastkit.augment import ViewPipeline
from contrastkit.data.batch import Batch
from contrastkit.losses.selective import selective_info_nce
from contrastkit.method_registry import (
    BuildContext,
    MethodConfig,
    register_method,
    require_at_least,
    require_choice,
    require_in_range,
)
from contrastkit.methods._two_views import draw_two_views, two_views_of
from contrastkit.methods.base import FitContext, MethodHooks, StepContext
from contrastkit.models import MoCoV2ProjectionHead

__all__ = ["KEY_BATCH_NORMS", "MoCo", "MoCoConfig", "build_moco"]

KEY_BATCH_NORMS = ("shuffle", "plain")


class MoCo(MethodHooks, nn.Module):
    """MoCo v2: query encoder, momentum key encoder, queue (module docstring).

    Args:
        backbone: ``[B, C, H, W] -> [B, D]`` with a ``num_features`` attribute.
        views: the view pipeline (``None``: batches hold ready views).
        projection_dim / hidden_dim: the MLP head ``D -> hidden -> projection_dim`` (``hidden_dim=None``: ``D``).
        temperature: T (0.2 in MoCo v2).
        momentum: m of the key encoder's EMA (0.999 in the paper's 200-epoch ImageNet runs; shorter runs need a
            faster key encoder).
        queue_size: K, a multiple of the global batch size (checked when training starts).
        key_batch_norm: ``"shuffle"`` or ``"plain"`` (module docstring); ``bn_splits`` groups for ``"shuffle"``.
    """

    def __init__(
        self,
        backbone: nn.Module,
        views: ViewPipeline | None,
        *,
        projection_dim: int = 128,
        hidden_dim: int | None = None,
        temperature: float = 0.2,
        momentum: float = 0.99,
        queue_size: int = 4096,
        key_batch_norm: str = "shuffle",
        bn_splits: int = 8,
    ) -> None:
        super().__init__()
        check_positive("temperature", temperature)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}")
        if key_batch_norm not in KEY_BATCH_NORMS:
            raise ValueError(f"key_batch_norm must be one of {', '.join(KEY_BATCH_NORMS)}, got {key_batch_norm!r}")
        if queue_size < 1 or bn_splits < 1:
            raise ValueError(f"queue_size and bn_splits must be positive, got {queue_size} and {bn_splits}")
        num_features = int(getattr(backbone, "num_features", 0))
        if num_features <= 0:
            raise ValueError("backbone needs a positive `num_features` attribute (its output size)")
        self.backbone = backbone
        self.views = views
        self.projection_head = MoCoV2ProjectionHead(num_features, hidden_dim or num_features, projection_dim)
        self.key_encoder = nn.Sequential(copy.deepcopy(backbone), copy.deepcopy(self.projection_head))
        self.key_encoder.requires_grad_(False)
        for module in self.key_encoder.modules():  # running statistics follow the query's by the EMA (on_step_end)
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.momentum = 0.0
        self.key_encoder.local_batch_norm = True  # type: ignore[assignment]  # see convert_to_global_batchnorm
        self.temperature, self.momentum = float(temperature), float(momentum)
        self.key_batch_norm, self.bn_splits = key_batch_norm, int(bn_splits)
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, projection_dim), dim=1))
        self.register_buffer("queue_indices", torch.full((queue_size,), -1, dtype=torch.long))
        self.register_buffer("queue_pointer", torch.zeros((), dtype=torch.long))
        self.register_buffer("key_steps", torch.zeros((), dtype=torch.long))
        self.seed = 0
        self._pending: list[tuple[Tensor, Tensor]] = []

    # ------------------------------------------------------------------------------------------- encoders

    def forward(self, x: Tensor) -> Tensor:
        """The queries' space before normalisation, ``head(backbone(x))`` ``[B, projection_dim]``."""
        return self.projection_head(self.backbone(x))

    def embed(self, x: Tensor) -> Tensor:
        """The representation ``f(x)`` of the query backbone, ``[B, D]`` (evaluation and export)."""
        return self.backbone(x)

    @torch.no_grad()
    def key_embedding(self, x: Tensor) -> Tensor:
        """L2-normalised key-encoder outputs ``[B, projection_dim]`` (float32 or wider): what the queue holds."""
        return F.normalize(_at_least_float32(self.key_encoder(x)), dim=1)

    def make_views(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """The query and key views ``[B, C, H, W]`` of ``images``."""
        return draw_two_views("MoCo", self.views, images, generator)

    @torch.no_grad()
    def keys(self, view: Tensor) -> tuple[Tensor, Tensor]:
        """``(local keys [b, d], keys of the global batch [B, d])`` of the key views, L2-normalised, no gradient."""
        if self.key_batch_norm == "plain":
            local = self.key_embedding(view)
            return local, distributed.gather_no_grad(local)
        world, rank = distributed.world_size(), distributed.rank()
        everyone = distributed.gather_no_grad(view)
        n = everyone.shape[0]
        if n % self.bn_splits or self.bn_splits % world:
            raise ValueError(
                f"shuffle-BN cuts the global batch of {n} into method.bn_splits={self.bn_splits} equal groups, "
                f"shared by {world} process(es): make the batch a multiple of bn_splits and bn_splits of the processes"
            )
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + int(self.key_steps)) % 2**63)
        order = torch.randperm(n, generator=generator).to(view.device)
        groups = order.view(self.bn_splits, -1)
        per_rank = self.bn_splits // world
        mine = groups[rank * per_rank : (rank + 1) * per_rank]
        shuffled = distributed.gather_no_grad(torch.cat([self.key_embedding(everyone[g]) for g in mine]))
        keys = torch.empty_like(shuffled)
        keys[order] = shuffled
        start = distributed.rank_offset(view.shape[0], view.device)
        return keys[start : start + view.shape[0]], keys

    # ------------------------------------------------------------------------------------------- training

    def queries(self, view: Tensor) -> tuple[Tensor, Tensor]:
        """``(backbone features [b, D], L2-normalised queries [b, d], float32 or wider)`` of the query views."""
        features = self.backbone(view)
        return features, F.normalize(_at_least_float32(self.projection_head(features)), dim=1)

    def instance_logits(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        """``(q_i.k_i / T [b], q_i.n_j / T [b, K])``: the positive and queue logits."""
        return (q * k).sum(1) / self.temperature, q @ self.queue.T / self.temperature

    def remember(self, keys: Tensor, indices: Tensor | None) -> None:
        """Hold the global batch's keys (and dataset indices) until the step ends, then enqueue them."""
        if indices is None:
            indices = torch.full((keys.shape[0],), -1, dtype=torch.long, device=keys.device)
        else:
            indices = distributed.gather_no_grad(indices.to(keys.device))
        self._pending.append((keys, indices))
        self.key_steps += 1

    def training_step(self, batch: Batch | Tensor | tuple[Tensor, ...]) -> dict[str, Tensor]:
        """One step: queries, shuffled keys, InfoNCE against the queue; the keys are enqueued when the step ends.

        Returns ``{"loss", "embeddings": the query backbone features [b, D] (detached)}``.
        """
        batch, view_q, view_k = two_views_of("MoCo", batch, self.make_views)
        features, q = self.queries(view_q)
        k, everyone = self.keys(view_k)
        positive, negatives = self.instance_logits(q, k)
        loss = selective_info_nce(positive, negatives, None)
        self.remember(everyone, batch.indices)
        return {"loss": loss, "embeddings": features.detach()}

    # ---------------------------------------------------------------------------------------------- hooks

    def on_fit_start(self, ctx: FitContext) -> None:
        """Check the queue against the global batch and take the run's seed for the shuffles."""
        if self.queue.shape[0] % ctx.batch_size:
            raise ValueError(
                f"method.queue_size={self.queue.shape[0]} must be a multiple of data.batch_size={ctx.batch_size} "
                "(the queue advances a whole batch at a time)"
            )
        self.seed = ctx.seed
        self._pending.clear()

    @torch.no_grad()
    def on_step_end(self, ctx: StepContext) -> None:
        """EMA of the key encoder, then the step's keys enqueued (oldest dropped)."""
        query = [*self.backbone.parameters(), *self.projection_head.parameters()]
        for key_param, query_param in zip(self.key_encoder.parameters(), query, strict=True):
            key_param.lerp_(query_param.detach(), 1.0 - self.momentum)
        query_buffers = [*self.backbone.buffers(), *self.projection_head.buffers()]
        for key_buffer, query_buffer in zip(self.key_encoder.buffers(), query_buffers, strict=True):
            if key_buffer.is_floating_point():
                key_buffer.lerp_(query_buffer.to(key_buffer.dtype), 1.0 - self.momentum)
            else:
                key_buffer.copy_(query_buffer)
        for keys, indices in self._pending:
            self.enqueue(keys, indices)
        self._pending.clear()

    @torch.no_grad()
    def enqueue(self, keys: Tensor, indices: Tensor) -> None:
        """Write ``keys`` ``[n, d]`` over the oldest ``n`` queue entries (FIFO, wrapping around)."""
        size, n = self.queue.shape[0], keys.shape[0]
        if n > size:
            raise ValueError(f"a batch of {n} keys does not fit in a queue of {size}: raise method.queue_size")
        slots = (int(self.queue_pointer) + torch.arange(n, device=self.queue.device)) % size
        self.queue[slots] = keys.to(self.queue.dtype)
        self.queue_indices[slots] = indices.to(self.queue_indices.device)
        self.queue_pointer.fill_((int(self.queue_pointer) + n) % size)


def _at_least_float32(x: Tensor) -> Tensor:
    return x.to(torch.promote_types(x.dtype, torch.float32))


@dataclass
class MoCoConfig(MethodConfig):
    """``method: {name: moco}``: MoCo v2 (see :class:`MoCo`)."""

    name: str = "moco"
    temperature: float = 0.2
    momentum: float = 0.99
    queue_size: int = 4096
    key_batch_norm: str = "shuffle"
    bn_splits: int = 8

    def check(self, where: str = "method") -> None:
        require_in_range(f"{where}.temperature", self.temperature, 0.0, float("inf"), interval="()")
        require_in_range(f"{where}.momentum", self.momentum, 0.0, 1.0, interval="[)")
        require_at_least(f"{where}.queue_size", self.queue_size, 1)
        require_at_least(f"{where}.bn_splits", self.bn_splits, 1)
        require_choice(f"{where}.key_batch_norm", self.key_batch_norm, KEY_BATCH_NORMS)


def moco_options(cfg: MoCoConfig) -> dict[str, object]:
    """The :class:`MoCo` keyword arguments of a config (shared by the methods built on MoCo)."""
    return {
        "temperature": cfg.temperature,
        "momentum": cfg.momentum,
        "queue_size": cfg.queue_size,
        "key_batch_norm": cfg.key_batch_norm,
        "bn_splits": cfg.bn_splits,
    }


def build_moco(cfg: MoCoConfig, ctx: BuildContext) -> MoCo:
    """MoCo v2 on the configured backbone, views and head sizes."""
    return MoCo(ctx.backbone, ctx.views, projection_dim=ctx.projection_dim, hidden_dim=ctx.hidden_dim,
                **moco_options(cfg))  # type: ignore[arg-type]  # fmt: skip


register_method(MoCoConfig, build_moco)
