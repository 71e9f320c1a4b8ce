"""ImageFolder on tiny PNG / BMP / TIFF files written by the tests themselves."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from contrastkit.data import ImageFolder

Image = pytest.importorskip("PIL.Image", reason="Pillow is not installed (`pip install pillow`)")


def _grey(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint8), mode="L").save(path)


def _rgb(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint8), mode="RGB").save(path)


def test_labelled_sorted_classes_exact_pixels(tmp_path: Path) -> None:
    a = np.arange(12).reshape(3, 4) * 20
    _grey(tmp_path / "zebra" / "1.png", a)
    _grey(tmp_path / "ant" / "nested" / "b.PNG", 255 - a)
    _grey(tmp_path / "ant" / "a.bmp", a)
    (tmp_path / "ant" / "notes.txt").write_text("not an image")
    _grey(tmp_path / "ant" / ".hidden.png", a)
    _grey(tmp_path / "loose.png", a)  # files directly in root are not part of any class
    ds = ImageFolder(tmp_path)
    assert ds.classes == ["ant", "zebra"] and ds.labels.tolist() == [0, 0, 1]
    assert ds.images.shape == (3, 1, 3, 4) and ds.images.dtype == torch.float32
    expected = torch.from_numpy(a).float() / 255
    assert torch.allclose(ds.images[0, 0], expected) and torch.allclose(ds.images[1, 0], 1 - expected)
    assert ds.name == tmp_path.name


def test_unlabelled_recursive_and_channel_conversion(tmp_path: Path) -> None:
    rgb = np.zeros((2, 2, 3))
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    _rgb(tmp_path / "x" / "y" / "c.tif", rgb)
    _grey(tmp_path / "g.png", np.full((2, 2), 80))
    ds = ImageFolder(tmp_path, labelled=False)
    assert ds.labels is None and ds.classes == [] and ds.images.shape == (2, 3, 2, 2)
    assert torch.allclose(ds.images[0, :, 0, 0], torch.full((3,), 80 / 255))  # grey repeated
    assert torch.allclose(ds.images[1, :, 0, 0], torch.tensor([200, 100, 50]) / 255)
    grey = ImageFolder(tmp_path, labelled=False, channels=1)
    luma = (0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255
    assert grey.images.shape == (2, 1, 2, 2) and abs(float(grey.images[1, 0, 0, 0]) - luma) < 1e-6


def test_sixteen_bit_png_scaled_by_65535(tmp_path: Path) -> None:
    values = np.array([[0, 1000], [40000, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    ds = ImageFolder(tmp_path, labelled=False)
    assert torch.allclose(ds.images[0, 0], torch.from_numpy(values.astype(np.float32)) / 65535)


def test_mixed_sizes_need_image_size(tmp_path: Path) -> None:
    _grey(tmp_path / "a" / "big.png", np.full((6, 8), 255))
    _grey(tmp_path / "b" / "small.png", np.full((3, 3), 255))
    with pytest.raises(ValueError, match=r"images differ in size: \(6, 8\).*small.png.*--set data.image_size=N"):
        ImageFolder(tmp_path)
    ds = ImageFolder(tmp_path, image_size=(4, 5))
    assert ds.images.shape == (2, 1, 4, 5) and torch.allclose(ds.images, torch.ones(2, 1, 4, 5))
    assert ImageFolder(tmp_path, image_size=3).image_size == (3, 3)
    with pytest.raises(ValueError, match="image_size"):
        ImageFolder(tmp_path, image_size=0)


def test_corrupt_file_is_named(tmp_path: Path) -> None:
    _grey(tmp_path / "cls" / "ok.png", np.zeros((2, 2)))
    (tmp_path / "cls" / "broken.png").write_bytes(b"this is not a png")
    with pytest.raises(ValueError, match=r"cannot read image .*broken\.png") as info:
        ImageFolder(tmp_path)
    assert "\n" not in str(info.value)


def test_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no class sub-folders"):
        ImageFolder(tmp_path)
    with pytest.raises(ValueError, match="holds no image files"):
        ImageFolder(tmp_path, labelled=False)
    (tmp_path / "empty_class").mkdir()
    _grey(tmp_path / "full" / "a.png", np.zeros((2, 2)))
    with pytest.raises(ValueError, match="class folder .*empty_class holds no image files"):
        ImageFolder(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        ImageFolder(tmp_path / "missing")
    with pytest.raises(ValueError, match="channels must be"):
        ImageFolder(tmp_path / "full", labelled=False, channels=4)


def test_missing_pillow_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _grey(tmp_path / "a.png", np.zeros((2, 2)))
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match="pip install pillow"):
        ImageFolder(tmp_path, labelled=False)
