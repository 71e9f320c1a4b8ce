"""Reader for the IDX format of (Fashion-)MNIST (LeCun et al., http://yann.lecun.com/exdb/mnist/).

Header: two zero bytes, a type byte (0x08 = unsigned byte), the number of dimensions d, then d big-endian
uint32 sizes; the data follow row-major. Images are ``[N, H, W]`` (d = 3, magic 0x00000803 = 2051), labels
``[N]`` (d = 1, magic 0x00000801 = 2049). Files may be gzip-compressed (``.gz``) or plain.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

__all__ = ["read_idx"]


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """The uint8 array stored in an IDX file (``.gz`` or plain) with ``ndim`` dimensions (writable copy)."""
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise ValueError(f"cannot read IDX file {path}: {err}") from err
    if len(raw) < 4 + 4 * ndim or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] != ndim:
        raise ValueError(f"{path} is not a {ndim}-D uint8 IDX file (bad header {raw[:4].hex()})")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape))
    if len(raw) - offset != expected:
        raise ValueError(
            f"{path} holds {len(raw) - offset} values but its header says {shape}; the file is damaged"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape).copy()
