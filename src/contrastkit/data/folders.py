"""``ImageFolder``: read a folder of image files into an in-memory ``ImageDataset``.

Layouts:

* labelled (``labelled=True``): ``root/<class name>/**/<image>``, one sub-folder per class; class k is the
  k-th sub-folder name in sorted order (files directly in ``root`` are ignored);
* unlabelled (``labelled=False``): every image under ``root`` at any depth; ``labels`` is None.

Files ``.png .jpg .jpeg .bmp .tif .tiff`` (any case) are read with Pillow, imported only when needed; hidden
files and folders (".name") are skipped; files are visited in sorted path order. Pixel values are mapped to
[0, 1]: 8-bit modes / 255, 16-bit ("I;16*", "I") / 65535, float ("F") clipped to [0, 1].

Channels: grey modes (1, L, LA, I, F) give 1 channel, every other mode RGB (alpha dropped). ``channels=None``
keeps 1 channel when every image is grey and otherwise converts to 3; ``channels=1`` converts RGB to luma
``Y = 0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601, Pillow's "L"), ``channels=3`` repeats a grey channel.
``image_size`` (int or (H, W)) resizes every image with antialiased bilinear interpolation; without it all
images must have the same size.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from contrastkit.data.dataset import ImageDataset

__all__ = ["IMAGE_EXTENSIONS", "ImageFolder"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_GREY_MODES = {"1", "L", "LA", "I", "F"}
_LUMA = (0.299, 0.587, 0.114)


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("ImageFolder needs Pillow to read image files: `pip install pillow`") from None
    return Image


def _image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` at any depth, sorted, hidden files and folders skipped."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _read_image(path: Path, image_module: Any) -> Tensor:
    """One image file -> float32 [C, H, W] in [0, 1], C = 1 (grey modes) or 3."""
    try:
        with image_module.open(path) as im:
            im.load()
            mode = im.mode
            if mode.startswith("I;16") or mode == "I":
                arr = np.asarray(im, dtype=np.float64) / 65535.0
            elif mode == "F":
                arr = np.asarray(im, dtype=np.float64)
            elif mode in _GREY_MODES:
                arr = np.asarray(im.convert("L"), dtype=np.float64) / 255.0
            else:
                arr = np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
    except (OSError, SyntaxError, ValueError, struct.error, image_module.DecompressionBombError) as err:
        reason = " ".join(str(err).split())
        raise ValueError(f"cannot read image {path}: {reason or type(err).__name__}") from err
    arr = np.clip(np.nan_to_num(arr), 0.0, 1.0).astype(np.float32)
    tensor = torch.from_numpy(arr)
    return tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()


def _convert_channels(x: Tensor, channels: int) -> Tensor:
    if x.shape[0] == channels:
        return x
    if channels == 3:
        return x.expand(3, -1, -1).clone()
    weights = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x * weights).sum(0, keepdim=True).clamp_(0.0, 1.0)


def _size_pair(image_size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if image_size is None:
        return None
    pair = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in pair):
        raise ValueError(f"image_size must be an int >= 1 or a pair (H, W) of them, got {image_size!r}")
    return pair  # type: ignore[return-value]


def ImageFolder(  # noqa: N802 - named like a dataset class, returns a plain ImageDataset
    root: str | Path,
    labelled: bool = True,
    image_size: int | tuple[int, int] | None = None,
    channels: int | None = None,
) -> ImageDataset:
    """Read the images under ``root`` (layouts in the module docstring) into an ``ImageDataset``.

    Returns:
        ``ImageDataset`` with images float32 [N, C, H, W] in [0, 1]; labels int64 [N] and ``classes`` = the
        sorted sub-folder names when ``labelled``, else labels None and no classes.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ValueError(f"image folder {root} does not exist or is not a folder")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be None, 1 (grey) or 3 (RGB), got {channels!r}")
    size = _size_pair(image_size)
    exts = "/".join(IMAGE_EXTENSIONS)
    if labelled:
        classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not classes:
            raise ValueError(
                f"{root} has no class sub-folders: put each class's images in a sub-folder named after the class, "
                "or read them without labels with --set data.labelled=false (ImageFolder(labelled=False) in Python)"
            )
        files: list[Path] = []
        labels: list[int] = []
        for k, name in enumerate(classes):
            found = _image_files(root / name)
            if not found:
                raise ValueError(f"class folder {root / name} holds no image files ({exts}); remove it or add images")
            files += found
            labels += [k] * len(found)
    else:
        classes, files = [], _image_files(root)
        if not files:
            raise ValueError(f"{root} holds no image files ({exts}) at any depth")
    image_module = _pillow()
    images = [_read_image(path, image_module) for path in files]
    target_channels = channels or (1 if all(x.shape[0] == 1 for x in images) else 3)
    images = [_convert_channels(x, target_channels) for x in images]
    if size is not None:
        images = [
            x
            if tuple(x.shape[1:]) == size
            else F.interpolate(x[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0].clamp_(0, 1)
            for x in images
        ]
    else:
        first = tuple(images[0].shape[1:])
        for path, x in zip(files, images, strict=True):
            if tuple(x.shape[1:]) != first:
                raise ValueError(
                    f"images differ in size: {first} for {files[0].name} but {tuple(x.shape[1:])} for "
                    f"{path}: resize them all to N x N with --set data.image_size=N (e.g. {first[0]}) "
                    "(ImageFolder(image_size=(H, W)) in Python)"
                )
    label_tensor = torch.tensor(labels, dtype=torch.int64) if labelled else None
    return ImageDataset(torch.stack(images), label_tensor, classes, root.name)
