"""Shared helpers of the augment floor: input validation and per-image parameter sampling.

Every random op samples its per-image parameters as tensors of shape ``[B]`` (or ``[B, k]``), never in a
Python loop over images. Randomness comes from ``generator`` when one is given, else from torch's global RNG:

* ``generator`` given: parameters are drawn on ``generator.device`` and moved to the images' device, so a CPU
  generator seeded the same way gives the same views on any device.
* ``generator=None``: parameters are drawn on the images' device from the global RNG of that device
  (``torch.manual_seed`` / ``torch.cuda.manual_seed``), so a training harness that saves and restores the RNG
  state resumes with exactly the same views.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from contrastkit._checks import check_tensor


def check_images_fast(name: str, x: object, channels: int | None = None) -> Tensor:
    """Validate a float image batch ``[B, C, H, W]`` without scanning its values (no device sync).

    Raises a one-line ``ValueError`` for a non-tensor, a rank other than 4, a non-float dtype, an empty batch,
    or (when ``channels`` is given) a different channel count.
    """
    t = check_tensor(name, x, 4, floating=True, finite=False)
    if t.shape[0] == 0 or t.shape[-1] == 0 or t.shape[-2] == 0:
        raise ValueError(f"{name} is empty, got shape {tuple(t.shape)}; pass at least one non-empty image")
    if channels is not None and t.shape[1] != channels:
        raise ValueError(
            f"{name} must have {channels} channels [B, {channels}, H, W], got shape {tuple(t.shape)}; "
            f"use an op meant for {t.shape[1]}-channel images (e.g. BrightnessContrast for grey)"
        )
    return t


def check_probability(name: str, p: float) -> float:
    """Raise unless ``0 <= p <= 1``; return ``float(p)``."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
    return float(p)


def check_interval(
    name: str, value: float | Sequence[float], *, center: float | None, lower: float, upper: float = math.inf
) -> tuple[float, float]:
    """Turn a jitter strength or an explicit ``(low, high)`` interval into a checked interval.

    A scalar ``s`` means ``[center - s, center + s]`` clipped to ``lower`` (the colour-jitter convention of
    SimCLR, Chen et al., ICML 2020, Appendix A; e.g. brightness 0.4 -> factors in [0.6, 1.4]). ``center=None``
    forbids the scalar form. Raises ``ValueError`` when the interval is reversed or leaves ``[lower, upper]``.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if center is None:
            raise ValueError(f"{name} must be a (low, high) pair, got {value!r}")
        if value < 0 or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite strength >= 0, got {value!r}")
        lo, hi = max(lower, center - float(value)), center + float(value)
    else:
        try:
            lo, hi = (float(v) for v in value)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number or a (low, high) pair, got {value!r}") from None
    if not (lower <= lo <= hi <= upper) or not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} must satisfy {lower} <= low <= high <= {upper}, got ({lo}, {hi})")
    return lo, hi


def _source_device(generator: torch.Generator | None, device: torch.device) -> torch.device:
    return generator.device if generator is not None else device


def uniform(
    shape: Sequence[int],
    low: float,
    high: float,
    generator: torch.Generator | None,
    device: torch.device,
) -> Tensor:
    """Float32 samples of ``U[low, high)`` with the given shape, returned on ``device``."""
    t = torch.rand(tuple(shape), generator=generator, device=_source_device(generator, device))
    return (low + (high - low) * t).to(device, non_blocking=True)


def bernoulli(n: int, p: float, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Boolean ``[n]``, each entry True with probability ``p`` (always one uniform draw per entry)."""
    t = torch.rand((n,), generator=generator, device=_source_device(generator, device))
    return (t < p).to(device, non_blocking=True)


def standard_normal(
    shape: Sequence[int], generator: torch.Generator | None, device: torch.device, dtype: torch.dtype
) -> Tensor:
    """``N(0, 1)`` samples with the given shape, returned on ``device`` with ``dtype``."""
    t = torch.randn(tuple(shape), generator=generator, device=_source_device(generator, device))
    return t.to(device=device, dtype=dtype, non_blocking=True)


def per_image(values: Tensor, like: Tensor) -> Tensor:
    """Reshape a per-image vector ``[B]`` to ``[B, 1, 1, 1]`` in the dtype of ``like`` for broadcasting."""
    return values.to(like.dtype).view(-1, 1, 1, 1)
