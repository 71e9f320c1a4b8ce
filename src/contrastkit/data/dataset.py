"""``ImageDataset``: an in-memory image classification set (images, optional labels, class names)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from contrastkit._checks import check_labels, check_tensor

__all__ = ["ImageDataset"]

Index = int | slice | Tensor | Sequence[int] | np.ndarray


@dataclass(frozen=True, eq=False, repr=False)
class ImageDataset:
    """Images ``[N, C, H, W]`` (floating point, values in [0, 1]) with optional int64 labels ``[N]``.

    Attributes:
        images: [N, C, H, W] float tensor in [0, 1] (loaders produce float32).
        labels: [N] int64 class ids in ``[0, len(classes))``, or None for an unlabelled set.
        classes: class names; ``classes[k]`` names label k (empty for an unlabelled set).
        name: where the data came from, e.g. ``"fashion-mnist/train"``.

    Indexing follows ``torch.utils.data.Dataset`` for an int (``ds[i] -> (image [C, H, W], label)``, the
    label being a 0-d int64 tensor, or -1 for an unlabelled set) and returns a new ``ImageDataset`` for a
    slice (views, no copy), a boolean mask or a sequence / tensor of indices (one gather). Subsets skip
    re-validation.
    """

    images: Tensor
    labels: Tensor | None
    classes: list[str]
    name: str

    def __post_init__(self) -> None:
        images = check_tensor("images", self.images, 4, floating=True, finite=False)
        if images.numel():
            lo, hi = float(images.min()), float(images.max())  # min / max propagate NaN
            if not (lo >= 0 and hi <= 1):
                raise ValueError(
                    f"images must lie in [0, 1] (no NaN), got [{lo:.4g}, {hi:.4g}]; divide uint8 by 255"
                )
        if not isinstance(self.classes, list) or not all(isinstance(c, str) for c in self.classes):
            raise ValueError(f"classes must be a list of str, got {self.classes!r}")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be unique names, got {self.classes!r}")
        if self.labels is not None:
            if not self.classes:
                raise ValueError("a labelled dataset needs class names: pass classes=[...] (one per label)")
            labels = check_labels("labels", self.labels, images.shape[0], len(self.classes))
            if labels.dtype != torch.int64:
                raise ValueError(f"labels must be int64, got {labels.dtype}; call .long() first")
            if labels.device != images.device:
                raise ValueError(f"labels are on {labels.device} but images on {images.device}; move both")

    @classmethod
    def _trusted(cls, images: Tensor, labels: Tensor | None, classes: list[str], name: str) -> ImageDataset:
        """Build without validation (for subsets of an already validated set)."""
        obj = object.__new__(cls)
        for key, value in (("images", images), ("labels", labels), ("classes", classes), ("name", name)):
            object.__setattr__(obj, key, value)
        return obj

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: Index) -> tuple[Tensor, Tensor] | ImageDataset:
        if isinstance(index, bool):
            raise ValueError("index with an int, a slice, indices or a boolean mask [N], not a bool")
        if isinstance(index, (int, np.integer)):
            i = int(index)
            if not -len(self) <= i < len(self):
                raise IndexError(f"index {i} is out of range for a dataset of {len(self)} images")
            label = self.labels[i] if self.labels is not None else torch.tensor(-1, device=self.images.device)
            return self.images[i], label
        if isinstance(index, slice):
            labels = self.labels[index] if self.labels is not None else None
            return ImageDataset._trusted(self.images[index], labels, list(self.classes), self.name)
        return self.subset(index)

    def subset(self, indices: Tensor | Sequence[int] | np.ndarray) -> ImageDataset:
        """The images at ``indices`` (LongTensor / sequence of ints, or a boolean mask [N]), in that order."""
        idx = torch.as_tensor(np.asarray(indices) if not isinstance(indices, Tensor) else indices)
        if idx.dtype == torch.bool:
            if idx.shape != (len(self),):
                raise ValueError(f"a boolean mask must have shape ({len(self)},), got {tuple(idx.shape)}")
            idx = torch.nonzero(idx, as_tuple=False).flatten()
        if idx.ndim != 1 or (idx.numel() and (idx.is_floating_point() or idx.is_complex())):
            raise ValueError(
                f"indices must be a 1-D sequence of ints, got shape {tuple(idx.shape)} {idx.dtype}"
            )
        idx = idx.to(device=self.images.device, dtype=torch.int64)
        if idx.numel() and (int(idx.max()) >= len(self) or int(idx.min()) < -len(self)):
            raise IndexError(
                f"indices must lie in [-{len(self)}, {len(self)}), got [{int(idx.min())}, {int(idx.max())}]"
            )
        labels = self.labels[idx] if self.labels is not None else None
        return ImageDataset._trusted(self.images[idx], labels, list(self.classes), self.name)

    def to(self, device: torch.device | str) -> ImageDataset:
        """The same data on ``device``."""
        labels = self.labels.to(device) if self.labels is not None else None
        return ImageDataset._trusted(self.images.to(device), labels, list(self.classes), self.name)

    @property
    def num_classes(self) -> int:
        """Number of classes (0 for an unlabelled set)."""
        return len(self.classes)

    @property
    def channels(self) -> int:
        """C of ``[N, C, H, W]``."""
        return int(self.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W)."""
        return int(self.images.shape[2]), int(self.images.shape[3])

    @property
    def is_labelled(self) -> bool:
        return self.labels is not None

    def class_counts(self) -> Tensor:
        """[num_classes] int64 number of images per class; raises for an unlabelled set."""
        if self.labels is None:
            raise ValueError(f"{self.name} is unlabelled: it has no class counts")
        return torch.bincount(self.labels, minlength=self.num_classes)

    def __repr__(self) -> str:
        n, c, h, w = self.images.shape
        kind = f"{self.num_classes} classes" if self.labels is not None else "unlabelled"
        where = f"{self.images.dtype}, {self.images.device}"
        return f"ImageDataset({self.name!r}, {n} images, {c}x{h}x{w}, {kind}, {where})"
