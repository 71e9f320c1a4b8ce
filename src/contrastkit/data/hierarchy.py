"""Coarse label groups of a dataset's classes: the evaluation of methods that claim to learn a semantic hierarchy
(HCSC, Guo et al., CVPR 2022) scores clusterings against fine and coarse labels.

``COARSE_GROUPS[name]`` lists the coarse classes of a dataset as tuples of its fine class ids (declared once here).
Fashion-MNIST (ids 0 T-shirt/top, 1 trouser, 2 pullover, 3 dress, 4 coat, 5 sandal, 6 shirt, 7 sneaker, 8 bag,
9 ankle boot) groups into tops {0, 2, 4, 6}, bottoms {1}, dresses {3}, footwear {5, 7, 9} and bags {8}.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["COARSE_GROUPS", "COARSE_NAMES", "coarse_labels"]

COARSE_GROUPS: dict[str, tuple[tuple[int, ...], ...]] = {
    "fashion-mnist": ((0, 2, 4, 6), (1,), (3,), (5, 7, 9), (8,)),
}
COARSE_NAMES: dict[str, tuple[str, ...]] = {
    "fashion-mnist": ("tops", "bottoms", "dresses", "footwear", "bags"),
}


def coarse_labels(labels: Tensor, groups: Sequence[Sequence[int]]) -> Tensor:
    """Coarse class ids ``[N]`` (int64): ``g`` for every fine label in ``groups[g]``.

    The groups must partition the fine labels that occur: a fine label in no group, or in two, is a ValueError.
    """
    num_fine = int(labels.max()) + 1 if labels.numel() else 0
    table = torch.full((max(num_fine, 1 + max((max(g) for g in groups if g), default=-1)),), -1, dtype=torch.long)
    for coarse, members in enumerate(groups):
        for fine in members:
            if table[fine] >= 0:
                raise ValueError(f"fine class {fine} is in two coarse groups: each class belongs to one group")
            table[fine] = coarse
    out = table[labels.long()]
    if bool((out < 0).any()):
        missing = sorted(set(labels[out < 0].tolist()))
        raise ValueError(f"fine classes {missing} are in no coarse group: add them to a group")
    return out
