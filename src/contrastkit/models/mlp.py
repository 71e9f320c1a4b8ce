"""A residual MLP backbone for tiny images (the digits variant of the DirectCLR reproduction: Jing, Vincent, LeCun &
Tian, ICLR 2022, "Understanding Dimensional Collapse in Contrastive Self-supervised Learning").

DirectCLR puts the loss on a slice ``r[:, :d0]`` of the representation and relies on a shared *residual* trunk to
carry that gradient to the rest of ``r``; this is the smallest such trunk. With ``x`` ``[B, C, H, W]`` flattened to
``[B, C*H*W]`` and width ``D``::

    h_0 = W_s x + b_s                                     (linear stem, [B, D])
    h_k = h_{k-1} + f_k(h_{k-1}),  k = 1 .. depth         (residual blocks, [B, D])
    f_k(h) = N_2(W_2 relu(N_1(W_1 h)))                    (N = BatchNorm1d for norm="batch", identity for "none")
    r = relu(h_depth)                                     (post-ReLU representation, [B, D], like a ResNet's)

With ``norm="none"`` the branch's linear layers carry biases (otherwise the BatchNorm's beta does). With
``zero_init_residual`` the last layer of every branch starts at zero (``N_2``'s gamma, or ``W_2`` and its bias when
there is no norm; Goyal et al. 2017 for ResNets), so every block starts as the identity and ``r = relu(h_0)``.

``num_features = D``; ``forward_features`` returns ``r`` as ``[B, D, 1, 1]`` maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from contrastkit.models.backbone import Backbone, check_image_batch, image_hw, positive_int

__all__ = ["MLP_NORMS", "ResidualBlock", "ResidualMLP", "residual_mlp"]

MLP_NORMS: tuple[str, ...] = ("batch", "none")


def _norm1d(norm: str, features: int) -> nn.Module:
    return nn.BatchNorm1d(features) if norm == "batch" else nn.Identity()


class ResidualBlock(nn.Module):
    """``h + N_2(W_2 relu(N_1(W_1 h)))`` on ``[B, width]`` (see the module docstring); no activation after the sum."""

    def __init__(self, width: int, norm: str = "batch") -> None:
        super().__init__()
        bias = norm == "none"
        self.fc1 = nn.Linear(width, width, bias=bias)
        self.norm1 = _norm1d(norm, width)
        self.fc2 = nn.Linear(width, width, bias=bias)
        self.norm2 = _norm1d(norm, width)

    def branch(self, h: Tensor) -> Tensor:
        """The residual branch ``f(h)``, ``[B, width] -> [B, width]``."""
        return self.norm2(self.fc2(self.norm1(self.fc1(h)).relu()))

    def forward(self, h: Tensor) -> Tensor:
        """``h + f(h)``, ``[B, width] -> [B, width]``."""
        return h + self.branch(h)

    def zero_last_layer(self) -> None:
        """Make the branch output 0: zero ``N_2``'s gamma (BatchNorm) or ``W_2`` and its bias (no norm)."""
        if isinstance(self.norm2, nn.BatchNorm1d):
            nn.init.zeros_(self.norm2.weight)
        else:
            nn.init.zeros_(self.fc2.weight)
            if self.fc2.bias is not None:
                nn.init.zeros_(self.fc2.bias)


class ResidualMLP(Backbone):
    """Residual MLP backbone: ``[B, in_channels, H, W] -> [B, width]`` (post-ReLU); see the module docstring.

    Args:
        in_channels: image channels.
        image_size: ``H`` (square) or ``(H, W)``; inputs must have exactly this size (the stem sees every pixel).
        width: ``D``, the width of the stem, of every block and of the representation (128 in the digits variant).
        depth: number of residual blocks (>= 1).
        norm: ``"batch"`` (BatchNorm1d in the branches) or ``"none"``.
        zero_init_residual: start every block as the identity (zero the last layer of its branch).
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int | Sequence[int],
        width: int = 128,
        depth: int = 2,
        norm: str = "batch",
        zero_init_residual: bool = False,
    ) -> None:
        height, width_px = image_hw(image_size)
        positive_int("in_channels", in_channels)
        positive_int("width", width)
        positive_int("depth", depth)
        if norm not in MLP_NORMS:
            raise ValueError(f"norm of the residual MLP must be one of {list(MLP_NORMS)}, got {norm!r}")
        kwargs: dict[str, Any] = {
            "in_channels": in_channels, "image_size": [height, width_px], "width": width, "depth": depth,
            "norm": norm, "zero_init_residual": bool(zero_init_residual),
        }  # fmt: skip
        super().__init__("residual_mlp", kwargs)
        self.in_channels = in_channels
        self.image_size: tuple[int, int] = (height, width_px)
        self.num_features = width
        self.stem = nn.Linear(in_channels * height * width_px, width)
        self.blocks = nn.ModuleList(ResidualBlock(width, norm) for _ in range(depth))
        if zero_init_residual:
            for block in self.blocks:
                block.zero_last_layer()

    def check_input(self, x: object) -> Tensor:
        """Raise a one-line ValueError unless ``x`` is ``[B, in_channels, *image_size]`` floats."""
        return check_image_batch(x, self.in_channels, self.image_size)

    def pre_activation(self, x: Tensor) -> Tensor:
        """``h_depth``, the representation before its final ReLU, ``[B, width]`` (separates dead units from
        collapsed directions: Jing et al. measure the post-ReLU ``r``)."""
        h = self.stem(self.check_input(x).flatten(1))
        for block in self.blocks:
            h = block(h)
        return h

    def forward(self, x: Tensor) -> Tensor:
        """The representation ``r = relu(h_depth)``, ``[B, width]``."""
        return self.pre_activation(x).relu()

    def forward_features(self, x: Tensor) -> Tensor:
        """``r`` as ``[B, width, 1, 1]`` maps (the backbone interface's last feature maps)."""
        return self(x)[:, :, None, None]


def residual_mlp(**kwargs: Any) -> ResidualMLP:
    """Registry constructor: ``ResidualMLP(**kwargs)``."""
    return ResidualMLP(**kwargs)
