"""load_npz: the three layouts, uint8 / float scaling and the error messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from contrastkit.data import load_npz


def _save(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def test_nhw_uint8(tmp_path: Path) -> None:
    x = np.random.default_rng(0).integers(0, 256, (5, 3, 4), dtype=np.uint8)
    ds = load_npz(_save(tmp_path / "set.npz", images=x, labels=np.array([0, 2, 1, 2, 0])))
    assert ds.images.shape == (5, 1, 3, 4) and ds.name == "set"
    assert torch.equal(ds.images[:, 0], torch.from_numpy(x).float() / 255)
    assert ds.labels.tolist() == [0, 2, 1, 2, 0] and ds.classes == ["0", "1", "2"]


def test_nhwc_is_moved_to_channels_first(tmp_path: Path) -> None:
    x = np.zeros((2, 5, 6, 3), dtype=np.uint8)
    x[..., 0], x[..., 1], x[..., 2] = 10, 20, 30
    x[1, 4, 5, 2] = 255
    ds = load_npz(
        _save(tmp_path / "rgb.npz", images=x, labels=np.array([0, 1]), classes=np.array(["cat", "dog"]))
    )
    assert ds.images.shape == (2, 3, 5, 6) and ds.classes == ["cat", "dog"]
    assert torch.allclose(ds.images[0, :, 0, 0], torch.tensor([10, 20, 30]) / 255)
    assert float(ds.images[1, 2, 4, 5]) == 1.0


def test_nchw_float_and_unlabelled(tmp_path: Path) -> None:
    x = np.random.default_rng(1).random((4, 6, 5, 5))
    ds = load_npz(_save(tmp_path / "ms.npz", pixels=x), images_key="pixels", labels_key=None, name="bands")
    assert ds.images.shape == (4, 6, 5, 5) and ds.labels is None and ds.name == "bands"
    assert torch.allclose(ds.images, torch.from_numpy(x).float())


def test_ambiguous_layout_needs_layout_argument(tmp_path: Path) -> None:
    x = np.random.default_rng(2).integers(0, 256, (2, 3, 4, 4), dtype=np.uint8)
    path = _save(tmp_path / "amb.npz", images=x, labels=np.array([0, 0]))
    with pytest.raises(ValueError, match="could be NHWC or NCHW; pass layout"):
        load_npz(path)
    assert load_npz(path, layout="NCHW").images.shape == (2, 3, 4, 4)
    assert load_npz(path, layout="NHWC").images.shape == (2, 4, 3, 4)


@pytest.mark.parametrize(
    ("arrays", "kwargs", "match"),
    [
        ({"x": np.zeros((2, 3, 3), np.uint8)}, {}, r"no array 'images'; it holds \['x'\]"),
        ({"images": np.zeros((2, 3, 3), np.uint8)}, {}, r"no array 'labels'; it holds \['images'\]"),
        ({"images": np.zeros((2, 9), np.uint8), "labels": np.zeros(2, int)}, {}, "must be \\[N, H, W\\]"),
        ({"images": np.zeros((2, 3, 3), np.uint8), "labels": np.zeros(3, int)}, {}, "2 images but 3 labels"),
        ({"images": np.zeros((2, 3, 3), np.uint8), "labels": np.array([0, -1])}, {}, "class ids >= 0"),
        ({"images": np.zeros((2, 3, 3), np.uint8), "labels": np.array([0.0, 1.0])}, {}, "1-D integer"),
        ({"images": np.full((2, 3, 3), 2.0), "labels": np.zeros(2, int)}, {}, r"must lie in \[0, 1\]"),
        ({"images": np.zeros((2, 3, 3), np.uint16), "labels": np.zeros(2, int)}, {}, "uint8 .* or float"),
        ({"images": np.zeros((2, 3, 3, 7), np.uint8)}, {"layout": "NHWC", "labels_key": None}, "C in"),
    ],
)
def test_errors_are_clear(
    tmp_path: Path, arrays: dict[str, np.ndarray], kwargs: dict[str, object], match: str
) -> None:
    path = _save(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=match) as info:
        load_npz(path, **kwargs)
    assert "\n" not in str(info.value)


def test_missing_file_and_npy(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_npz(tmp_path / "nope.npz")
    np.save(tmp_path / "single.npy", np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="single .npy array"):
        load_npz(tmp_path / "single.npy")
