"""export_backbone / load_backbone: exact round trip, weights_only files, wrapper prefixes, one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from contrastkit.models import (
    Backbone,
    CheckpointError,
    build_backbone,
    export_backbone,
    load_backbone,
    read_backbone_file,
    strip_wrapper_prefixes,
    unwrap_model,
)

SMALL_BACKBONES = {
    "resnet18-group": ("resnet18", {"width": 0.125, "small_stem": True, "norm": "group", "in_channels": 1}),
    "resnet18-batch": ("resnet18", {"width": 0.125, "small_stem": True, "norm": "batch", "in_channels": 1}),
    "convnet-batch": ("convnet", {"in_channels": 1, "image_size": 8, "width": 8, "depth": 2, "norm": "batchnorm"}),
}


def _trained_backbone(key: str) -> Backbone:
    """A backbone whose weights and BatchNorm statistics differ from a fresh build of the same config."""
    name, kwargs = SMALL_BACKBONES[key]
    model = build_backbone(name, **kwargs)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        model.train()
        for _ in range(3):  # updates BN running_mean / running_var / num_batches_tracked
            model(torch.randn(4, 1, 8, 8) * 3 + 1)
    return model


def _one_line(err: pytest.ExceptionInfo[BaseException]) -> str:
    assert "\n" not in str(err.value)
    return str(err.value)


@pytest.mark.parametrize("key", list(SMALL_BACKBONES))
def test_round_trip_gives_identical_outputs(tmp_path: Path, key: str) -> None:
    model = _trained_backbone(key).eval()
    file = export_backbone(model, tmp_path / "backbone.pt", metadata={"dataset": "toy", "epochs": (1, 2)})
    loaded = load_backbone(file)
    assert type(loaded) is type(model) and not loaded.training
    assert loaded.config == model.config
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    reference = model.state_dict()
    for name, value in loaded.state_dict().items():
        assert torch.equal(value, reference[name]), name
    if "batch" in key:  # the running statistics really were trained and really were carried over
        stats = [k for k in reference if k.endswith("running_mean")]
        assert stats and any(reference[k].abs().sum() > 0 for k in stats)
        name, kwargs = SMALL_BACKBONES[key]
        fresh = build_backbone(name, **kwargs).eval()
        with torch.no_grad():
            assert not torch.allclose(fresh(x), model(x))


def test_file_layout_loads_with_weights_only(tmp_path: Path) -> None:
    model = _trained_backbone("resnet18-batch")
    export_backbone(model, tmp_path / "b.pt", metadata={"accuracy": 0.5, "epochs": (1, 2)})
    raw = torch.load(tmp_path / "b.pt", weights_only=True)
    assert raw["format"] == "contrastkit-backbone" and raw["version"] == 1
    assert raw["config"] == model.config
    assert set(raw["state_dict"]) == set(model.state_dict())
    assert all(t.device.type == "cpu" and t.is_contiguous() for t in raw["state_dict"].values())
    meta = raw["metadata"]
    assert meta["accuracy"] == 0.5 and meta["epochs"] == [1, 2] and meta["torch_version"] == str(torch.__version__)
    assert "contrastkit_version" in meta
    assert os.listdir(tmp_path) == ["b.pt"]


def test_views_do_not_bloat_the_file(tmp_path: Path) -> None:
    model = build_backbone("convnet", in_channels=1, image_size=8, width=8, depth=1, norm="none")
    big = torch.randn(10_000)
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    conv.weight = nn.Parameter(big[: conv.weight.numel()].view_as(conv.weight))  # a view of a larger storage
    export_backbone(model, tmp_path / "b.pt")
    assert (tmp_path / "b.pt").stat().st_size < 10_000 * 4 / 2


class _FakeFabricWrapper(nn.Module):
    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self._forward_module = module


class _CompiledLike(nn.Module):
    """Stands in for ``torch.compile(module)`` (an ``OptimizedModule`` holding ``_orig_mod``) without dynamo."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self._orig_mod = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._orig_mod(x)


def test_wrapped_backbones_export_without_prefixes(tmp_path: Path) -> None:
    model = _trained_backbone("convnet-batch").eval()
    wrapped = _CompiledLike(nn.DataParallel(_FakeFabricWrapper(model)))  # _orig_mod.module._forward_module.*
    assert unwrap_model(wrapped) is model
    export_backbone(wrapped, tmp_path / "b.pt")
    loaded = load_backbone(tmp_path / "b.pt")
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_compiled_submodule_keys_are_cleaned(tmp_path: Path) -> None:
    model = _trained_backbone("resnet18-group").eval()
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    model.layer1 = _CompiledLike(model.layer1)  # what torch.compile's OptimizedModule does to the keys
    assert any("_orig_mod" in k for k in model.state_dict())
    export_backbone(model, tmp_path / "b.pt")
    loaded = load_backbone(tmp_path / "b.pt")
    assert set(loaded.state_dict()) == set(expected)
    assert all(torch.equal(v, expected[k]) for k, v in loaded.state_dict().items())


