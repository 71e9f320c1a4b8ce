"""``load_npz``: images (and labels) stored as numpy arrays in an ``.npz`` file -> ``ImageDataset``.

Accepted image arrays (``layout`` picks the rank-4 reading; by default it is inferred):

* ``[N, H, W]``: grey, one channel;
* ``[N, H, W, C]`` channels last, C in {1, 3, 4} (``layout="NHWC"``);
* ``[N, C, H, W]`` channels first (``layout="NCHW"``).

A rank-4 array is read as channels last when its last size is 1, 3 or 4 and its second is not, and as channels
first otherwise; ``[N, 3, 4, 4]``-like shapes where both readings fit need an explicit ``layout``.
dtypes: uint8 (0..255, divided by 255), bool (0 / 1) or float with values in [0, 1]; anything else is refused
rather than guessed. The file is read with ``allow_pickle=False``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from contrastkit.data.dataset import ImageDataset
from contrastkit.errors import BadInputError

__all__ = ["load_npz"]

_CHANNEL_SIZES = (1, 3, 4)


def _to_nchw(x: np.ndarray, layout: str | None, path: Path) -> np.ndarray:
    if x.ndim == 3:
        return x[:, None]
    if x.ndim != 4:
        raise ValueError(f"images in {path} must be [N, H, W], [N, H, W, C] or [N, C, H, W], got shape {x.shape}")
    if layout is None:
        last, second = x.shape[3] in _CHANNEL_SIZES, x.shape[1] in _CHANNEL_SIZES
        if last and second:
            raise ValueError(f"images in {path} of shape {x.shape} could be NHWC or NCHW; pass layout='NHWC' or 'NCHW'")
        layout = "NHWC" if last else "NCHW"
    if layout == "NHWC":
        if x.shape[3] not in _CHANNEL_SIZES:
            raise ValueError(f"channels-last images in {path} need C in {_CHANNEL_SIZES}, got shape {x.shape}")
        return np.moveaxis(x, 3, 1)
    if layout != "NCHW":
        raise ValueError(f"layout must be None, 'NHWC' or 'NCHW', got {layout!r}")
    return x


def _to_unit_float(x: np.ndarray, path: Path) -> torch.Tensor:
    if x.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(x)).to(torch.float32).div_(255.0)
    if x.dtype == np.bool_:
        return torch.from_numpy(np.ascontiguousarray(x)).to(torch.float32)
    if np.issubdtype(x.dtype, np.floating):
        images = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if images.numel() and not torch.isfinite(images).all():
            raise ValueError(f"images in {path} contain NaN or Inf")
        if images.numel() and (float(images.min()) < 0 or float(images.max()) > 1):
            lo, hi = float(images.min()), float(images.max())
            raise ValueError(f"float images in {path} must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]; rescale them")
        return images
    raise ValueError(f"images in {path} must be uint8 (0-255) or float in [0, 1], got dtype {x.dtype}")


_SAVE_HINT = "save the arrays with numpy.savez(path, images=..., labels=...)"


def _check_npz_magic(path: Path) -> None:
    """Name what the file is when it is not an .npz (zip) or .npy file, from its first bytes: numpy would try to
    unpickle anything else and report "pickled data", even for a text file."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as err:
        raise ValueError(f"cannot read {path}: {err.strerror or err}") from err
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):
        return
    if not head:
        raise ValueError(f"{path} is empty, not an .npz archive: {_SAVE_HINT}")
    if head[:1] == b"\x80" and 2 <= head[1] <= 5:
        raise ValueError(
            f"{path} holds pickled Python objects, not an .npz archive; contrastkit never unpickles (it can run "
            f"code): {_SAVE_HINT}"
        )
    raise ValueError(f"{path} is not an .npz archive (it starts with {head!r}): {_SAVE_HINT}")


def _memory_bytes() -> int | None:
    """This machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def _check_fits_in_memory(archive: np.lib.npyio.NpzFile, key: str, path: Path, per_value: int) -> None:
    """Refuse, before anything is decompressed, an array whose header declares more values (``per_value`` bytes
    each once converted) than this machine's memory holds (a compressed .npz of a few MB can declare terabytes)."""
    try:
        with archive.zip.open(f"{key}.npy") as member:
            major, _ = np.lib.format.read_magic(member)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape = read_header(member)[0]  # (shape, fortran_order, dtype)
    except Exception:  # noqa: BLE001 - an unreadable header is reported by the read below, in its own words
        return
    need = per_value * math.prod(int(n) for n in shape)
    memory = _memory_bytes()
    if memory is not None and need > memory:
        raise BadInputError(
            f"array {key!r} in {path} declares shape {tuple(shape)}: {need / 2**30:.1f} GiB once read, more than this "
            f"machine's {memory / 2**30:.1f} GiB of memory; split the file or lower its resolution"
        )


