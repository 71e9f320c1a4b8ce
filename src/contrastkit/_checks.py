"""Input validation shared by every floor.

Each check raises a one-line ``ValueError`` that names the argument, what was wrong and how to fix it, so that bad
input fails at the API boundary and not deep inside torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


class NonFiniteError(ValueError):
    """A tensor holds NaN or Inf (in training: the run diverged)."""


def check_positive(name: str, value: float) -> None:
    """Raise unless ``value`` is a finite number > 0 (temperatures, learning rates, ...)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def check_tensor(
    name: str,
    x: object,
    ndim: int | Sequence[int] | None = None,
    *,
    min_rows: int | None = None,
    finite: bool = True,
    floating: bool = False,
) -> Tensor:
    """Check that ``x`` is a tensor of the given rank(s), with at least ``min_rows`` rows and no NaN/Inf.

    Returns ``x`` so the call can be used inline.
    """
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(f"{name} must have {want} dimensions, got shape {tuple(x.shape)}")
    if floating and not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}; call .float() first")
    if min_rows is not None and (x.ndim == 0 or x.shape[0] < min_rows):
        got = 0 if x.ndim == 0 else x.shape[0]
        raise ValueError(f"{name} needs at least {min_rows} rows (batch size), got {got}")
    if finite and x.is_floating_point() and not _all_finite(x):
        raise NonFiniteError(f"{name} contains NaN or Inf; check the inputs and the learning rate")
    return x


def _all_finite(x: Tensor) -> bool:
    """No NaN or Inf in ``x``: one sum (a NaN or Inf makes it non-finite) and, only when the sum is not finite (which
    a sum of large finite values can also be), the exact elementwise test."""
    return bool(torch.isfinite(x.sum())) or bool(torch.isfinite(x).all())


def check_labels(name: str, labels: object, n: int, num_classes: int | None = None) -> Tensor:
    """Check an integer label vector of length ``n`` (values in ``[0, num_classes)`` when given)."""
    if not isinstance(labels, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of integer class ids, got {type(labels).__name__}")
    if labels.ndim != 1:
        raise ValueError(f"{name} must be 1-D [N], got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer class ids, got dtype {labels.dtype}; call .long() first")
    if labels.shape[0] != n:
        raise ValueError(f"{name} has {labels.shape[0]} entries but there are {n} samples; they must match")
    if num_classes is not None and n > 0:
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"{name} must lie in [0, {num_classes}), got values in [{lo}, {hi}]")
    return labels


def check_same_shape(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    """Raise unless two tensors have the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"{name_a} {tuple(a.shape)} and {name_b} {tuple(b.shape)} must have the same shape")


def check_images(name: str, x: object, channels: int | None = None) -> Tensor:
    """Check a batch of images ``[B, C, H, W]`` (floating point; ``channels`` when given)."""
    t = check_tensor(name, x, 4, floating=True)
    if t.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch")
    if channels is not None and t.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channel(s) [B, {channels}, H, W], got shape {tuple(t.shape)}")
    return t
