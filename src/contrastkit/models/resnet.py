"""ResNet-18/34/50 backbones without fc (He et al., "Deep Residual Learning for Image Recognition", CVPR'16).

Layout (ResNet "v1.5": the stride of a Bottleneck sits on its 3x3 conv), with a width multiplier:

* channels of a stage with nominal ``c`` channels: ``max(8, round(c * width))`` for ``c`` in 64/128/256/512;
* stem: 7x7/2 conv -> norm -> ReLU -> 3x3/2 max-pool (ImageNet), or ``small_stem=True``: 3x3/1 conv -> norm ->
  ReLU, no max-pool (the CIFAR / 28x28 stem of SimCLR, Chen et al., ICML 2020, for small images);
* stages: ``layers`` blocks each, strides 1, 2, 2, 2 (a stride may become a dilation: DeepLab's OS16/OS8);
* ``forward_stages(x)`` returns the 4 stage outputs ``[B, C_i, H/s_i, W/s_i]`` (``s = stage_strides``),
  ``forward_features(x)`` the last one ``[B, C_4, h, w]``, ``forward(x)`` its global average pool ``[B, C_4]``
  with ``C_4 = num_features = round(512 * width) * expansion`` (512 for ResNet-18/34, 2048 for ResNet-50).

At width 1 with the standard stem the parameter counts equal those of the ImageNet ResNets of He et al. minus
the fc layer (11,176,512 for ResNet-18, 23,508,032 for ResNet-50).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from contrastkit._checks import check_positive
from contrastkit.models.backbone import Backbone
from contrastkit.models.batch_norm import norm_act
from contrastkit.models.norm import check_norm_kind, make_norm2d

STAGE_BASE_CHANNELS: tuple[int, ...] = (64, 128, 256, 512)


def scaled_channels(base: int, width: float) -> int:
    """``max(8, round(base * width))``: the channel count of a layer with nominal ``base`` channels."""
    return max(8, int(round(base * width)))


class BasicBlock(nn.Module):
    """Two 3x3 convs: ``y = relu(x_skip + norm(conv(relu(norm(conv(x))))))``; output channels ``planes``."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, dilation: int = 1, norm: str = "batch") -> None:
        super().__init__()
        bias = norm == "none"
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=bias)
        self.bn1 = make_norm2d(norm, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, padding=dilation, dilation=dilation, bias=bias)
        self.bn2 = make_norm2d(norm, planes)
        self.downsample = _shortcut(in_planes, planes, stride, norm)

    def last_layers(self) -> tuple[nn.Conv2d, nn.Module]:
        """The last conv and norm of the residual branch (zeroed by ``zero_init_residual``)."""
        return self.conv2, self.bn2

    def forward(self, x: Tensor) -> Tensor:
        """``[B, in_planes, H, W] -> [B, planes, H/stride, W/stride]``."""
        identity = x if self.downsample is None else self.downsample(x)
        out = norm_act(self.bn1, self.conv1(x))
        return norm_act(self.bn2, self.conv2(out), residual=identity)


