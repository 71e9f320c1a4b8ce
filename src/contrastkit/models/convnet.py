"""The ConvNet of dataset condensation (Zhao, Mopuri & Bilen, "Dataset Condensation with Gradient Matching",
ICLR 2021; also DSA, DM, DCC), as in the experiments of Zhao et al.

``depth`` blocks of ``conv3x3(pad) -> norm -> act -> pool2``; the maps are *flattened* (not globally pooled):

* spatial size per block: ``h -> h + 2 * pad - 2`` (conv) ``-> floor(h / 2)`` (pool, unless
  ``pooling="none"``);
* ``num_features = width * h_d * w_d``, e.g. ``128 * 4 * 4 = 2048`` for 32x32 and ``128 * 3 * 3`` for 28x28
  with ``first_padding=1`` (28 -> 14 -> 7 -> 3).

Quirk of the experiments of Zhao et al. (ICLR 2021): for 1-channel inputs the first conv uses padding 3, so
28x28 becomes 28 + 6 - 2 = 32 -> 16 -> 8 -> 4 and MNIST gets ``128 * 4 * 4`` features. Pass
``first_padding=3`` to reproduce it; the default 1 follows the plain "conv3x3, pad 1" description.

Norms (the names of Zhao et al.): ``instancenorm`` = ``GroupNorm(C, C, affine=True)`` (per-sample, per-channel
``(x - mean_hw) / sqrt(var_hw + eps) * gamma_c + beta_c``), ``batchnorm`` = ``BatchNorm2d(C)``,
``layernorm`` = ``LayerNorm([C, h, w])`` (per-sample over C, h, w with elementwise affine),
``groupnorm`` = ``GroupNorm(4, C)``, ``none``. Activations: ``relu``, ``leakyrelu`` (slope 0.01), ``sigmoid``.
Pooling: ``avgpool``, ``maxpool`` (2x2, stride 2) or ``none``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from contrastkit.models.activations import ReLU
from contrastkit.models.backbone import Backbone, check_image_batch, image_hw, positive_int

CONVNET_NORMS: tuple[str, ...] = ("instancenorm", "batchnorm", "layernorm", "groupnorm", "none")
CONVNET_ACTIVATIONS: tuple[str, ...] = ("relu", "leakyrelu", "sigmoid")
CONVNET_POOLINGS: tuple[str, ...] = ("avgpool", "maxpool", "none")


def _choice(name: str, value: object, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return str(value)


def _make_norm(norm: str, channels: int, height: int, width: int) -> nn.Module:
    if norm == "instancenorm":
        return nn.GroupNorm(channels, channels, affine=True)
    if norm == "batchnorm":
        return nn.BatchNorm2d(channels, affine=True)
    if norm == "layernorm":
        return nn.LayerNorm([channels, height, width], elementwise_affine=True)
    if norm == "groupnorm":
        return nn.GroupNorm(4, channels, affine=True)
    return nn.Identity()


def _make_activation(activation: str) -> nn.Module:
    if activation == "relu":
        return ReLU()
    if activation == "leakyrelu":
        return nn.LeakyReLU(negative_slope=0.01)
    return nn.Sigmoid()


class ConvNet(Backbone):
    """DC-style ConvNet; see the module docstring for the formula of ``num_features``.

    Args:
        in_channels: image channels.
        image_size: ``H`` (square) or ``(H, W)``; inputs must have exactly this size (the flatten needs it).
        width: channels of every conv (128 in DC/DSA/DM/DCC).
        depth: number of conv blocks (3 for 28/32 px, 4 for 64 px).
        norm, activation, pooling: see the module docstring.
        num_classes: when set, a linear classifier ``num_features -> num_classes``; ``forward`` then returns
            logits ``[B, num_classes]`` and ``embed`` the features ``[B, num_features]``.
        first_padding: padding of the first conv (1; Zhao et al., ICLR 2021, use 3 for 1-channel inputs).

    ``forward_features(x) -> [B, width, h_d, w_d]``; ``embed(x) -> [B, num_features]`` (flattened maps).
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int | Sequence[int],
        width: int = 128,
        depth: int = 3,
        norm: str = "instancenorm",
        activation: str = "relu",
        pooling: str = "avgpool",
        num_classes: int | None = None,
        first_padding: int = 1,
    ) -> None:
        height, width_px = image_hw(image_size)
        positive_int("in_channels", in_channels)
        positive_int("width", width)
        positive_int("depth", depth)
        _choice("norm", norm, CONVNET_NORMS)
        _choice("activation", activation, CONVNET_ACTIVATIONS)
        _choice("pooling", pooling, CONVNET_POOLINGS)
        if norm == "groupnorm" and width % 4:
            raise ValueError(f"norm='groupnorm' uses 4 groups, so width must be a multiple of 4, got {width}")
        if num_classes is not None:
            positive_int("num_classes", num_classes)
        if not isinstance(first_padding, int) or isinstance(first_padding, bool) or first_padding < 0:
            raise ValueError(f"first_padding must be an int >= 0, got {first_padding!r}")
        super().__init__(
            "convnet",
            {
                "in_channels": in_channels,
                "image_size": [height, width_px],
                "width": width,
                "depth": depth,
                "norm": norm,
                "activation": activation,
                "pooling": pooling,
                "num_classes": num_classes,
                "first_padding": first_padding,
            },
        )
        self.in_channels = in_channels
        self.image_size: tuple[int, int] = (height, width_px)
        layers: list[nn.Module] = []
        h, w, c_in = height, width_px, in_channels
        for d in range(depth):
            pad = first_padding if d == 0 else 1
            h, w = h + 2 * pad - 2, w + 2 * pad - 2
            if h < 1 or w < 1:
                raise ValueError(f"image_size {self.image_size} is too small for depth {depth}; lower the depth")
            layers += [nn.Conv2d(c_in, width, 3, padding=pad), _make_norm(norm, width, h, w)]
            layers.append(_make_activation(activation))
            if pooling != "none":
                if h < 2 or w < 2:
                    raise ValueError(
                        f"image_size {self.image_size} is too small for {depth} pooled blocks; lower depth"
                    )
                layers.append(nn.AvgPool2d(2, 2) if pooling == "avgpool" else nn.MaxPool2d(2, 2))
                h, w = h // 2, w // 2
            c_in = width
        self.features = nn.Sequential(*layers)
        self.feature_shape: tuple[int, int, int] = (width, h, w)
        self.num_features = width * h * w
        self.classifier: nn.Linear | None = None if num_classes is None else nn.Linear(self.num_features, num_classes)

    def check_input(self, x: object) -> Tensor:
        """Raise a one-line ValueError unless ``x`` is ``[B, in_channels, *image_size]`` floats."""
        return check_image_batch(x, self.in_channels, self.image_size)

    def forward_features(self, x: Tensor) -> Tensor:
        """Last block's maps ``[B, width, h_d, w_d]``."""
        return self.features(self.check_input(x))

    def embed(self, x: Tensor) -> Tensor:
        """Flattened features ``[B, num_features]`` (the classifier's input)."""
        return self.forward_features(x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[B, num_classes]`` when a classifier is set, else the features ``[B, num_features]``."""
        feats = self.embed(x)
        return feats if self.classifier is None else self.classifier(feats)


def convnet(**kwargs: Any) -> ConvNet:
    """Registry constructor: ``ConvNet(**kwargs)``."""
    return ConvNet(**kwargs)