def _class_ids(y: np.ndarray) -> tuple[torch.Tensor, list[str]]:
    """Labels without class names: ids ``0..K-1`` named ``"0".."K-1"`` when ``K = max + 1 <= N`` (a label value
    never allocates more than the file's own size), else the distinct labels remapped to ``0..U-1`` in increasing
    order, each named by its original id (so the names still match those of another file)."""
    if not y.size:
        return torch.zeros(0, dtype=torch.int64), []
    top = int(y.max())
    if top < y.shape[0]:
        return torch.from_numpy(y.astype(np.int64)), [str(k) for k in range(top + 1)]
    distinct, remapped = np.unique(y, return_inverse=True)
    return torch.from_numpy(remapped.astype(np.int64).reshape(-1)), [str(int(v)) for v in distinct.tolist()]


def load_npz(
    path: str | Path,
    images_key: str = "images",
    labels_key: str | None = "labels",
    classes: Sequence[str] | None = None,
    layout: str | None = None,
    name: str | None = None,
) -> ImageDataset:
    """Read ``images_key`` (and ``labels_key``, None for an unlabelled set) from the ``.npz`` file ``path``.

    Args:
        classes: class names; default the ``classes`` array of the file when present, else "0" .. "K-1" with
            K = max label + 1 when K <= N, else the distinct labels remapped to 0..U-1 and named by their ids
            (labels are bounded by the class count: a huge label value cannot make the loader allocate).
        layout: None (infer), "NHWC" or "NCHW" for rank-4 images.
        name: dataset name; default the file stem.

    Returns:
        ``ImageDataset`` with float32 images [N, C, H, W] in [0, 1] and int64 labels [N] (or None).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"npz file {path} does not exist")
    _check_npz_magic(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read {path} as .npz: {' '.join(str(err).split())}") from err
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} is a single .npy array, not an .npz archive; save with np.savez(images=..., ...)")
    with archive:
        present = sorted(archive.files)
        for key in (images_key, labels_key):
            if key is not None and key not in archive.files:
                unlabelled = " (unlabelled images: --set data.labelled=false, labels_key=None in Python)"
                raise ValueError(
                    f"{path} has no array {key!r}; it holds {present}{unlabelled if key == labels_key else ''}"
                )
        _check_fits_in_memory(archive, images_key, path, per_value=4)  # float32
        if labels_key is not None:
            _check_fits_in_memory(archive, labels_key, path, per_value=8)  # int64
        try:
            x = archive[images_key]
            y = archive[labels_key] if labels_key is not None else None
            file_classes = archive["classes"] if classes is None and "classes" in archive.files else None
        except ValueError as err:  # object arrays need pickle, which is refused
            raise ValueError(f"cannot read arrays from {path}: {' '.join(str(err).split())}") from err
    images = _to_unit_float(_to_nchw(x, layout, path), path)
    labels = None
    if y is not None:
        if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
            raise ValueError(f"labels in {path} must be a 1-D integer array, got shape {y.shape} dtype {y.dtype}")
        if y.shape[0] != images.shape[0]:
            raise ValueError(f"{path} has {images.shape[0]} images but {y.shape[0]} labels; they must match")
        if y.size and int(y.min()) < 0:
            raise ValueError(f"labels in {path} must be class ids >= 0, got minimum {int(y.min())}")
        if classes is None and file_classes is not None:
            classes = [str(c) for c in file_classes.tolist()]
        if classes is not None:
            if y.size and int(y.max()) >= len(classes):
                raise BadInputError(
                    f"labels in {path} go up to {int(y.max())} but only {len(classes)} classes are named: "
                    f"number the classes 0..{len(classes) - 1} or extend the classes array"
                )
            labels = torch.from_numpy(y.astype(np.int64))
        else:
            labels, classes = _class_ids(y)
    names = [str(c) for c in classes] if classes is not None and labels is not None else []
    return ImageDataset(images, labels, names, name or path.stem)
