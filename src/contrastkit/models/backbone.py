"""The interface every contrastkit backbone follows, and the cheap input check run at ``forward``.

A backbone maps a batch of images ``x: [B, C_in, H, W]`` to

* ``forward(x) -> [B, num_features]``: the representation that heads and evaluation protocols consume;
* ``forward_features(x) -> [B, C, h, w]``: the last feature maps (before pooling), for dense/pixel methods.

``config`` is a JSON-serialisable ``{"name": ..., "kwargs": {...}}`` dict;
``models.registry.backbone_from_config`` rebuilds the same architecture from it, so a checkpoint only needs
``config`` + ``state_dict``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn


def jsonable(value: Any) -> Any:
    """Turn tuples into lists recursively, so a config survives ``json.dumps`` / ``json.loads`` unchanged."""
    if isinstance(value, (tuple, list)):
        return [jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"config values must be JSON-serialisable (bool/int/float/str/list/dict), got {value!r}")


def positive_int(name: str, value: object) -> int:
    """``value`` when it is an int >= 1 (not a bool); ValueError naming ``name`` otherwise."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def image_hw(image_size: int | Sequence[int]) -> tuple[int, int]:
    """``(height, width)`` of an ``image_size`` given as one int (square) or ``(H, W)``, each a positive int."""
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2:
        raise ValueError(f"image_size must be an int or (H, W), got {image_size!r}")
    height, width = (positive_int("image_size", s) for s in size)
    return height, width


def check_image_batch(x: object, in_channels: int, image_size: tuple[int, int] | None = None) -> Tensor:
    """Shape-only check of a float image batch ``[B, in_channels, H, W]`` (and ``(H, W) == image_size``).

    Reads only metadata (no device synchronisation), so it is safe to call at every ``forward``.
    """
    if isinstance(x, Tensor):
        ok = x.ndim == 4 and x.shape[1] == in_channels and x.is_floating_point()
        if ok and image_size is not None:
            ok = (x.shape[2], x.shape[3]) == tuple(image_size)
        if ok:
            return x
        got = f"shape {tuple(x.shape)} dtype {x.dtype}"
    else:
        got = f"a {type(x).__name__}"
    hw = "H, W" if image_size is None else f"{image_size[0]}, {image_size[1]}"
    size = "" if image_size is None else f" and image_size={tuple(image_size)}"
    raise ValueError(f"expected [B, {in_channels}, {hw}] float images for in_channels={in_channels}{size}, got {got}")


class Backbone(nn.Module):
    """Base class: stores ``in_channels``, ``num_features`` and the rebuild ``config``.

    Subclasses implement ``forward_features`` and ``forward``; they call ``check_input`` first.
    """

    in_channels: int
    num_features: int

    def __init__(self, name: str, kwargs: Mapping[str, Any]) -> None:
        super().__init__()
        self._config: dict[str, Any] = {"name": name, "kwargs": jsonable(dict(kwargs))}

    @property
    def config(self) -> dict[str, Any]:
        """``{"name": str, "kwargs": dict}``; ``backbone_from_config(config)`` rebuilds this architecture."""
        return copy.deepcopy(self._config)

    def check_input(self, x: object) -> Tensor:
        """Raise a one-line ValueError unless ``x`` is a float ``[B, in_channels, H, W]`` tensor."""
        return check_image_batch(x, self.in_channels)

    def forward_features(self, x: Tensor) -> Tensor:  # pragma: no cover - interface
        """Last feature maps ``[B, C, h, w]``."""
        raise NotImplementedError