def test_strip_wrapper_prefixes() -> None:
    cleaned = strip_wrapper_prefixes(
        {"module._orig_mod.layer1.0.weight": 1, "_orig_mod.fc.bias": 2, "module.module.x": 3, "head.module.w": 4}
    )
    assert cleaned == {"layer1.0.weight": 1, "fc.bias": 2, "x": 3, "head.module.w": 4}
    with pytest.raises(ValueError, match="both map to"):
        strip_wrapper_prefixes({"module.a": 1, "a": 2})


def test_export_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs a contrastkit Backbone"):
        export_backbone(nn.Linear(2, 2), tmp_path / "b.pt")
    model = _trained_backbone("convnet-batch")
    with pytest.raises(ValueError, match="metadata must be a dict of JSON-able values"):
        export_backbone(model, tmp_path / "b.pt", metadata={"x": object()})
    with pytest.raises(ValueError, match="does not exist"):
        export_backbone(model, tmp_path / "missing" / "b.pt")
    assert os.listdir(tmp_path) == []


def test_crash_during_export_keeps_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _trained_backbone("convnet-batch").eval()
    export_backbone(first, tmp_path / "b.pt")

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(RuntimeError, match="killed mid-write"):
        export_backbone(_trained_backbone("convnet-batch"), tmp_path / "b.pt")
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["b.pt"]
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(load_backbone(tmp_path / "b.pt")(x), first(x))


# --------------------------------------------------------------------------------------------- load errors


@pytest.fixture()
def exported(tmp_path: Path) -> Path:
    return export_backbone(_trained_backbone("resnet18-group"), tmp_path / "b.pt")


def test_missing_truncated_and_garbage_files(tmp_path: Path, exported: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_backbone(tmp_path / "missing.pt")
    data = exported.read_bytes()
    exported.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        load_backbone(exported)
    assert f"{exported} is not a readable checkpoint: the file is truncated" in _one_line(err)
    exported.write_bytes(os.urandom(256))
    with pytest.raises(CheckpointError, match="is not a readable checkpoint"):
        load_backbone(exported)


def test_training_checkpoint_is_refused_with_export_hint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = run / "checkpoints" / "last.ckpt"
    torch.save({"format": "contrastkit-train", "version": 1, "model_state": {}}, ckpt)
    with pytest.raises(CheckpointError) as err:
        load_backbone(ckpt)
    assert _one_line(err) == (
        f"{ckpt} is a training checkpoint, not an exported backbone: run `contrastkit export {run} --out FILE`"
    )
    with pytest.raises(CheckpointError, match=f"{run} is a run directory.*contrastkit export {run} --out FILE"):
        load_backbone(run)
    other = tmp_path / "elsewhere.ckpt"
    torch.save({"format": "contrastkit-train", "version": 1}, other)
    with pytest.raises(CheckpointError, match="contrastkit export RUN_DIR --out FILE"):
        load_backbone(other)


def test_plain_state_dict_and_newer_version_are_refused(tmp_path: Path, exported: Path) -> None:
    plain = tmp_path / "plain.pt"
    torch.save(build_backbone("resnet18", width=0.125).state_dict(), plain)
    with pytest.raises(CheckpointError, match="is not an exported contrastkit backbone .no contrastkit format tag"):
        load_backbone(plain)
    payload = torch.load(exported, weights_only=True)
    torch.save({**payload, "version": 2}, exported)
    with pytest.raises(CheckpointError, match="version 2.*upgrade contrastkit"):
        load_backbone(exported)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("width", "'conv1.weight' has shape (8, 1, 3, 3), expected (32, 1, 3, 3)"),
        ("drop", "missing key 'layer4.1.bn2.bias' (1 missing)"),
        ("add", "unexpected key 'fc.weight' (1 unexpected)"),
        ("norm", "missing key 'bn1.running_mean'"),
        ("name", "cannot be built: unknown backbone 'resnet7'"),
    ],
)
def test_architecture_mismatch_names_first_bad_key(exported: Path, change: str, message: str) -> None:
    payload = torch.load(exported, weights_only=True)
    config, state = payload["config"], payload["state_dict"]
    if change == "width":
        config["kwargs"]["width"] = 0.5
    elif change == "drop":
        del state["layer4.1.bn2.bias"]
    elif change == "add":
        state["fc.weight"] = torch.zeros(2, 64)
    elif change == "norm":
        config["kwargs"]["norm"] = "batch"
    else:
        config["name"] = "resnet7"
    torch.save(payload, exported)
    with pytest.raises(CheckpointError) as err:
        load_backbone(exported)
    assert message in _one_line(err) and str(exported) in str(err.value)


def test_read_backbone_file_returns_metadata(exported: Path) -> None:
    payload = read_backbone_file(exported)
    assert payload["config"]["name"] == "resnet18" and "torch_version" in payload["metadata"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_backbone_exports_to_cpu_and_loads_onto_gpu(tmp_path: Path) -> None:
    model = _trained_backbone("resnet18-batch").cuda().eval()
    export_backbone(model, tmp_path / "b.pt")
    assert all(t.device.type == "cpu" for t in torch.load(tmp_path / "b.pt", weights_only=True)["state_dict"].values())
    loaded = load_backbone(tmp_path / "b.pt", map_location="cuda")
    assert next(loaded.parameters()).is_cuda
    x = torch.randn(2, 1, 8, 8, device="cuda")
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x))
