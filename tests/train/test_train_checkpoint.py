"""Training checkpoints: RNG capture/restore, exact resume, atomic saves and one-line errors for wrong files."""

from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from contrastkit._io import CheckpointError
from contrastkit.models import build_backbone, export_backbone
from contrastkit.train.checkpoint import (
    capture_rng_state,
    find_resume_checkpoint,
    load_training_checkpoint,
    restore_rng_state,
    save_training_checkpoint,
)

CONFIG: dict[str, Any] = {
    "name": "toy",
    "model": {"backbone": "resnet18", "width": 0.25, "small_stem": True, "norm": "batch", "sync_batchnorm": False},
    "method": {"name": "simclr", "temperature": 0.2},
    "optim": {"name": "sgd", "lr": 0.1},
}


def _one_line(err: pytest.ExceptionInfo[BaseException]) -> str:
    assert "\n" not in str(err.value)
    return str(err.value)


def _draws() -> tuple[list[float], list[float], torch.Tensor]:
    """Draw from every global RNG, including the cached-Gaussian paths of random.gauss and numpy's normal."""
    py = [random.random(), random.gauss(0, 1), random.random()]
    npy = [float(np.random.rand()), float(np.random.normal()), *np.random.randint(0, 10**6, 3).tolist()]
    return py, npy, torch.randn(4)


def _assert_same_draws(a: tuple[Any, ...], b: tuple[Any, ...]) -> None:
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])


def test_rng_restore_repeats_the_draws(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    random.gauss(0, 1)  # leaves a cached Gaussian in both generators
    np.random.normal()
    state = capture_rng_state()
    first = _draws()
    second = _draws()
    assert first[0] != second[0] and first[1] != second[1] and not torch.equal(first[2], second[2])
    restore_rng_state(state)
    _assert_same_draws(_draws(), first)
    # through a file read with weights_only=True
    torch.save(state, tmp_path / "rng.pt")
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    _assert_same_draws(_draws(), first)


def test_rng_state_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="no 'numpy' entry"):
        restore_rng_state({"python": {}, "torch": torch.get_rng_state()})
    state = capture_rng_state()
    state["python"] = {"version": 3, "state": [1, 2, 3], "gauss_next": None}
    with pytest.raises(ValueError, match="rng_state is damaged"):
        restore_rng_state(state)
    with pytest.raises(ValueError, match="capture_rng_state"):
        restore_rng_state([1, 2])  # type: ignore[arg-type]


def _model_and_optimizer() -> tuple[nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (1 + s))
    return model, optimizer, scheduler


