"""Issue 18 item 1: a value inside a user's .npz file cannot make the loader allocate in proportion to it."""

from __future__ import annotations

import io
import resource
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from contrastkit.data import load_npz
from contrastkit.errors import BadInputError


def _fake_npz(path: Path, shape: tuple[int, ...]) -> Path:
    """An .npz whose ``images`` header declares ``shape`` (uint8) but holds no data: a decompression bomb's
    header without the bomb."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": shape})
    labels = io.BytesIO()
    np.save(labels, np.zeros(shape[0] if shape[0] < 100 else 3, np.int64))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("images.npy", header.getvalue())
        archive.writestr("labels.npy", labels.getvalue())
    return path


def test_a_huge_label_is_remapped_not_allocated(tmp_path: Path) -> None:
    labels = np.array([0, 1_000_000_000, 5, 5, 0, 2**62], dtype=np.int64)
    np.savez(tmp_path / "sparse.npz", images=np.zeros((6, 4, 4), np.uint8), labels=labels)
    ds = load_npz(tmp_path / "sparse.npz")
    assert ds.classes == ["0", "5", "1000000000", str(2**62)]
    assert ds.labels.tolist() == [0, 2, 1, 1, 0, 3]


def test_dense_labels_keep_their_ids(tmp_path: Path) -> None:
    np.savez(tmp_path / "dense.npz", images=np.zeros((4, 4, 4), np.uint8), labels=np.array([3, 0, 3, 1]))
    ds = load_npz(tmp_path / "dense.npz")
    assert ds.classes == ["0", "1", "2", "3"] and ds.labels.tolist() == [3, 0, 3, 1]


def test_labels_beyond_the_named_classes_are_one_line(tmp_path: Path) -> None:
    np.savez(
        tmp_path / "named.npz",
        images=np.zeros((3, 4, 4), np.uint8),
        labels=np.array([0, 1, 7]),
        classes=np.array(["cat", "dog"]),
    )
    with pytest.raises(BadInputError, match=r"go up to 7 but only 2 classes are named") as err:
        load_npz(tmp_path / "named.npz")
    assert "\n" not in str(err.value)


def test_a_header_declaring_terabytes_is_refused_before_reading(tmp_path: Path) -> None:
    path = _fake_npz(tmp_path / "bomb.npz", (10**7, 1000, 1000))
    with pytest.raises(BadInputError, match=r"declares shape \(10000000, 1000, 1000\).*more than this machine"):
        load_npz(path)


def test_huge_label_costs_little_memory(tmp_path: Path) -> None:
    """The reported case, in a child process: a label of 1e9 drove the loader to 18 GB. Under a 3 GiB address
    space limit the load must succeed (the old code needed ~60 GB for a billion class names)."""
    np.savez(tmp_path / "one.npz", images=np.zeros((8, 4, 4), np.uint8), labels=np.array([0] * 7 + [10**9]))
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30));"
        "from contrastkit.data import load_npz; ds = load_npz(sys.argv[1]); print(len(ds.classes))"
    )
    assert resource.getrlimit(resource.RLIMIT_AS) is not None
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "one.npz")], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "2"
