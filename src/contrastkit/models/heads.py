"""Projection, prediction and classification heads: ``[B, in_dim] -> [B, out_dim]``.

``ProjectionHead(blocks)`` is a generic MLP builder: each block
``(in_dim, out_dim, norm | None, activation | None)`` becomes
``Linear(in, out, bias=norm is None) -> norm -> act`` (a bias before BatchNorm is redundant, BN's beta
replaces it). The named heads are presets of it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from contrastkit.models.activations import ReLU

Block = tuple[int, int, "nn.Module | None", "nn.Module | None"]


def _positive_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


class ProjectionHead(nn.Module):
    """MLP from blocks ``(in_dim, out_dim, norm, activation)``; blocks must chain (``out_i == in_{i+1}``).

    ``forward(x: [B, blocks[0].in_dim]) -> [B, blocks[-1].out_dim]``. BatchNorm in train mode needs B >= 2.
    """

    def __init__(self, blocks: Sequence[Block]) -> None:
        super().__init__()
        if len(blocks) == 0:
            raise ValueError("ProjectionHead needs at least one block (in_dim, out_dim, norm, activation)")
        layers: list[nn.Module] = []
        prev_out: int | None = None
        for i, (d_in, d_out, norm, act) in enumerate(blocks):
            _positive_int(f"blocks[{i}] in_dim", d_in)
            _positive_int(f"blocks[{i}] out_dim", d_out)
            if prev_out is not None and d_in != prev_out:
                raise ValueError(f"blocks[{i}] has in_dim {d_in} but the previous block outputs {prev_out}")
            layers.append(nn.Linear(d_in, d_out, bias=norm is None))
            if norm is not None:
                layers.append(norm)
            if act is not None:
                layers.append(act)
            prev_out = d_out
        self.in_dim: int = int(blocks[0][0])
        self.out_dim: int = int(blocks[-1][1])
        self.layers = nn.Sequential(*layers)
        self._has_batch_norm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in layers)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, in_dim] -> [B, out_dim]``."""
        if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != self.in_dim or not x.is_floating_point():
            got = f"shape {tuple(x.shape)} dtype {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"expected [B, {self.in_dim}] float features for this head, got {got}")
        if self._has_batch_norm and self.training and x.shape[0] < 2:
            raise ValueError(f"a head with BatchNorm in train mode needs a batch of >= 2 rows, got {x.shape[0]}")
        return self.layers(x)


class SimCLRProjectionHead(ProjectionHead):
    """SimCLR projector g (Chen et al., ICML 2020; v2: NeurIPS 2020): ``num_layers`` linear layers,
    ``z = W_L relu(BN(W_{L-1} ... relu(BN(W_1 h))))``.

    Hidden layers get BatchNorm when ``batch_norm``; the output layer gets one only when ``output_batch_norm``
    (SimCLR v2, Chen et al. NeurIPS 2020, batch-normalises the output too). ``[B, in_dim] -> [B, out_dim]``.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int = 2048,
        out_dim: int = 128,
        num_layers: int = 2,
        batch_norm: bool = True,
        output_batch_norm: bool = False,
    ) -> None:
        _positive_int("num_layers", num_layers)
        if num_layers == 1:
            blocks: list[Block] = []
            last_in = in_dim
        else:
            blocks = [(in_dim, hidden_dim, nn.BatchNorm1d(hidden_dim) if batch_norm else None, ReLU())]
            blocks += [
                (hidden_dim, hidden_dim, nn.BatchNorm1d(hidden_dim) if batch_norm else None, ReLU())
                for _ in range(num_layers - 2)
            ]
            last_in = hidden_dim
        blocks.append((last_in, out_dim, nn.BatchNorm1d(out_dim) if output_batch_norm else None, None))
        super().__init__(blocks)


class MoCoV2ProjectionHead(ProjectionHead):
    """MoCo v2 projector (Chen et al., arXiv 2003.04297): ``z = W_2 relu(W_1 h + b_1) + b_2``, no BatchNorm.

    ``[B, in_dim] -> [B, out_dim]`` (2048 -> 2048 -> 128 for ResNet-50).
    """

    def __init__(self, in_dim: int, hidden_dim: int = 2048, out_dim: int = 128) -> None:
        super().__init__([(in_dim, hidden_dim, None, ReLU()), (hidden_dim, out_dim, None, None)])


class PredictionHead(ProjectionHead):
    """BYOL / SimSiam predictor q (Grill et al., NeurIPS 2020; Chen & He, CVPR 2021):
    ``p = W_2 relu(BN(W_1 z)) + b_2``. ``[B, in_dim] -> [B, out_dim]`` (BYOL 256 -> 4096 -> 256, SimSiam
    2048 -> 512 -> 2048).
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__(
            [(in_dim, hidden_dim, nn.BatchNorm1d(hidden_dim), ReLU()), (hidden_dim, out_dim, None, None)]
        )


class LinearClassifier(nn.Module):
    """Linear probe ``logits = W h + b``: ``[B, in_dim] -> [B, num_classes]``.

    Init ``W ~ N(0, 0.01^2)``, ``b = 0`` (the usual linear-evaluation init). ``stop_gradient=True`` detaches
    the input (an online probe trained alongside pre-training without sending gradient into the backbone).
    """

    def __init__(self, in_dim: int, num_classes: int, stop_gradient: bool = False) -> None:
        super().__init__()
        self.in_dim = _positive_int("in_dim", in_dim)
        self.out_dim = _positive_int("num_classes", num_classes)
        self.stop_gradient = bool(stop_gradient)
        self.linear = nn.Linear(in_dim, num_classes)
        with torch.no_grad():
            nn.init.normal_(self.linear.weight, std=0.01)
            nn.init.zeros_(self.linear.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, in_dim] -> [B, num_classes]``."""
        if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != self.in_dim or not x.is_floating_point():
            got = f"shape {tuple(x.shape)} dtype {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"expected [B, {self.in_dim}] float features for this classifier, got {got}")
        return self.linear(x.detach() if self.stop_gradient else x)