def _train_steps(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, steps: int) -> None:
    """Steps whose data and noise come from all three global RNGs, so a missed RNG restore changes the weights."""
    for _ in range(steps):
        x = torch.randn(6, 4) + float(np.random.rand()) + random.random()
        loss = model(x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()


def test_resume_from_checkpoint_matches_uninterrupted_run(tmp_path: Path) -> None:
    def seed() -> None:
        torch.manual_seed(0)
        np.random.seed(0)
        random.seed(0)

    seed()
    model, optimizer, scheduler = _model_and_optimizer()
    _train_steps(model, optimizer, scheduler, 6)
    reference = {k: v.clone() for k, v in model.state_dict().items()}

    seed()
    model, optimizer, scheduler = _model_and_optimizer()
    _train_steps(model, optimizer, scheduler, 3)
    path = save_training_checkpoint(
        tmp_path / "last.ckpt",
        model_state=model.state_dict(),
        optimizer_state=optimizer.state_dict(),
        scheduler_state=scheduler.state_dict(),
        step=3,
        epoch=0,
        batch_in_epoch=3,
        rng_state=capture_rng_state(),
        config=CONFIG,
    )
    _train_steps(model, optimizer, scheduler, 2)  # the "killed" process runs on and is lost
    torch.manual_seed(123)  # and the new process starts from other RNG states
    np.random.seed(123)
    random.seed(123)

    ckpt = load_training_checkpoint(path, expected_config=CONFIG)
    model, optimizer, scheduler = _model_and_optimizer()
    model.load_state_dict(ckpt["model_state"])
    optimizer.load_state_dict(ckpt["optimizer_state"])
    scheduler.load_state_dict(ckpt["scheduler_state"])
    restore_rng_state(ckpt["rng_state"])
    assert (ckpt["step"], ckpt["epoch"], ckpt["batch_in_epoch"]) == (3, 0, 3)
    _train_steps(model, optimizer, scheduler, 3)
    for name, value in model.state_dict().items():
        assert torch.equal(value, reference[name]), name


def _save(path: Path, step: int = 1, config: Any = CONFIG, **overrides: Any) -> Path:
    model = nn.Linear(2, 2)
    kwargs: dict[str, Any] = {
        "model_state": model.state_dict(),
        "optimizer_state": torch.optim.SGD(model.parameters(), lr=0.1).state_dict(),
        "scheduler_state": None,
        "step": step,
        "epoch": 0,
        "batch_in_epoch": step,
        "rng_state": capture_rng_state(),
        "config": config,
    }
    kwargs.update(overrides)
    return save_training_checkpoint(path, **kwargs)


def test_file_layout_and_normalisation(tmp_path: Path) -> None:
    model = nn.Linear(2, 2)
    backbone = build_backbone("convnet", in_channels=1, image_size=8, width=4, depth=1)
    path = _save(
        tmp_path / "c.ckpt",
        model_state={f"module._orig_mod.{k}": v for k, v in model.state_dict().items()},
        metrics={"loss": torch.tensor(0.5), "knn": np.float64(0.25)},
        extra={"sampler_epoch_seed": 7, "queue": torch.zeros(3)},
        backbone_config=backbone.config,
    )
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "contrastkit-train" and raw["version"] == 1
    assert set(raw["model_state"]) == {"weight", "bias"}
    assert raw["metrics"] == {"loss": 0.5, "knn": 0.25} and type(raw["metrics"]["knn"]) is float
    assert raw["backbone_config"] == backbone.config and raw["config"] == CONFIG
    assert torch.equal(raw["extra"]["queue"], torch.zeros(3))
    assert load_training_checkpoint(path)["extra"]["sampler_epoch_seed"] == 7


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"step": -1}, "step must be an int >= 0"),
        ({"batch_in_epoch": 1.5}, "batch_in_epoch must be an int >= 0"),
        ({"extra": {"x": np.zeros(2)}}, "extra['x'] is a numpy.ndarray"),
        ({"config": {"a": object()}}, "config must hold only JSON-able values"),
        ({"scheduler_state": [1]}, "scheduler_state must be a dict or None"),
    ],
)
def test_save_rejects_what_cannot_be_resumed(tmp_path: Path, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as err:
        _save(tmp_path / "c.ckpt", **overrides)
    assert message in _one_line(err)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("failure", ["torch.save", "os.replace"])
def test_crash_during_save_keeps_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    path = _save(tmp_path / "last.ckpt", step=5)

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("SIGKILL stand-in")

    monkeypatch.setattr(torch if failure == "torch.save" else os, failure.split(".")[1], boom)
    with pytest.raises(OSError, match="SIGKILL stand-in"):
        _save(path, step=6)
    monkeypatch.undo()
    assert load_training_checkpoint(path)["step"] == 5
    assert os.listdir(tmp_path) == ["last.ckpt"]


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_training_checkpoint(tmp_path / "missing.ckpt")
    path = _save(tmp_path / "c.ckpt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        load_training_checkpoint(path)
    assert _one_line(err).startswith(f"{path} is not a readable checkpoint: the file is truncated")
    path.write_bytes(b"\x89PNG garbage bytes" * 8)
    with pytest.raises(CheckpointError, match="is not a readable checkpoint"):
        load_training_checkpoint(path)


def test_exported_backbone_and_training_checkpoint_are_not_interchangeable(tmp_path: Path) -> None:
    from contrastkit.models import load_backbone

    exported = export_backbone(
        build_backbone("convnet", in_channels=1, image_size=8, width=4, depth=1), tmp_path / "b.pt"
    )
    with pytest.raises(CheckpointError) as err:
        load_training_checkpoint(exported)
    assert "is an exported backbone, not a training checkpoint" in _one_line(err)
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    ckpt = _save(tmp_path / "run" / "checkpoints" / "last.ckpt")
    with pytest.raises(CheckpointError, match=f"contrastkit export {tmp_path / 'run'} --out FILE"):
        load_backbone(ckpt)
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(1)}, plain)
    with pytest.raises(CheckpointError, match="not a contrastkit training checkpoint .no contrastkit format tag"):
        load_training_checkpoint(plain)


