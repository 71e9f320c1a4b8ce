"""Deterministic, stratified index selection: label fractions, long-tailed subsets and train/test splits.

All functions take a 1-D integer label vector ``labels`` [N] and return LongTensors of indices into it, on the
labels' device, sorted ascending (so the selection preserves the original order). Randomness comes only from a
``torch.Generator`` seeded with ``seed`` on the CPU, so a given (labels, seed) always gives the same indices
on every device.

Rounding conventions (all integer allocations are exact, never "about"):

* ``round_half_up(x) = floor(x + 1/2)``, computed in decimal arithmetic, so 6705 * 0.5 = 3352.5 -> 3353.
* When a total has to be spread over classes in proportion to their sizes, the largest-remainder (Hamilton)
  method is used: every class gets ``floor(ideal_c)``, and the leftover units go to the classes with the
  largest fractional parts (ties: lower class id first).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal

import torch
from torch import Tensor

from contrastkit._checks import check_labels

__all__ = [
    "label_fraction_indices",
    "long_tailed_counts",
    "long_tailed_indices",
    "round_half_up",
    "scale_profile",
    "stratified_split",
]


def round_half_up(x: float) -> int:
    """``floor(x + 1/2)`` evaluated on the decimal form of ``x`` (no binary floating-point surprises)."""
    return math.floor(Decimal(str(x)) + Decimal("0.5"))


def _labels_1d(labels: Tensor) -> Tensor:
    check_labels("labels", labels, labels.shape[0] if isinstance(labels, Tensor) and labels.ndim else -1)
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError(f"labels must be >= 0 class ids, got minimum {int(labels.min())}")
    return labels


def _class_members(labels: Tensor, seed: int) -> list[Tensor]:
    """Per class c: the indices with label c in a seeded random order (CPU tensors)."""
    cpu = labels.detach().to("cpu", torch.int64)
    gen = torch.Generator().manual_seed(int(seed))
    num_classes = int(cpu.max()) + 1 if cpu.numel() else 0
    members = []
    for c in range(num_classes):
        idx = torch.nonzero(cpu == c, as_tuple=False).flatten()
        members.append(idx[torch.randperm(idx.numel(), generator=gen)])
    return members


def _largest_remainder(ideal: Sequence[float], total: int, capacity: Sequence[int]) -> list[int]:
    """Integers ``k_c <= capacity_c`` summing to ``total``, each as close to ``ideal_c`` as possible."""
    counts = [min(math.floor(v), cap) for v, cap in zip(ideal, capacity, strict=True)]
    order = sorted(range(len(ideal)), key=lambda c: (-(ideal[c] - math.floor(ideal[c])), c))
    missing = total - sum(counts)
    while missing > 0:
        progressed = False
        for c in order:
            if missing == 0:
                break
            if counts[c] < capacity[c]:
                counts[c] += 1
                missing -= 1
                progressed = True
        if not progressed:
            raise ValueError(f"cannot allocate {total} samples: only {sum(capacity)} available")
    return counts


def _as_output(chunks: list[Tensor], device: torch.device) -> Tensor:
    if not chunks:
        return torch.empty(0, dtype=torch.int64, device=device)
    return torch.sort(torch.cat(chunks)).values.to(device)


def label_fraction_indices(labels: Tensor, fraction: float, seed: int = 0) -> Tensor:
    """Stratified subset holding ``fraction`` of every class (semi-supervised "1 % / 10 % labels" protocols).

    Class c with n_c samples contributes ``max(1, floor(f * n_c))`` samples plus at most one more, where the
    leftover units up to the total ``max(round_half_up(f * N), #classes present)`` go to the classes with the
    largest remainders ``f * n_c - floor(f * n_c)``. Every class present gets at least one sample.

    Args:
        labels: [N] integer class ids >= 0.
        fraction: f in (0, 1]; f = 1 returns every index.
        seed: seed of the within-class random choice.

    Returns:
        LongTensor [M] of sorted indices into ``labels``.
    """
    labels = _labels_1d(labels)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    members = _class_members(labels, seed)
    sizes = [m.numel() for m in members]
    present = sum(1 for n in sizes if n > 0)
    total = max(round_half_up(fraction * sum(sizes)), present)
    base = [min(n, max(1, math.floor(fraction * n))) if n > 0 else 0 for n in sizes]
    extra = _largest_remainder(
        [max(0.0, fraction * n - b) for n, b in zip(sizes, base, strict=True)],
        max(0, total - sum(base)),
        [n - b for n, b in zip(sizes, base, strict=True)],
    )
    return _as_output([m[: b + e] for m, b, e in zip(members, base, extra, strict=True)], labels.device)


def long_tailed_counts(num_per_class_max: int, num_classes: int, imbalance_ratio: float) -> list[int]:
    """Exponential long-tail profile (Cao et al. 2019, "LDAM"; Cui et al. 2019, "class-balanced loss").

    ``n_c = round_half_up(n_max * rho ** (-c / (C - 1)))`` for c = 0 .. C-1, so n_0 = n_max and
    n_{C-1} = n_max / rho (the imbalance ratio rho = n_0 / n_{C-1}). C = 1 gives [n_max].
    """
    if isinstance(num_per_class_max, bool) or not isinstance(num_per_class_max, int) or num_per_class_max < 1:
        raise ValueError(f"num_per_class_max must be an int >= 1, got {num_per_class_max!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    if (
        not isinstance(imbalance_ratio, (int, float))
        or not math.isfinite(imbalance_ratio)
        or imbalance_ratio < 1
    ):
        raise ValueError(f"imbalance_ratio must be a finite number >= 1, got {imbalance_ratio!r}")
    if num_classes == 1:
        return [num_per_class_max]
    counts = [
        round_half_up(num_per_class_max * imbalance_ratio ** (-c / (num_classes - 1)))
        for c in range(num_classes)
    ]
    if counts[-1] < 1:
        raise ValueError(
            f"imbalance_ratio {imbalance_ratio} leaves the last class empty with num_per_class_max "
            f"{num_per_class_max}; use a ratio <= {num_per_class_max}"
        )
    return counts


def scale_profile(profile: Sequence[int], s: float) -> list[int]:
    """Scale per-class counts by ``s``, rounding half up: ``n_c' = round_half_up(s * n_c)``.

    Example (datasets.md section 8): HAM10000 6705:1113:1099:514:327:142:115 at s = 0.5 gives
    3353:557:550:257:164:71:58.
    """
    if not isinstance(s, (int, float)) or isinstance(s, bool) or not math.isfinite(s) or s <= 0:
        raise ValueError(f"scale s must be a finite number > 0, got {s!r}")
    if len(profile) == 0 or any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in profile):
        raise ValueError(f"profile must be a non-empty sequence of ints >= 0, got {list(profile)!r}")
    return [math.floor(Decimal(n) * Decimal(str(s)) + Decimal("0.5")) for n in profile]


def long_tailed_indices(
    labels: Tensor, counts: Sequence[int], seed: int = 0, exclude: Tensor | None = None
) -> Tensor:
    """Random subset with exactly ``counts[c]`` samples of class c (classes >= len(counts) are dropped).

    Args:
        labels: [N] integer class ids >= 0.
        counts: per-class sample counts (0 drops the class), e.g. from ``long_tailed_counts`` or
            ``scale_profile``.
        seed: seed of the within-class random choice.
        exclude: optional indices that may not be chosen (e.g. a long-tailed training split, when drawing a
            balanced validation set from the remaining images).

    Returns:
        LongTensor [sum(counts)] of sorted indices into ``labels``.
    """
    labels = _labels_1d(labels)
    if len(counts) == 0 or any(isinstance(k, bool) or not isinstance(k, int) or k < 0 for k in counts):
        raise ValueError(f"counts must be a non-empty sequence of ints >= 0, got {list(counts)!r}")
    eligible = labels.detach().to("cpu", torch.int64).clone()
    if exclude is not None:
        eligible[exclude.detach().to("cpu", torch.int64)] = -1
    members = _class_members(eligible, seed)
    chunks = []
    for c, k in enumerate(counts):
        have = members[c].numel() if c < len(members) else 0
        if have < k:
            raise ValueError(
                f"class {c} has only {have} eligible samples but {k} were asked; lower counts[{c}]"
            )
        chunks.append(members[c][:k])
    return _as_output(chunks, labels.device)


def stratified_split(labels: Tensor, parts: Sequence[float] | Sequence[int], seed: int = 0) -> list[Tensor]:
    """Split indices into disjoint parts with the class proportions of ``labels`` in each part.

    ``parts`` holds either fractions (floats in (0, 1], sum <= 1; part p gets ``floor(f_p * N)`` samples and,
    when the fractions sum to 1, the last part takes the rest) or sizes (ints >= 1, sum <= N). Class c's
    share of part p is allocated by largest remainder around ``n_c * size_p / N``, part after part, so every
    part has exactly its size and each class's share is within about one sample of proportional.

    Returns:
        one LongTensor of sorted indices per part.
    """
    labels = _labels_1d(labels)
    n = labels.shape[0]
    if len(parts) == 0:
        raise ValueError("parts must hold at least one fraction or size")
    if all(isinstance(p, int) and not isinstance(p, bool) for p in parts):
        sizes = [int(p) for p in parts]
        if any(p < 1 for p in sizes) or sum(sizes) > n:
            raise ValueError(f"split sizes must be >= 1 and sum to at most {n}, got {sizes}")
    elif all(isinstance(p, float) for p in parts):
        fracs = [float(p) for p in parts]
        if any(not 0 < f <= 1 for f in fracs) or sum(fracs) > 1 + 1e-9:
            raise ValueError(f"split fractions must be in (0, 1] and sum to at most 1, got {fracs}")
        sizes = [math.floor(f * n) for f in fracs]
        if abs(sum(fracs) - 1) <= 1e-9:
            sizes[-1] = n - sum(sizes[:-1])
    else:
        raise ValueError(f"parts must be all ints (sizes) or all floats (fractions), got {list(parts)!r}")
    members = _class_members(labels, seed)
    remaining = [m.numel() for m in members]
    taken = [0] * len(members)
    out = []
    for size in sizes:
        ideal = [m.numel() * size / n for m in members]
        counts = _largest_remainder(ideal, size, remaining)
        out.append(
            _as_output([m[t : t + k] for m, t, k in zip(members, taken, counts, strict=True)], labels.device)
        )
        taken = [t + k for t, k in zip(taken, counts, strict=True)]
        remaining = [r - k for r, k in zip(remaining, counts, strict=True)]
    return out
