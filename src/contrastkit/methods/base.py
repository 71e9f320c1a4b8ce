"""The small protocol every method speaks, so that a plain PyTorch loop or the harness can drive any of them."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor, nn

Batch = Tensor | tuple[Tensor, ...] | list[Tensor]


@runtime_checkable
class Method(Protocol):
    """A contrastive method: an ``nn.Module`` with a ``backbone`` and a ``training_step``.

    ``training_step(batch)`` takes what a data loader yields (images ``[B, C, H, W]``, or a tuple whose first entry
    is the images and whose second, when present, the labels) and returns a dict of scalar tensors with at least
    ``"loss"`` (the tensor to back-propagate); other entries are detached diagnostics for logging.
    ``embed(x)`` returns the representation used for evaluation (the backbone output, ``[B, num_features]``).
    """

    backbone: nn.Module

    def training_step(self, batch: Batch) -> dict[str, Tensor]: ...

    def embed(self, x: Tensor) -> Tensor: ...


def split_batch(batch: Batch) -> tuple[Tensor, Tensor | None]:
    """Return ``(images, labels_or_None)`` from a tensor or an ``(images, labels, ...)`` tuple."""
    if isinstance(batch, Tensor):
        return batch, None
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
        labels = batch[1] if len(batch) > 1 and isinstance(batch[1], Tensor) else None
        return batch[0], labels
    raise ValueError(
        f"a batch must be an image tensor [B, C, H, W] or a tuple (images, labels), got {type(batch).__name__}"
    )