def test_newer_version_and_damaged_payload(tmp_path: Path) -> None:
    path = _save(tmp_path / "c.ckpt")
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, "version": 7}, path)
    with pytest.raises(CheckpointError, match="version 7.*upgrade contrastkit"):
        load_training_checkpoint(path)
    del payload["optimizer_state"]
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="entry 'optimizer_state' is missing"):
        load_training_checkpoint(path)


def test_resume_with_another_architecture_is_refused(tmp_path: Path) -> None:
    path = _save(tmp_path / "c.ckpt")
    asked = {**CONFIG, "model": {**CONFIG["model"], "width": 0.5}}
    with pytest.raises(CheckpointError) as err:
        load_training_checkpoint(path, expected_config=asked)
    assert _one_line(err) == (
        f"checkpoint {path} was trained with model {{backbone: resnet18, width: 0.25}}; the config asks for "
        "{backbone: resnet18, width: 0.5}: use the same model section or start a new run"
    )
    asked = {**CONFIG, "model": {**CONFIG["model"], "backbone": "resnet50"}}
    with pytest.raises(CheckpointError, match="model {backbone: resnet18}; the config asks for {backbone: resnet50}"):
        load_training_checkpoint(path, expected_config=asked)
    asked = {**CONFIG, "method": {"name": "moco"}}
    with pytest.raises(CheckpointError, match="trained with method simclr; the config asks for moco"):
        load_training_checkpoint(path, expected_config=asked)


def test_compatible_configs_are_accepted(tmp_path: Path) -> None:
    path = _save(tmp_path / "c.ckpt")
    # other sections (optimiser, epochs, devices) and SyncBatchNorm may change on resume
    changed = {**CONFIG, "optim": {"name": "sgd", "lr": 0.01}, "model": {**CONFIG["model"], "sync_batchnorm": True}}
    assert load_training_checkpoint(path, expected_config=changed)["step"] == 1

    @dataclasses.dataclass
    class Model:
        backbone: str = "resnet18"
        width: float = 0.25
        small_stem: bool = True
        norm: str = "batch"
        sync_batchnorm: bool = False

    @dataclasses.dataclass
    class Method:
        name: str = "simclr"

    @dataclasses.dataclass
    class Config:
        model: Model = dataclasses.field(default_factory=Model)
        method: Method = dataclasses.field(default_factory=Method)

    assert load_training_checkpoint(path, expected_config=Config())["step"] == 1
    with pytest.raises(CheckpointError, match="width: 0.5"):
        load_training_checkpoint(path, expected_config=Config(model=Model(width=0.5)))


def test_find_resume_checkpoint(tmp_path: Path) -> None:
    assert find_resume_checkpoint(tmp_path / "absent") is None
    assert find_resume_checkpoint(tmp_path) is None
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / ".last.ckpt.abc.tmp").write_bytes(b"torn")  # a leftover of a killed writer
    assert find_resume_checkpoint(tmp_path) is None
    last = _save(tmp_path / "checkpoints" / "last.ckpt")
    assert find_resume_checkpoint(str(tmp_path)) == last


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_rng_restore_and_gpu_checkpoint(tmp_path: Path) -> None:
    state = capture_rng_state()
    assert state["cuda"] is not None and len(state["cuda"]) == torch.cuda.device_count()
    first = torch.randn(8, device="cuda")
    restore_rng_state(state)
    assert torch.equal(torch.randn(8, device="cuda"), first)
    model = nn.Linear(2, 2).cuda()
    path = _save(tmp_path / "c.ckpt", model_state=model.state_dict())
    restore_rng_state(load_training_checkpoint(path, map_location="cuda")["rng_state"])  # states mapped to GPU
    assert load_training_checkpoint(path)["model_state"]["weight"].device.type == "cpu"