class Bottleneck(nn.Module):
    """1x1 (reduce) -> 3x3 (stride, dilation) -> 1x1 (expand x4), each followed by norm, plus the shortcut."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1, dilation: int = 1, norm: str = "batch") -> None:
        super().__init__()
        bias = norm == "none"
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=bias)
        self.bn1 = make_norm2d(norm, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=bias)
        self.bn2 = make_norm2d(norm, planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=bias)
        self.bn3 = make_norm2d(norm, out_planes)
        self.downsample = _shortcut(in_planes, out_planes, stride, norm)

    def last_layers(self) -> tuple[nn.Conv2d, nn.Module]:
        """The last conv and norm of the residual branch (zeroed by ``zero_init_residual``)."""
        return self.conv3, self.bn3

    def forward(self, x: Tensor) -> Tensor:
        """``[B, in_planes, H, W] -> [B, 4 * planes, H/stride, W/stride]``."""
        identity = x if self.downsample is None else self.downsample(x)
        out = norm_act(self.bn1, self.conv1(x))
        out = norm_act(self.bn2, self.conv2(out))
        return norm_act(self.bn3, self.conv3(out), residual=identity)


def _shortcut(in_planes: int, out_planes: int, stride: int, norm: str) -> nn.Module | None:
    """1x1 strided conv + norm when the shape changes, else ``None`` (identity shortcut)."""
    if stride == 1 and in_planes == out_planes:
        return None
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, 1, stride, bias=norm == "none"), make_norm2d(norm, out_planes)
    )


BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}
PRESETS: dict[str, tuple[str, tuple[int, ...]]] = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
}


class ResNet(Backbone):
    """ResNet backbone without the classifier; see the module docstring for shapes.

    Args:
        block: ``"basic"`` (ResNet-18/34) or ``"bottleneck"`` (ResNet-50).
        layers: blocks per stage, 4 positive ints (``[2, 2, 2, 2]`` for ResNet-18).
        width: channel multiplier (> 0) applied to every conv.
        in_channels: image channels (1 for MNIST-like data).
        small_stem: 3x3 stride-1 stem conv without max-pool (keeps the input resolution in the stem).
        zero_init_residual: zero the last norm's ``gamma`` of every block (Goyal et al. 2017), so each block
            starts as the identity; with ``norm="none"`` the last conv of the branch is zeroed instead.
        norm: ``"batch" | "group" | "none"`` (``models.norm``).
        replace_stride_with_dilation: for stages 2-4, replace the stride 2 by a dilation (output stride 16/8).
        name: the registry name stored in ``config``: ``"resnet"`` (generic; block and layers are stored too)
            or a ``PRESETS`` key whose block/layers must match (set by ``resnet18`` & co.).
    """

    def __init__(
        self,
        block: str,
        layers: Sequence[int],
        *,
        width: float = 1.0,
        in_channels: int = 3,
        small_stem: bool = False,
        zero_init_residual: bool = False,
        norm: str = "batch",
        replace_stride_with_dilation: Sequence[bool] = (False, False, False),
        name: str = "resnet",
    ) -> None:
        if block not in BLOCKS:
            raise ValueError(f"block must be one of {list(BLOCKS)}, got {block!r}")
        if len(layers) != 4 or any(not isinstance(n, int) or n < 1 for n in layers):
            raise ValueError(f"layers must be 4 positive ints (blocks per stage), got {list(layers)!r}")
        check_positive("width", width)
        if not isinstance(in_channels, int) or isinstance(in_channels, bool) or in_channels < 1:
            raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")
        norm = check_norm_kind(norm)
        dilate = [bool(d) for d in replace_stride_with_dilation]
        if len(dilate) != 3:
            raise ValueError(f"replace_stride_with_dilation needs 3 booleans (stages 2-4), got {dilate!r}")
        kwargs: dict[str, Any] = {
            "width": float(width),
            "in_channels": in_channels,
            "small_stem": bool(small_stem),
            "zero_init_residual": bool(zero_init_residual),
            "norm": norm,
            "replace_stride_with_dilation": dilate,
        }
        if name != "resnet" and (name not in PRESETS or PRESETS[name] != (block, tuple(layers))):
            known = list(PRESETS)
            raise ValueError(f"name must be 'resnet' or one of {known} with its block/layers, got {name!r}")
        if name == "resnet":
            kwargs = {"block": block, "layers": list(layers), **kwargs}
        super().__init__(name, kwargs)

        block_cls = BLOCKS[block]
        self.in_channels = in_channels
        self.norm_kind = norm
        stem_out = scaled_channels(64, width)
        if small_stem:
            self.conv1 = nn.Conv2d(in_channels, stem_out, 3, 1, 1, bias=norm == "none")
            self.maxpool: nn.Module = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_channels, stem_out, 7, 2, 3, bias=norm == "none")
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.bn1 = make_norm2d(norm, stem_out)

        in_planes, dilation, stride_so_far = stem_out, 1, 1 if small_stem else 4
        stages, channels, strides = [], [], []
        for i, (base, n_blocks) in enumerate(zip(STAGE_BASE_CHANNELS, layers, strict=True)):
            planes = scaled_channels(base, width)
            stride = 1 if i == 0 else 2
            prev_dilation = dilation
            if i > 0 and dilate[i - 1]:
                dilation, stride = dilation * stride, 1
            blocks = [block_cls(in_planes, planes, stride, prev_dilation, norm)]
            in_planes = planes * block_cls.expansion
            blocks += [block_cls(in_planes, planes, 1, dilation, norm) for _ in range(n_blocks - 1)]
            stages.append(nn.Sequential(*blocks))
            stride_so_far *= stride
            channels.append(in_planes)
            strides.append(stride_so_far)
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.stage_channels: tuple[int, ...] = tuple(channels)
        self.stage_strides: tuple[int, ...] = tuple(strides)
        self.num_features = in_planes
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        """He (fan-out) init for convs, gamma 1 / beta 0 for norms, zero conv biases; zero-init residual."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    conv, norm = m.last_layers()
                    nn.init.zeros_(norm.weight if isinstance(norm, (nn.BatchNorm2d, nn.GroupNorm)) else conv.weight)

    def forward_stages(self, x: Tensor) -> list[Tensor]:
        """The 4 stage outputs ``[B, stage_channels[i], H / stage_strides[i], W / stage_strides[i]]``."""
        x = self.check_input(x)
        x = self.maxpool(norm_act(self.bn1, self.conv1(x)))
        outs = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            outs.append(x)
        return outs

    def forward_features(self, x: Tensor) -> Tensor:
        """Last-stage maps ``[B, num_features, H / s, W / s]`` with ``s = stage_strides[-1]``."""
        return self.forward_stages(x)[-1]

    def forward(self, x: Tensor) -> Tensor:
        """Global-average-pooled representation ``[B, num_features]``."""
        return torch.flatten(self.forward_features(x).mean(dim=(2, 3)), 1)


def resnet18(**kwargs: Any) -> ResNet:
    """ResNet-18 (BasicBlock, [2, 2, 2, 2]); ``num_features = round(512 * width)``. kwargs: see ``ResNet``."""
    return ResNet(*PRESETS["resnet18"], name="resnet18", **kwargs)


def resnet34(**kwargs: Any) -> ResNet:
    """ResNet-34 (BasicBlock, [3, 4, 6, 3]); ``num_features = round(512 * width)``. kwargs: see ``ResNet``."""
    return ResNet(*PRESETS["resnet34"], name="resnet34", **kwargs)


def resnet50(**kwargs: Any) -> ResNet:
    """ResNet-50 (Bottleneck, [3, 4, 6, 3]); ``num_features = 4 * round(512 * width)``; kwargs: ``ResNet``."""
    return ResNet(*PRESETS["resnet50"], name="resnet50", **kwargs)
