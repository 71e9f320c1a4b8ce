"""``build_data`` on one's own images (folder / npz): the held-out split from ``data.eval_path`` or
``data.eval_fraction``, unlabelled data (``data.labelled: false``), and the stop criteria reaching the engine."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from contrastkit.data import ImageDataset
from contrastkit.train.builders import build_data, build_engine, build_method
from contrastkit.train.config import load_config
from contrastkit.train.config_schema import CHOICES, SECTIONS

Image = pytest.importorskip("PIL.Image", reason="Pillow is not installed (`pip install pillow`)")

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny_test.yaml"
QUIET = ["monitor.knn_every_epochs=0", "trainer.max_steps=1"]


def write_images(folder: Path, count: int, start: int = 0, size: int = 8, rgb: bool = False) -> None:
    """``count`` PNGs whose pixel (0, 0) is their number ``start + i`` (so every image can be recognised)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        values = np.full((size, size), 128, np.uint8)
        values[0, 0] = start + i
        image = Image.fromarray(values, mode="L")
        (image.convert("RGB") if rgb else image).save(folder / f"{start + i:03d}.png")


def numbers(ds: ImageDataset) -> list[int]:
    return sorted(round(float(v) * 255) for v in ds.images[:, 0, 0, 0])


def folder_config(path: Path, *overrides: str) -> list[str]:
    return ["data.name=folder", f"data.path={path}", "data.batch_size=8", *QUIET, *overrides]


def test_a_held_out_folder_gets_the_training_classes_and_channels(tmp_path: Path) -> None:
    write_images(tmp_path / "train" / "ant", 10, 0)
    write_images(tmp_path / "train" / "bee", 10, 10, rgb=True)  # one RGB class: the training set has 3 channels
    write_images(tmp_path / "train" / "cat", 10, 20)
    write_images(tmp_path / "test" / "bee", 3, 100)  # no "ant": bee is class 1 of the training set, not 0
    write_images(tmp_path / "test" / "cat", 2, 110)
    cfg = load_config(TINY, folder_config(tmp_path / "train", f"data.eval_path={tmp_path / 'test'}"))
    data = build_data(cfg)
    assert data.eval is not None and data.train.classes == data.eval.classes == ["ant", "bee", "cat"]
    assert data.eval.labels.tolist() == [1, 1, 1, 2, 2] and numbers(data.eval) == [100, 101, 102, 110, 111]
    assert data.train.channels == data.eval.channels == 3 and len(data.train) == 30
    write_images(tmp_path / "test" / "dog", 1, 120)
    with pytest.raises(ValueError, match=r"data.eval_path: the held-out set test has classes \['dog'\] that"):
        build_data(cfg)


def test_a_held_out_folder_of_another_size_is_refused_unless_resized(tmp_path: Path) -> None:
    write_images(tmp_path / "train" / "a", 10, 0)
    write_images(tmp_path / "test" / "a", 2, 100, size=6)
    overrides = folder_config(tmp_path / "train", f"data.eval_path={tmp_path / 'test'}")
    with pytest.raises(ValueError, match="the held-out images are 6x6 but the training images 8x8: set data.image_s"):
        build_data(load_config(TINY, overrides))
    data = build_data(load_config(TINY, [*overrides, "data.image_size=6"]))
    assert data.eval is not None and data.eval.image_size == data.train.image_size == (6, 6)


def test_eval_fraction_holds_out_the_same_stratified_share_whatever_the_training_seed(tmp_path: Path) -> None:
    write_images(tmp_path / "a", 30, 0)
    write_images(tmp_path / "b", 20, 100)
    base = folder_config(tmp_path, "data.eval_fraction=0.2")
    data = build_data(load_config(TINY, base))
    assert data.eval is not None and (len(data.train), len(data.eval)) == (40, 10)
    assert data.eval.class_counts().tolist() == [6, 4] and data.train.class_counts().tolist() == [24, 16]
    assert sorted(numbers(data.train) + numbers(data.eval)) == [*range(30), *range(100, 120)]  # disjoint, complete
    other_run = build_data(load_config(TINY, [*base, "trainer.seed=5"]))
    assert other_run.eval is not None and numbers(other_run.eval) == numbers(data.eval)
    other_split = build_data(load_config(TINY, [*base, "data.split_seed=1"]))
    assert other_split.eval is not None and numbers(other_split.eval) != numbers(data.eval)


