"""Data sources: what the training engine iterates, with a visiting order that is a function of (seed, epoch).

A source answers four questions, so that the engine never touches a dataset's tensors itself:

* ``len(source)``: how many items (images, tiles, graphs) it holds;
* ``num_batches(batch_size)``: global batches per epoch;
* ``batch_indices(epoch, index, batch_size, seed)``: the item indices ``[B]`` of global batch ``index`` of epoch
  ``epoch``, the same on every process and after a resume (nothing is replayed);
* ``fetch(indices)``: the :class:`~contrastkit.data.batch.Batch` of those items (``images``, ``labels``,
  ``indices``, ``domains``, ``masks`` as the source has them; views are the method's business).

:class:`TensorSource` serves in-memory tensors with a ``"shuffle"`` (``randperm(N, seed=(seed, epoch))``, the last
incomplete batch dropped unless ``drop_last=False``), ``"sequential"`` or ``"class_balanced"``
(:class:`~contrastkit.data.samplers.ClassBalancedBatchSampler`, CICL) sampler. Labels ``-1`` mark unlabelled
items (:func:`labelled_unlabelled` builds such a source from a labelled subset); a class-balanced sampler draws
from the labelled items only. :class:`~contrastkit.data.graph_source.GraphSource` (a full graph, or node-induced
subgraphs) and tile+mask sources implement the same four methods.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from contrastkit._checks import check_tensor
from contrastkit.data.batch import Batch
from contrastkit.data.dataset import ImageDataset
from contrastkit.data.samplers import ClassBalancedBatchSampler

__all__ = ["SAMPLERS", "DataSource", "TensorSource", "epoch_order", "labelled_unlabelled"]

SAMPLERS = ("shuffle", "sequential", "class_balanced")
UNLABELLED = -1


def epoch_order(n: int, seed: int, epoch: int) -> Tensor:
    """The visiting order of epoch ``epoch``: a permutation of ``range(n)`` that depends on (seed, epoch) only."""
    return torch.randperm(n, generator=torch.Generator().manual_seed((seed * 1_000_003 + epoch) % 2**63))


@runtime_checkable
class DataSource(Protocol):
    """What the engine iterates (see the module docstring)."""

    def __len__(self) -> int: ...

    def num_batches(self, batch_size: int) -> int: ...

    def batch_indices(self, epoch: int, index: int, batch_size: int, seed: int) -> Tensor: ...

    def fetch(self, indices: Tensor) -> Batch: ...


class TensorSource:
    """In-memory items: ``images [N, C, H, W]`` with optional ``labels [N]`` (``-1`` = unlabelled),
    ``domains [N]`` and ``masks [N, H, W]``.

    Args:
        sampler: ``"shuffle"`` (default), ``"sequential"`` or ``"class_balanced"`` (labelled items only; every
            batch holds ``batch_size // K`` items of each of the K classes).
        drop_last: drop the last incomplete batch of an epoch (default; contrastive batches keep one size).
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor | None = None,
        *,
        domains: Tensor | None = None,
        masks: Tensor | None = None,
        sampler: str = "shuffle",
        drop_last: bool = True,
    ) -> None:
        check_tensor("images", images, min_rows=1, finite=False)
        n = images.shape[0]
        for name, value in (("labels", labels), ("domains", domains), ("masks", masks)):
            if value is not None and (not isinstance(value, Tensor) or value.shape[0] != n):
                raise ValueError(f"{name} must be a tensor with one row per image ({n}), got {_shape(value)}")
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
        if sampler == "class_balanced" and (labels is None or not bool((labels >= 0).any())):
            raise ValueError("sampler='class_balanced' needs labelled items: pass labels or use sampler='shuffle'")
        self.images, self.labels, self.domains, self.masks = images, labels, domains, masks
        self.sampler, self.drop_last = sampler, drop_last
        self._cache: tuple[tuple[int, int, int], list[Tensor]] | None = None

    @classmethod
    def from_dataset(cls, dataset: ImageDataset, **kwargs: object) -> TensorSource:
        """The images and labels of an :class:`~contrastkit.data.ImageDataset`."""
        return cls(dataset.images, dataset.labels, **kwargs)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def labelled(self) -> Tensor | None:
        """``[N]`` bool, True where the item has a label (None for an unlabelled source)."""
        return None if self.labels is None else self.labels >= 0

    def _balanced_sampler(self, batch_size: int, seed: int) -> tuple[Tensor, ClassBalancedBatchSampler]:
        """The labelled items' indices and the sampler over them (its batches index into those)."""
        assert self.labels is not None
        members = torch.nonzero(self.labels >= 0).flatten()
        return members, ClassBalancedBatchSampler(self.labels[members], batch_size, seed=seed % 2**31)

    def num_batches(self, batch_size: int) -> int:
        if self.sampler == "class_balanced":
            return len(self._balanced_sampler(batch_size, 0)[1])
        n = len(self)
        return n // batch_size if self.drop_last else math.ceil(n / batch_size)

    def _epoch_batches(self, epoch: int, batch_size: int, seed: int) -> list[Tensor]:
        key = (epoch, batch_size, seed)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        if self.sampler == "class_balanced":
            members, sampler = self._balanced_sampler(batch_size, seed)
            sampler.set_epoch(epoch)
            batches = [members[torch.tensor(b)] for b in sampler]
        else:
            order = epoch_order(len(self), seed, epoch) if self.sampler == "shuffle" else torch.arange(len(self))
            if self.drop_last:
                order = order[: self.num_batches(batch_size) * batch_size]
            batches = list(order.split(batch_size))
        self._cache = (key, batches)
        return batches

    def batch_indices(self, epoch: int, index: int, batch_size: int, seed: int) -> Tensor:
        return self._epoch_batches(epoch, batch_size, seed)[index]

    def fetch(self, indices: Tensor) -> Batch:
        def pick(x: Tensor | None) -> Tensor | None:
            return None if x is None else x[indices.to(x.device)]

        return Batch(
            images=pick(self.images),
            labels=pick(self.labels),
            indices=indices,
            domains=pick(self.domains),
            masks=pick(self.masks),
        )


def labelled_unlabelled(
    images: Tensor, labels: Tensor, labelled_indices: Tensor | Sequence[int], **kwargs: object
) -> TensorSource:
    """A source over all ``images`` whose labels are kept only at ``labelled_indices`` (the others are ``-1``)."""
    idx = torch.as_tensor(labelled_indices, dtype=torch.int64)
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= labels.shape[0]):
        raise ValueError(f"labelled_indices must lie in [0, {labels.shape[0]}), got {idx.min()}..{idx.max()}")
    kept = torch.full_like(labels, UNLABELLED)
    kept[idx] = labels[idx]
    return TensorSource(images, kept, **kwargs)  # type: ignore[arg-type]


def _shape(value: object) -> str:
    return str(tuple(value.shape)) if isinstance(value, Tensor) else type(value).__name__
