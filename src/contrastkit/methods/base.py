"""The protocol every method speaks, so that a plain PyTorch loop or the engine can drive any of them.

Required (:class:`Method`):

* ``training_step(batch) -> {"loss": scalar, ...}``: ``batch`` is a :class:`~contrastkit.data.Batch` (or anything
  :func:`~contrastkit.data.as_batch` accepts: images, ``(images, labels)``); other scalar entries are detached
  diagnostics for logging, the optional ``"embeddings"`` holds detached ``[B, D]`` representations of the first
  view for online monitors;
* ``make_views(images, generator) -> tuple of [B, C, H, W]``: the views the method trains on; the engine calls
  it on the *global* batch and hands each rank its rows, so that multi-process training sees one process's views;
* ``embed(x) -> [B, D]``: the representation that monitors, evaluation and export use.

Optional members, used by the engine (:class:`contrastkit.train.engine.Engine`) and the monitors when a method
defines them (see :class:`MethodHooks` for the hooks' contexts):

* ``on_fit_start(ctx)``: once, before the first step, with the data source (build a queue, a memory bank);
* ``on_epoch_start(ctx)``: at every epoch boundary, with ``ctx.features()`` = ``embed`` of the whole training
  source (k-means prototypes, pseudo-labels). Not called when a resume lands mid-epoch: what a hook computes
  belongs in buffers, which checkpoints keep;
* ``on_step_end(ctx)``: after every optimiser step (momentum-encoder EMA, enqueueing keys);
* ``predict(x) -> [B, K]``: class logits, for methods that classify; the monitors then report held-out accuracy,
  balanced accuracy and macro-F1;
* ``parameter_groups() -> [{"params": [...], ...}]``: the optimiser's groups (default: one group of every
  parameter with ``requires_grad``); extra keys such as ``"lr_scale"`` or ``"weight_decay"`` override the
  optimiser config for that group.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from contrastkit._checks import check_images
from contrastkit.data.batch import Batch, as_batch

__all__ = ["EpochContext", "FitContext", "Method", "MethodHooks", "StepContext", "trainable_parameters", "views_of"]


@runtime_checkable
class Method(Protocol):
    """A method: an ``nn.Module`` with ``make_views``, ``training_step`` and ``embed`` (module docstring)."""

    def make_views(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, ...]: ...

    def training_step(self, batch: Batch) -> dict[str, Tensor]: ...

    def embed(self, x: Tensor) -> Tensor: ...


@dataclass(frozen=True)
class FitContext:
    """What ``on_fit_start`` sees: the training ``source``, where the run is, and how long it will be.

    ``max_steps`` is None for a time-budgeted run.
    """

    source: Any
    device: torch.device
    precision: str
    seed: int
    batch_size: int
    steps_per_epoch: int
    max_steps: int | None
    world_size: int
    rank: int


@dataclass(frozen=True)
class EpochContext:
    """What ``on_epoch_start`` sees. ``features(fn=None)`` runs ``fn(images)`` (default ``method.embed``) over the
    whole training source in index order, in eval mode, without gradients and under the run's precision, and
    returns float32 ``[N, D]`` on the training device."""

    epoch: int
    step: int
    features: Callable[..., Tensor]


@dataclass(frozen=True)
class StepContext:
    """What ``on_step_end`` sees: the optimiser steps done, the run's progress in [0, 1], the local batch and the
    step's outputs (detached)."""

    step: int
    progress: float
    batch: Batch
    outputs: dict[str, Tensor]


class MethodHooks:
    """No-op versions of the optional hooks, as a base class for methods that want some of them."""

    def on_fit_start(self, ctx: FitContext) -> None:
        """Called once before the first step."""

    def on_epoch_start(self, ctx: EpochContext) -> None:
        """Called at every epoch boundary."""

    def on_step_end(self, ctx: StepContext) -> None:
        """Called after every optimiser step."""


def trainable_parameters(module: nn.Module) -> Iterator[nn.Parameter]:
    """The parameters of ``module`` that require gradients."""
    return (p for p in module.parameters() if p.requires_grad)


def views_of(
    method: str, batch: object, count: int, make_views: Callable[[Tensor], tuple[Tensor, ...]]
) -> tuple[Batch, tuple[Tensor, ...]]:
    """``(batch, views)``: the batch as a :class:`Batch` and its ``count`` views, ready ones when the batch holds
    them, else ``make_views(batch.images)``. Checks that the views are ``[B, C, H, W]`` of one shape."""
    batch = as_batch(batch)
    if batch.views:
        views = batch.views
    elif batch.images is not None:
        views = make_views(batch.images)
    else:
        raise ValueError(f"{method}: the batch holds neither images nor views")
    if len(views) < count:
        raise ValueError(f"{method} trains on {count} view(s), got a batch with {len(views)}")
    views = tuple(check_images(f"view{i + 1}", v) for i, v in enumerate(views[:count]))
    if any(v.shape != views[0].shape for v in views):
        raise ValueError(f"{method} needs views of one shape, got {[tuple(v.shape) for v in views]}")
    return batch, views
