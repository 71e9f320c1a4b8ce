"""Class-balanced batches and long-tailed training subsets, for learning on imbalanced data.

* :class:`ClassBalancedBatchSampler` (CICL ``--balance``, Marrakchi et al., MICCAI 2021): every batch holds
  exactly ``k = batch_size // K`` indices of each of the K classes present, so a batch has ``k * K`` indices.
  Each class draws from its own seeded stream of random permutations of its members, concatenated one after
  another: a class with fewer than ``k`` members (or exhausted in an epoch) starts a fresh permutation, i.e. rare
  classes are sampled with replacement (repeated), frequent classes without replacement within a permutation.
  The order inside a batch is shuffled. One epoch is ``num_batches`` batches (default ``ceil(N / (k K))``, about
  one pass's worth of samples); ``set_epoch(e)`` switches to the random stream of ``(seed, e)`` so that epochs
  differ but replay exactly (the same seed and epoch give the same batches).
* :func:`long_tailed_subset`: the subset of an :class:`ImageDataset` with exactly ``counts[c]`` images of class c
  (:func:`contrastkit.data.splits.long_tailed_indices`), e.g. the exponential profile
  ``long_tailed_counts(n_max, C, rho)`` or the HAM10000 profile ``scale_profile(HAM10000_COUNTS, s)`` (the first
  ``len(counts)`` classes take the profile in label order; the others are dropped).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor
from torch.utils.data import Sampler

from contrastkit._checks import check_labels
from contrastkit.data.dataset import ImageDataset
from contrastkit.data.splits import long_tailed_indices

__all__ = ["HAM10000_COUNTS", "ClassBalancedBatchSampler", "long_tailed_subset"]

HAM10000_COUNTS: tuple[int, ...] = (6705, 1113, 1099, 514, 327, 142, 115)
"""HAM10000 / ISIC 2018 Task 3 images per class: NV, MEL, BKL, BCC, AKIEC, VASC, DF (imbalance ratio 58.3)."""


class ClassBalancedBatchSampler(Sampler[list[int]]):
    """Batches of indices with the same number ``per_class = batch_size // K`` of every class (see module doc).

    Args:
        labels: [N] integer class ids >= 0 (any device; only the classes present count towards K).
        batch_size: requested batch size; the batches hold ``per_class * K <= batch_size`` indices.
        num_batches: batches per epoch (default ``ceil(N / (per_class * K))``).
        seed: int >= 0, seed of every random draw (CPU ``torch.Generator``), combined with the epoch set by
            ``set_epoch``.

    Usable as ``DataLoader(dataset, batch_sampler=ClassBalancedBatchSampler(labels, 256))``.
    """

    def __init__(self, labels: Tensor, batch_size: int, *, num_batches: int | None = None, seed: int = 0) -> None:
        check_labels("labels", labels, labels.shape[0] if isinstance(labels, Tensor) and labels.ndim else -1)
        if labels.numel() == 0 or int(labels.min()) < 0:
            raise ValueError("labels must be a non-empty [N] tensor of class ids >= 0")
        cpu = labels.detach().to("cpu", torch.int64)
        self.classes: list[int] = torch.unique(cpu).tolist()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < len(self.classes):
            raise ValueError(
                f"batch_size must be an int >= the number of classes ({len(self.classes)}) so that every class "
                f"gets a slot, got {batch_size!r}"
            )
        self.per_class = batch_size // len(self.classes)
        self.batch_size = self.per_class * len(self.classes)
        if num_batches is None:
            num_batches = max(1, math.ceil(cpu.numel() / self.batch_size))
        if isinstance(num_batches, bool) or not isinstance(num_batches, int) or num_batches < 1:
            raise ValueError(f"num_batches must be an int >= 1, got {num_batches!r}")
        self.num_batches = num_batches
        self.members = [torch.nonzero(cpu == c, as_tuple=False).flatten() for c in self.classes]
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
            raise ValueError(f"seed must be an int in [0, 2**31), got {seed!r}")
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the random stream of ``(seed, epoch)`` in the next iteration (``DistributedSampler`` style)."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch < 2**31:
            raise ValueError(f"epoch must be an int in [0, 2**31), got {epoch!r}")
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_batches

    def _class_stream(self, members: Tensor, total: int, generator: torch.Generator) -> Tensor:
        """``total`` indices of one class: fresh random permutations of ``members`` concatenated."""
        rounds = math.ceil(total / members.numel())
        perms = [members[torch.randperm(members.numel(), generator=generator)] for _ in range(rounds)]
        return torch.cat(perms)[:total]

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 2**31 + self.epoch)  # distinct per (seed, epoch)
        total = self.per_class * self.num_batches
        streams = [self._class_stream(m, total, generator).view(self.num_batches, self.per_class) for m in self.members]
        table = torch.cat(streams, dim=1)  # [num_batches, per_class * K]
        for b in range(self.num_batches):
            batch = table[b][torch.randperm(self.batch_size, generator=generator)]
            yield batch.tolist()


def long_tailed_subset(dataset: ImageDataset, counts: Sequence[int], seed: int = 0) -> ImageDataset:
    """The images of ``dataset`` with exactly ``counts[c]`` of class c (random, seeded; classes beyond
    ``len(counts)`` dropped), in the original order. Labels keep their ids; ``classes`` is cut to
    ``len(counts)`` names. ValueError when a class has fewer images than asked."""
    if not isinstance(dataset, ImageDataset) or dataset.labels is None:
        raise ValueError("long_tailed_subset needs a labelled ImageDataset (e.g. contrastkit.data.load(name))")
    if len(counts) > len(dataset.classes):
        raise ValueError(f"counts has {len(counts)} classes but the dataset only {len(dataset.classes)}")
    index = long_tailed_indices(dataset.labels, counts, seed=seed)
    subset = dataset[index]
    assert isinstance(subset, ImageDataset)
    return ImageDataset(
        subset.images, subset.labels, list(dataset.classes[: len(counts)]), f"{dataset.name}[long-tailed]"
    )