def test_an_unlabelled_folder_trains_simclr_and_refuses_label_methods(tmp_path: Path) -> None:
    write_images(tmp_path / "loose", 12, 0)
    write_images(tmp_path / "loose" / "deeper", 8, 50)  # any depth, no classes
    cfg = load_config(TINY, folder_config(tmp_path / "loose", "data.labelled=false", "data.eval_fraction=0.25"))
    data = build_data(cfg)
    assert data.eval is not None and data.train.labels is None and data.eval.labels is None
    assert (len(data.train), len(data.eval)) == (15, 5) and data.train.classes == []
    engine, module, _ = build_engine(cfg, data)
    assert module.online_classifier is None and engine.run().step == 1
    supervised = load_config(TINY, [*folder_config(tmp_path / "loose", "data.labelled=false"), "data.eval_split=null",
                                    "method.name=supervised"])  # fmt: skip
    with pytest.raises(ValueError, match=r"needs labelled training data: use a labelled dataset \(data.labelled=true"):
        build_method(supervised, build_data(supervised).train)
    write_images(tmp_path / "flat", 10, 0)
    labelled = load_config(TINY, folder_config(tmp_path / "flat", "data.eval_fraction=0.25"))
    with pytest.raises(ValueError, match=r"data.path: .* has no class sub-folders: .* --set data.labelled=false"):
        build_data(labelled)


def test_npz_data_with_a_held_out_file_and_without_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (20, 8, 8), dtype=np.uint8), np.repeat(np.arange(2), 10)
    np.savez(tmp_path / "train.npz", images=images, labels=labels)
    np.savez(tmp_path / "test.npz", images=images[:4], labels=np.array([1, 1, 1, 1]))
    np.savez(tmp_path / "plain.npz", images=images)
    npz = ["data.name=npz", "data.batch_size=8", *QUIET]
    data = build_data(load_config(TINY, [*npz, f"data.path={tmp_path / 'train.npz'}",
                                         f"data.eval_path={tmp_path / 'test.npz'}"]))  # fmt: skip
    assert data.eval is not None and data.eval.labels.tolist() == [1, 1, 1, 1] and data.train.classes == ["0", "1"]
    assert torch.equal(data.eval.images, data.train.images[:4])
    plain = [*npz, f"data.path={tmp_path / 'plain.npz'}", "data.eval_fraction=0.5"]
    with pytest.raises(ValueError, match=r"data.path: .* has no array 'labels'.*--set data.labelled=false"):
        build_data(load_config(TINY, plain))
    unlabelled = build_data(load_config(TINY, [*plain, "data.labelled=false"]))
    assert unlabelled.eval is not None and unlabelled.train.labels is None and len(unlabelled.eval) == 10


def test_a_step_limit_and_a_time_budget_both_reach_the_engine() -> None:
    """``trainer.max_steps`` with ``time_budget_minutes``: both limits; ``max_epochs`` with ``max_steps``: the
    smaller step count."""
    both = load_config(TINY, ["trainer.time_budget_minutes=2", *QUIET[:1], "data.eval_split=null"])
    engine, _, data = build_engine(both)
    assert (engine.max_steps, engine.time_budget_s) == (6, 120.0)
    per_epoch = len(data.train) // 32
    epochs = load_config(TINY, ["trainer.max_epochs=1", "trainer.max_steps=1000", *QUIET[:1], "data.eval_split=null"])
    assert build_engine(epochs, data)[0].max_steps == per_epoch == 42
    steps = load_config(TINY, ["trainer.max_epochs=1", "trainer.max_steps=3", *QUIET[:1], "data.eval_split=null"])
    assert build_engine(steps, data)[0].max_steps == 3


def test_every_section_key_and_choice_is_documented_in_docs_configs_md() -> None:
    """docs/configs.md names every key of every fixed section (the method sections live with their methods) and
    every allowed value of a choice key."""
    doc = (ROOT / "docs" / "configs.md").read_text()
    keys = [f"{name}.{f.name}" for name, cls in SECTIONS.items() if name != "method" for f in dataclasses.fields(cls)]
    assert [key for key in keys if f"`{key.split('.')[1]}`" not in doc] == []
    assert [f"{k}={v}" for k, values in CHOICES.items() for v in values if f"`{v}`" not in doc] == []
