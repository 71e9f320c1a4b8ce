"""Embed a dataset with a frozen model: the first step of every offline evaluation protocol.

``extract_features`` runs ``model`` in eval mode under ``torch.no_grad`` (BatchNorm uses running
statistics, dropout is off), in batches, and returns ``[N, D]`` float32 features on the CPU. The model's
train/eval mode (and its device, if ``device`` moved it) is restored afterwards, so it is safe to call in the
middle of training, as the online kNN monitor of ``contrastkit/train/monitors.py`` does.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from contrastkit._checks import check_tensor
from contrastkit.accel import autocast

__all__ = ["extract_features", "module_device"]


def module_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); CPU for a model without either."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


class Embedding(nn.Module):
    """A method's ``embed`` as a module: ``Embedding(method)(x) = method.embed(x)``, so that feature extraction,
    monitors and evaluation use the representation each method declares."""

    def __init__(self, method: nn.Module) -> None:
        super().__init__()
        self.method = method

    def forward(self, x: Tensor) -> Tensor:
        return self.method.embed(x)


def _check_batch_size(batch_size: object) -> int:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return batch_size


def extract_features(
    model: nn.Module,
    images: Tensor,
    batch_size: int = 512,
    device: torch.device | str | None = None,
    transform: Callable[[Tensor], Tensor] | None = None,
    precision: str = "32",
) -> Tensor:
    """Embed ``images`` with ``model``: ``features[i] = model(transform(images[i]))`` flattened to 1-D.

    Args:
        model: any ``nn.Module`` mapping a batch ``[B, ...]`` to a tensor ``[B, ...]`` (e.g. a backbone
            returning ``[B, D]``). Outputs with more than 2 dims are flattened to ``[B, prod(rest)]``.
        images: ``[N, C, H, W]`` (any ``[N, ...]`` with ``N >= 1`` is accepted) on any device; each batch is
            moved to the compute device, so a large CPU dataset never has to fit on the GPU.
        batch_size: rows per forward pass.
        device: where to compute. ``None`` uses the model's device. Otherwise the model is moved there for the
            call and moved back afterwards.
        transform: optional batch transform applied on the compute device before the forward pass (e.g. the
            eval normalisation). It must map a ``[B, ...]`` tensor to the model's input.
        precision: ``"32"``, ``"bf16"`` or ``"auto"`` (bfloat16 autocast only where fast; see
            :mod:`contrastkit.accel`). The returned features are float32 in all cases.

    Returns:
        ``[N, D]`` float32 tensor on the CPU.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_tensor("images", images, min_rows=1)
    if images.ndim < 2:
        raise ValueError(
            f"images must be a batch [N, C, H, W] (at least 2-D), got shape {tuple(images.shape)}"
        )
    if transform is None and not images.is_floating_point():
        raise ValueError(
            f"images must be floating point (got {images.dtype}); "
            "call .float() or pass a transform that converts them"
        )
    _check_batch_size(batch_size)
    if transform is not None and not callable(transform):
        raise ValueError(f"transform must be callable or None, got {type(transform).__name__}")

    original_device = module_device(model)
    compute_device = original_device if device is None else torch.device(device)
    was_training = model.training
    moved = compute_device != original_device
    if moved:
        model.to(compute_device)
    model.eval()
    chunks: list[Tensor] = []
    try:
        with torch.no_grad(), autocast(compute_device, precision):
            for start in range(0, images.shape[0], batch_size):
                batch = images[start : start + batch_size].to(compute_device, non_blocking=True)
                if transform is not None:
                    batch = transform(batch)
                out = model(batch)
                if not isinstance(out, Tensor):
                    raise ValueError(
                        f"model must return a Tensor, got {type(out).__name__}; "
                        "wrap it to select the embedding"
                    )
                if out.ndim == 0 or out.shape[0] != batch.shape[0]:
                    raise ValueError(
                        f"model output {tuple(out.shape)} must have the batch size "
                        f"{batch.shape[0]} as first dim"
                    )
                chunks.append(out.reshape(out.shape[0], -1).float().cpu())
    finally:
        model.train(was_training)
        if moved:
            model.to(original_device)
    return torch.cat(chunks, dim=0)
