"""Config -> run: ``model.init_from`` (stage 2 from stage 1), the long-tailed and balanced data keys, the convnet
backbone and the engine keys reaching the engine."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor

from contrastkit.cli import main
from contrastkit.data import ImageDataset, load
from contrastkit.methods import SimCLR, SupervisedClassifier
from contrastkit.models import export_backbone
from contrastkit.train.builders import build_data, build_engine, build_method
from contrastkit.train.checkpoint import backbone_of, load_training_checkpoint
from contrastkit.train.config import load_config

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny_test.yaml"
QUICK = ["trainer.max_steps=2", "data.eval_split=null", "monitor.knn_every_epochs=0"]


@pytest.fixture(scope="module")
def stage1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny SimCLR run (2 steps)."""
    run = tmp_path_factory.mktemp("init_from") / "stage1"
    assert main(["train", str(TINY), "--out", str(run), "--set", *QUICK]) == 0
    return run


def trained_backbone(run: Path) -> dict[str, Tensor]:
    return backbone_of(load_training_checkpoint(run / "checkpoints" / "last.ckpt")).state_dict()


def digits_train() -> ImageDataset:
    return load("digits", "train")


# ------------------------------------------------------------------------------------------ model.init_from


def test_init_from_a_run_a_checkpoint_or_an_exported_backbone_loads_its_weights(stage1: Path, tmp_path: Path) -> None:
    trained = trained_backbone(stage1)
    exported = export_backbone(
        backbone_of(load_training_checkpoint(stage1 / "checkpoints" / "last.ckpt")), tmp_path / "backbone.pt"
    )
    fresh = build_method(load_config(TINY, QUICK), digits_train())
    assert any(not torch.equal(v, trained[k]) for k, v in fresh.backbone.state_dict().items())  # it trained
    for source in (stage1, stage1 / "checkpoints" / "last.ckpt", exported):
        method = build_method(load_config(TINY, [*QUICK, f"model.init_from={source}"]), digits_train())
        state = method.backbone.state_dict()
        assert state.keys() == trained.keys()
        for key, value in trained.items():
            assert torch.equal(state[key], value), (source, key)


def test_stage2_trains_a_classifier_on_the_frozen_stage1_backbone(stage1: Path) -> None:
    overrides = [*QUICK, "method.name=supervised", "method.freeze_encoder=true", f"model.init_from={stage1}"]
    engine, module, _ = build_engine(load_config(TINY, overrides))
    method = module.method
    assert isinstance(method, SupervisedClassifier)
    head_before = method.classifier.linear.weight.detach().clone()
    engine.run()
    trained = trained_backbone(stage1)
    for key, value in method.backbone.state_dict().items():
        assert torch.equal(value, trained[key]), key
    assert not torch.equal(method.classifier.linear.weight, head_before)


@pytest.mark.parametrize(
    "change", [["model.width=0.25"], ["model.norm=batch"], ["model.backbone=convnet", "model.width=16"]]
)
def test_init_from_another_architecture_is_a_one_line_error(stage1: Path, change: list[str]) -> None:
    cfg = load_config(TINY, [*QUICK, *change, f"model.init_from={stage1}"])
    match = r"holds a .* backbone, but the config builds .*: make the model sections match"
    with pytest.raises(ValueError, match=match) as info:
        build_method(cfg, digits_train())
    assert "\n" not in str(info.value) and f"model.init_from={stage1}" in str(info.value)


def test_init_from_something_else_is_a_one_line_error(stage1: Path, tmp_path: Path) -> None:
    cases = [
        (tmp_path / "nonexistent", "does not exist: check the path"),
        (tmp_path, "does not exist: train the run first, or name a file"),  # a folder without checkpoints
        (stage1 / "config.yaml", "is not a readable checkpoint"),
    ]
    for path, match in cases:
        cfg = load_config(TINY, [*QUICK, f"model.init_from={path}"])
        with pytest.raises(ValueError, match=match) as info:
            build_method(cfg, digits_train())
        assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------------- data


def test_class_counts_and_eval_per_class_cut_both_splits() -> None:
    cfg = load_config(TINY, ["data.class_counts=[50, 20, 10]", "data.eval_per_class=5", "data.batch_size=16"])
    data = build_data(cfg)
    assert data.train.labels is not None and data.eval is not None and data.eval.labels is not None
    assert data.train.class_counts().tolist() == [50, 20, 10] and data.train.num_classes == 3
    assert data.eval.class_counts().tolist() == [5, 5, 5]
    # without eval_per_class the eval split is balanced at its smallest kept class
    balanced = build_data(load_config(TINY, ["data.class_counts=[50, 20, 10]", "data.batch_size=16"]))
    assert balanced.eval is not None
    counts = balanced.eval.class_counts().tolist()
    assert len(counts) == 3 and len(set(counts)) == 1
    with pytest.raises(ValueError, match="data.batch_size=32 is larger than the 30 training images"):
        build_data(load_config(TINY, ["data.class_counts=[10, 10, 10]"]))


def test_the_class_balanced_sampler_reaches_the_engine() -> None:
    overrides = ["data.class_counts=[60, 20, 10]", "data.sampler=class_balanced", "data.batch_size=30", *QUICK]
    engine, _, data = build_engine(load_config(TINY, overrides))
    assert engine.source.sampler == "class_balanced"  # type: ignore[attr-defined]
    for index in range(engine.source.num_batches(30)):
        picked = data.train.labels[engine.source.batch_indices(0, index, 30, 0)]  # type: ignore[index]
        assert torch.bincount(picked, minlength=3).tolist() == [10, 10, 10]
    assert engine.run().step == 2


def test_the_engine_keys_reach_the_engine() -> None:
    cfg = load_config(TINY, [*QUICK, "trainer.accumulate_grad_batches=2", "trainer.gradient_clip_norm=0.5"])
    engine, _, data = build_engine(cfg)
    assert (engine.accumulate, engine.clip_norm, engine.max_steps) == (2, 0.5, 2)
    assert engine.steps_per_epoch == len(data.train) // 32 // 2
    by_epochs = [*QUICK[1:], "trainer.max_steps=null", "trainer.max_epochs=2", "trainer.accumulate_grad_batches=3"]
    epochs, _, _ = build_engine(load_config(TINY, by_epochs))
    assert epochs.max_steps == 2 * (len(data.train) // 32 // 3)


def test_the_convnet_backbone_takes_width_depth_and_norm() -> None:
    cfg = load_config(TINY, [*QUICK, "model.backbone=convnet", "model.width=16", "model.depth=2"])
    method = build_method(cfg, digits_train())
    assert isinstance(method, SimCLR)
    kwargs = method.backbone.config["kwargs"]
    assert (kwargs["width"], kwargs["depth"], kwargs["norm"], kwargs["image_size"]) == (16, 2, "instancenorm", [8, 8])
    assert method.embed(torch.rand(3, 1, 8, 8)).shape == (3, method.backbone.num_features)
