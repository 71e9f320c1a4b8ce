"""Run configs: every shipped YAML loads, dict / YAML round trips, ``--set`` overrides, one-line ConfigErrors."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from contrastkit import method_registry
from contrastkit.method_registry import BuildContext, recipes, register_method
from contrastkit.methods import SimCLRConfig, SupervisedConfig
from contrastkit.train.config import (
    CHOICES,
    AugmentConfig,
    Config,
    ConfigError,
    DataConfig,
    MethodConfig,
    ModelConfig,
    MonitorConfig,
    OptimConfig,
    ScheduleConfig,
    TrainerConfig,
    config_from_dict,
    config_to_dict,
    dump_config,
    load_config,
    method_config_class,
    validate_config,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
YAMLS = sorted(CONFIGS.glob("*.yaml"))
TINY = CONFIGS / "tiny_test.yaml"


@dataclass
class ToyMethodConfig(MethodConfig):
    """A second method config (registered by the fixture) to test switching and list-valued keys."""

    name: str = "toy"
    temperature: float = 0.5
    queue_sizes: list[int] = field(default_factory=lambda: [4, 8])


def build_toy(cfg: ToyMethodConfig, ctx: BuildContext) -> object:
    raise NotImplementedError("configs only")


@pytest.fixture
def toy_method(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[ToyMethodConfig]]:
    """Registers the toy method in a copy of the registry (the built-in methods first), restored afterwards."""
    monkeypatch.setattr(method_registry, "_RECIPES", dict(recipes()))
    register_method(ToyMethodConfig, build_toy)
    yield ToyMethodConfig


OWN: dict[str, Any] = {"name": "folder", "path": "a"}  # a folder dataset (the path is read only when built)


def minimal(**sections: Any) -> dict[str, Any]:
    """The smallest valid raw config (one stop key), with ``sections`` merged in."""
    raw: dict[str, Any] = {"trainer": {"max_steps": 3}}
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    return raw


# ------------------------------------------------------------------------------------------ shipped YAMLs


def test_configs_folder_has_the_expected_files() -> None:
    names = {p.stem for p in YAMLS}
    assert {"simclr_fashion_mnist", "simclr_mnist", "simclr_animal_mnist", "simclr_digits", "tiny_test"} <= names


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.stem)
def test_every_yaml_loads_and_says_how_to_run_it(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.name == path.stem
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# ")
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    assert f"contrastkit train configs/{path.name}" in header
    assert validate_config(cfg) == cfg


def test_fashion_mnist_config_has_the_documented_recipe() -> None:
    cfg = load_config(CONFIGS / "simclr_fashion_mnist.yaml")
    assert (cfg.data.name, cfg.data.batch_size) == ("fashion-mnist", 256)
    assert (cfg.model.backbone, cfg.model.width, cfg.model.small_stem) == ("resnet18", 0.25, True)
    assert isinstance(cfg.method, SimCLRConfig) and cfg.method.temperature == 0.2
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay) == ("adam", 2e-3, 1e-6)
    assert (cfg.schedule.name, cfg.schedule.warmup_fraction) == ("cosine", 0.03)
    assert cfg.trainer.time_budget_minutes == 10.0 and cfg.trainer.max_epochs is None
    assert cfg.trainer.precision == "auto" and cfg.monitor.knn_every_epochs == 1.0


def test_tiny_test_config_is_tiny() -> None:
    cfg = load_config(TINY)
    assert (cfg.data.name, cfg.data.batch_size, cfg.model.width, cfg.model.norm) == ("digits", 32, 0.125, "group")
    assert (cfg.trainer.max_steps, cfg.trainer.checkpoint_every_steps, cfg.trainer.progress_bar) == (6, 2, False)
    assert cfg.trainer.precision == "32"


# ----------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.stem)
def test_dict_round_trip(path: Path) -> None:
    cfg = load_config(path)
    d = config_to_dict(cfg)
    assert config_from_dict(d) == cfg
    assert config_to_dict(config_from_dict(copy.deepcopy(d))) == d
    assert method_config_class(d["method"]) is type(cfg.method)
    assert set(d) == {f.name for f in dataclasses.fields(Config)}


def test_dump_then_load_is_identity_and_atomic(tmp_path: Path) -> None:
    cfg = load_config(TINY, ["optim.lr=0.01", "data.label_fraction=0.5", "trainer.precision=bf16"])
    out = tmp_path / "config.yaml"
    dump_config(cfg, out)
    dump_config(cfg, out)  # overwriting is fine
    assert load_config(out) == cfg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]  # no temporary file left


def test_dump_failure_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "config.yaml"
    out.write_text("old\n")

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        dump_config(load_config(TINY), out)
    assert out.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


def test_int_for_float_is_stored_as_float_and_precision_int_as_string() -> None:
    cfg = config_from_dict(minimal(optim={"lr": 1}, trainer={"precision": 32}))
    assert type(cfg.optim.lr) is float and cfg.optim.lr == 1.0
    assert cfg.trainer.precision == "32"


def test_defaults_validate() -> None:
    for section in (DataConfig(), AugmentConfig(), ModelConfig(), SimCLRConfig(), OptimConfig(), ScheduleConfig()):
        section.check()
    MonitorConfig().check()
    cfg = Config(trainer=TrainerConfig(max_epochs=1))
    assert validate_config(cfg) == cfg
    assert config_from_dict({"trainer": {"max_epochs": 1}}) == cfg
    with pytest.raises(ConfigError, match="trainer: set at least one of"):
        validate_config(Config())  # no default length of run: the user must choose one


def test_validate_config_catches_bad_python_values() -> None:
    cfg = Config(data=DataConfig(batch_size="8"), trainer=TrainerConfig(max_steps=1))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="data.batch_size: expected int, got str '8'"):
        validate_config(cfg)


# ------------------------------------------------------------------------------------------- overrides


def test_overrides_of_nested_keys_types_and_null() -> None:
    cfg = load_config(
        CONFIGS / "simclr_fashion_mnist.yaml",
        [
            "optim.lr=0.1",
            "optim.name=sgd",
            "optim.nesterov=true",
            "trainer.time_budget_minutes=null",
            "trainer.max_steps=5",
            "data.label_fraction=0.1",
            "model.hidden_dim=256",
            "augment.blur=false",
            "trainer.precision=32",
            "optim.weight_decay=5e-4",  # YAML 1.1 would read this as a string
            "name=my run",
            "optim.lr=0.2",  # later overrides win
        ],
    )
    assert (cfg.optim.lr, cfg.optim.name, cfg.optim.nesterov, cfg.optim.weight_decay) == (0.2, "sgd", True, 5e-4)
    assert (cfg.trainer.time_budget_minutes, cfg.trainer.max_steps, cfg.trainer.precision) == (None, 5, "32")
    assert (cfg.data.label_fraction, cfg.model.hidden_dim, cfg.augment.blur, cfg.name) == (0.1, 256, False, "my run")
    assert cfg.data.batch_size == 256  # untouched keys keep the file's values


def test_stop_criteria_combine_and_one_on_the_command_line_keeps_the_file_s() -> None:
    """``--set trainer.max_steps=30`` on a config with a time budget keeps the budget: whichever comes first."""
    cfg = load_config(CONFIGS / "simclr_fashion_mnist.yaml", ["trainer.max_steps=30"])
    assert (cfg.trainer.max_steps, cfg.trainer.time_budget_minutes, cfg.trainer.max_epochs) == (30, 10.0, None)
    every = config_from_dict({"trainer": {"max_steps": 3, "max_epochs": 2, "time_budget_minutes": 0.5}})
    assert (every.trainer.max_steps, every.trainer.max_epochs, every.trainer.time_budget_minutes) == (3, 2, 0.5)
    dropped = load_config(
        CONFIGS / "simclr_fashion_mnist.yaml", ["trainer.max_steps=30", "trainer.time_budget_minutes=null"]
    )
    assert (dropped.trainer.max_steps, dropped.trainer.time_budget_minutes) == (30, None)
    message = _one_line_error(load_config, CONFIGS / "simclr_fashion_mnist.yaml", ["trainer.time_budget_minutes=null"])
    assert "set the others to null" not in message and "at least one of" in message


def test_own_data_keys_accept_their_valid_values() -> None:
    cfg = config_from_dict(minimal(data={**OWN, "labelled": False, "eval_fraction": 0.25, "split_seed": 7}))
    assert (cfg.data.labelled, cfg.data.eval_fraction, cfg.data.split_seed) == (False, 0.25, 7)
    assert cfg.data.eval_path is None
    held = config_from_dict(minimal(data={**OWN, "name": "npz", "eval_path": "held.npz", "eval_split": "val"}))
    assert (held.data.eval_path, held.data.eval_split, held.data.labelled) == ("held.npz", "val", True)
    none = config_from_dict(minimal(data={**OWN, "eval_split": None}, monitor={"knn_every_epochs": 0}))
    assert none.data.eval_split is None and config_from_dict(config_to_dict(none)) == none


def test_override_sets_a_section_missing_from_the_file_and_a_whole_section(tmp_path: Path) -> None:
    path = tmp_path / "small.yaml"
    path.write_text("trainer: {max_steps: 2}\n")
    cfg = load_config(
        path, ["monitor.knn_k=7", "data={name: folder, path: /data/imgs, batch_size: 8, eval_fraction: 0.2}"]
    )
    assert cfg.monitor.knn_k == 7 and cfg.name == "small"
    assert (cfg.data.name, cfg.data.path, cfg.data.batch_size, cfg.data.train_split, cfg.data.eval_fraction) == (
        "folder",
        "/data/imgs",
        8,
        "train",
        0.2,
    )


def test_list_override_and_method_switch_keeps_compatible_keys(toy_method: type[ToyMethodConfig]) -> None:
    cfg = load_config(TINY, ["method.temperature=0.3", "method.name=toy", "method.queue_sizes=[1, 2, 3]"])
    assert isinstance(cfg.method, ToyMethodConfig)
    assert cfg.method.temperature == 0.3  # kept: the toy config has it too
    assert cfg.method.queue_sizes == [1, 2, 3]
    assert config_from_dict(config_to_dict(cfg)) == cfg
    back = load_config(TINY, ["method.name=toy", "method.name=simclr"])  # gather_distributed was dropped, then default
    assert back.method == SimCLRConfig(temperature=0.2)
    with pytest.raises(ConfigError, match=r"method.queue_sizes\[1\]: expected int, got str 'x'"):
        load_config(TINY, ["method.name=toy", "method.queue_sizes=[1, x]"])
    with pytest.raises(ConfigError, match="method.queue_sizes: expected list of int, got int 3"):
        load_config(TINY, ["method.name=toy", "method.queue_sizes=3"])


def test_unknown_method_key_in_a_file_is_still_an_error(toy_method: type[ToyMethodConfig]) -> None:
    with pytest.raises(ConfigError, match="unknown key 'method.gather_distributed'"):
        config_from_dict(minimal(method={"name": "toy", "gather_distributed": True}))


def test_register_method_rejects_bad_classes(toy_method: type[ToyMethodConfig]) -> None:
    register_method(ToyMethodConfig, build_toy)  # the same class again is fine

    @dataclass
    class OtherToy(MethodConfig):
        name: str = "toy"

    @dataclass
    class Nameless(MethodConfig):
        temperature: float = 0.1

    with pytest.raises(ValueError, match="already registered by ToyMethodConfig"):
        register_method(OtherToy, build_toy)
    with pytest.raises(ValueError, match="@dataclass subclass of MethodConfig"):
        register_method(dict, build_toy)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a default for `name`"):
        register_method(Nameless, build_toy)
    with pytest.raises(ValueError, match="must be callable"):
        register_method(ToyMethodConfig, "build_toy")  # type: ignore[arg-type]
    assert recipes()["toy"].config is ToyMethodConfig and method_config_class({"name": "toy"}) is ToyMethodConfig


# --------------------------------------------------------------------------------------------- errors


BAD_DICTS: list[tuple[dict[str, Any], str]] = [
    (minimal(optim={"lrr": 0.1}), "unknown key 'optim.lrr' (did you mean 'lr'? known: name, lr, "),
    (minimal(optimizer={"lr": 0.1}), "unknown key 'optimizer' (did you mean 'optim'? known: name, data, "),
    (minimal(optim={"lr": "fast"}), "optim.lr: expected float, got str 'fast'"),
    (minimal(optim={"lr": None}), "optim.lr: expected float, got NoneType None"),
    (minimal(optim={"lr": True}), "optim.lr: expected float, got bool True"),
    (minimal(optim={"lr": float("nan")}), "optim.lr: expected a finite float, got nan"),
    (minimal(data={"batch_size": True}), "data.batch_size: expected int, got bool True"),
    (minimal(trainer={"devices": 1.5}), "trainer.devices: expected int, got float 1.5"),
    (minimal(trainer={"max_epochs": "3"}), "trainer.max_epochs: expected int or null, got str '3'"),
    (minimal(model={"small_stem": "yes please"}), "model.small_stem: expected bool, got str 'yes please'"),
    (minimal(data={"image_size": [28, 28]}), "data.image_size: expected int or null, got list [28, 28]"),
    ({"trainer": {"seed": 1}}, "trainer: set at least one of max_epochs, max_steps, time_budget_minutes (with sev"),
    (minimal(trainer={"precision": "fp8"}), "trainer.precision must be one of auto, 32, bf16, got 'fp8'"),
    (minimal(trainer={"precision": 16}), "trainer.precision: expected str, got int 16"),
    (minimal(trainer={"strategy": "fsdp"}), "trainer.strategy must be one of auto, ddp, got 'fsdp'"),
    (minimal(model={"norm": "layer"}), "model.norm must be one of batch, group, none, got 'layer'"),
    (minimal(model={"backbone": "vit"}), "model.backbone must be one of resnet18, resnet34, resnet50, convnet, resid"),
    (minimal(optim={"name": "rmsprop"}), "optim.name must be one of sgd, adam, adamw, lars, got 'rmsprop'"),
    (minimal(data=5), "data must be a mapping of keys, got int 5"),
    (minimal(method=["simclr"]), "method must be a mapping of keys, got list ['simclr']"),
    (minimal(optim={"lr": 0}), "optim.lr must be > 0, got 0.0"),
    (minimal(optim={"lr": -1e-3}), "optim.lr must be > 0, got -0.001"),
    (minimal(data={"batch_size": 1}), "data.batch_size must be >= 2, got 1"),
    (minimal(trainer={"devices": 0}), "trainer.devices must be >= 1, got 0"),
    (minimal(trainer={"max_steps": 0}), "trainer.max_steps must be >= 1, got 0"),
    (minimal(trainer={"seed": -1}), "trainer.seed must lie in [0, 4294967295], got -1"),
    (minimal(model={"width": 0}), "model.width must be > 0, got 0.0"),
    (minimal(method={"temperature": 0}), "method.temperature must be > 0, got 0.0"),
    (minimal(method={"name": "byol"}), "method.name must be one of "),
    (minimal(method={"name": ["simclr"]}), "method.name must be one of "),
    (minimal(data={"label_fraction": 0}), "data.label_fraction must lie in (0, 1], got 0.0"),
    (minimal(data={"label_fraction": 1.5}), "data.label_fraction must lie in (0, 1], got 1.5"),
    (minimal(augment={"hflip_p": 2}), "augment.hflip_p must lie in [0, 1], got 2.0"),
    (minimal(schedule={"warmup_fraction": 1}), "schedule.warmup_fraction must lie in [0, 1), got 1.0"),
    (minimal(optim={"momentum": 1}), "optim.momentum must lie in [0, 1), got 1.0"),
    (minimal(optim={"nesterov": True}), "optim.nesterov needs optim.name sgd or lars"),
    (minimal(monitor={"knn_k": 0}), "monitor.knn_k must be >= 1, got 0"),
    (minimal(data={"name": "folder"}), "data.path is required when data.name is 'folder' (set data.path=DIR)"),
    (minimal(data={"name": ""}), "data.name must not be empty"),
    (minimal(model={"norm": "group", "sync_batchnorm": True}), "model.sync_batchnorm needs model.norm=batch"),
    (minimal(data={"eval_split": None}), "monitor.knn_every_epochs needs data.eval_split"),
    (minimal(name=""), "name must be a non-empty one-line string"),
    (minimal(name=3), "name: expected str, got int 3"),
    # the keys of the engine, the data sources, the registry's methods and model.init_from
    (minimal(data={"sampler": "nope"}), "data.sampler must be one of shuffle, class_balanced, got 'nope'"),
    (minimal(data={"class_counts": []}), "data.class_counts must be a non-empty list of counts >= 1"),
    (minimal(data={"class_counts": [5, 0]}), "data.class_counts must be a non-empty list of counts >= 1"),
    (minimal(data={"class_counts": 5}), "data.class_counts: expected list of int or null, got int 5"),
    (minimal(data={"class_counts": [5], "label_fraction": 0.5}), "data: set class_counts or label_fraction, not both"),
    (minimal(data={"eval_per_class": 0}), "data.eval_per_class must be >= 1, got 0"),
    (minimal(trainer={"accumulate_grad_batches": 0}), "trainer.accumulate_grad_batches must be >= 1, got 0"),
    (minimal(trainer={"gradient_clip_norm": -1}), "trainer.gradient_clip_norm must be > 0, got -1.0"),
    (minimal(trainer={"gradient_clip_norm": 0}), "trainer.gradient_clip_norm must be > 0, got 0.0"),
    (minimal(trainer={"deterministic": True}), "unknown key 'trainer.deterministic'"),  # a removed dead key
    (minimal(model={"init_from": ""}), "model.init_from must be a run directory or checkpoint file, or null"),
    (minimal(model={"init_from": 3}), "model.init_from: expected str or null, got int 3"),
    (minimal(model={"depth": 0}), "model.depth must be >= 1, got 0"),
    (minimal(model={"backbone": "convnet", "width": 8.5}), "model.width is the channel count of the convnet"),
    (minimal(method={"name": "supervised", "loss": "nope"}), "method.loss must be one of ce, weighted_ce, focal, "),
    (minimal(method={"name": "supervised", "focal_gamma": -1}), "method.focal_gamma must be >= 0, got -1.0"),
    (minimal(method={"name": "supervised", "cb_beta": 1}), "method.cb_beta must lie in [0, 1), got 1.0"),
    (minimal(method={"name": "supervised", "temperature": 0.1}), "unknown key 'method.temperature'"),
    (minimal(method={"name": "supercon", "base_temperature": 0}), "method.base_temperature must be > 0, got 0.0"),
    (minimal(method={"name": "supercon", "supcon_reduction": "x"}), "method.supcon_reduction must be one of "),
    (minimal(method={"name": "directclr", "d0": 0}), "method.d0 must be >= 1, got 0"),
    # own data (folder / npz): labels, the held-out split and its seed
    (minimal(data=OWN), "data.eval_split='test' needs held-out folder data: set data.eval_path=FOLDER or data.eval_f"),
    (minimal(data={**OWN, "name": "npz"}), "needs held-out npz data: set data.eval_path=FILE.npz or data.eval_fracti"),
    (minimal(data={**OWN, "eval_path": "b", "eval_fraction": 0.2}), "data: set eval_path or eval_fraction, not both"),
    (minimal(data={**OWN, "eval_split": None, "eval_path": "b"}), "data.eval_path needs data.eval_split, the held-ou"),
    (minimal(data={**OWN, "eval_fraction": 0}), "data.eval_fraction must lie in (0, 1), got 0.0"),
    (minimal(data={**OWN, "eval_fraction": 1}), "data.eval_fraction must lie in (0, 1), got 1.0"),
    (minimal(data={**OWN, "eval_fraction": 0.2, "split_seed": -1}), "data.split_seed must lie in [0, 4294967295]"),
    (minimal(data={**OWN, "eval_path": "b", "split_seed": 1}), "data.split_seed seeds data.eval_fraction, which is n"),
    (minimal(data={**OWN, "eval_path": ""}), "data.eval_path must not be empty"),
    (minimal(data={**OWN, "labelled": "no"}), "data.labelled: expected bool, got str 'no'"),
    (minimal(data={"eval_fraction": 0.2}), "data.eval_fraction is for folder and npz data; fashion-mnist has its own"),
    (minimal(data={"eval_path": "b"}), "data.eval_path is for folder and npz data; fashion-mnist has its own splits"),
    (minimal(data={"labelled": False}), "data.labelled=false is for folder and npz data; fashion-mnist is always la"),
]


def _one_line_error(call: Any, *args: Any) -> str:
    with pytest.raises(ConfigError) as info:
        call(*args)
    message = str(info.value)
    assert "\n" not in message and message.strip() == message and message
    return message


@pytest.mark.parametrize(("raw", "expected"), BAD_DICTS, ids=[e[:40] for _, e in BAD_DICTS])
def test_bad_values_raise_one_line_config_errors(raw: dict[str, Any], expected: str) -> None:
    assert expected in _one_line_error(config_from_dict, raw)


def test_valid_edges_pass() -> None:
    cfg = config_from_dict(
        minimal(data={"label_fraction": 1, "eval_split": None}, monitor={"knn_every_epochs": 0}, optim={"momentum": 0})
    )
    assert cfg.data.label_fraction == 1.0 and cfg.monitor.knn_every_epochs == 0.0


def test_the_new_keys_accept_their_valid_values() -> None:
    cfg = config_from_dict(
        minimal(
            data={"sampler": "class_balanced", "class_counts": [30, 3], "eval_per_class": 5},
            model={"backbone": "convnet", "width": 16, "depth": 2, "init_from": "runs/stage1"},
            method={"name": "supervised", "loss": "class_balanced", "freeze_encoder": True},
            trainer={"accumulate_grad_batches": 4, "gradient_clip_norm": 1},
        )
    )
    assert (cfg.data.sampler, cfg.data.class_counts, cfg.data.eval_per_class) == ("class_balanced", [30, 3], 5)
    assert (cfg.model.backbone, cfg.model.width, cfg.model.depth) == ("convnet", 16.0, 2)
    assert cfg.model.init_from == "runs/stage1"  # checked when the run is built (tests/train/test_builders.py)
    assert (cfg.trainer.accumulate_grad_batches, cfg.trainer.gradient_clip_norm) == (4, 1.0)
    assert cfg.method == SupervisedConfig(loss="class_balanced", freeze_encoder=True)
    assert config_from_dict(config_to_dict(cfg)) == cfg
    defaults = config_from_dict(minimal())
    assert (defaults.data.sampler, defaults.data.class_counts, defaults.model.init_from) == ("shuffle", None, None)
    assert (defaults.trainer.accumulate_grad_batches, defaults.trainer.gradient_clip_norm) == (1, None)


def test_top_level_that_is_not_a_mapping() -> None:
    assert "a config must be a mapping of sections (data, augment, " in _one_line_error(config_from_dict, [1, 2])


def _write(tmp_path: Path, text: str | bytes, name: str = "x.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_file_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert _one_line_error(load_config, missing) == f"config file not found: {missing}"
    assert "config path is not a file" in _one_line_error(load_config, tmp_path)
    bad = _write(tmp_path, "data:\n  name: [fashion\ntrainer: {max_steps: 1}\n")
    msg = _one_line_error(load_config, bad)
    assert msg.startswith(f"config file {bad} is not valid YAML: ") and "line" in msg
    tabbed = _write(tmp_path, "data:\n\tname: x\n", "tab.yaml")
    assert "is not valid YAML" in _one_line_error(load_config, tabbed)
    listed = _write(tmp_path, "- data\n- model\n", "list.yaml")
    assert f"config file {listed} must hold a mapping of sections (data, " in _one_line_error(load_config, listed)
    binary = _write(tmp_path, b"\xff\xfe\x00junk", "bin.yaml")
    assert f"cannot read config file {binary}: UnicodeDecodeError" in _one_line_error(load_config, binary)
    empty = _write(tmp_path, "# nothing here\n", "empty.yaml")
    assert _one_line_error(load_config, empty).startswith("trainer: set at least one of")
    not_section = _write(tmp_path, "trainer: {max_steps: 1}\noptim: fast\n", "sec.yaml")
    assert "optim must be a mapping of keys, got str 'fast'" in _one_line_error(load_config, not_section)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("a.b", "bad override 'a.b' (expected key=value"),
        ("=3", "bad override '=3' (expected key=value"),
        ("optim..lr=3", "bad override 'optim..lr=3' (expected key=value"),
        ("optim.lr=[1,", "bad override 'optim.lr=[1,': value is not valid YAML: "),
        ("optim.lr.x=1", "bad override 'optim.lr.x=1': optim.lr is not a section"),
        ("optim.momentum.x=1", "optim.momentum: expected float, got dict {'x': 1}"),  # momentum is not in the file
        ("optim.lrr=1", "unknown key 'optim.lrr' (did you mean 'lr'?"),
        ("optimizer.lr=1", "unknown key 'optimizer' (did you mean 'optim'?"),
        ("trainer.precision=fp8", "trainer.precision must be one of auto, 32, bf16, got 'fp8'"),
        ("trainer.max_steps=null", "trainer: set at least one of max_epochs, max_steps, time_budget_minutes"),
        ("optim.lr=fast", "optim.lr: expected float, got str 'fast'"),
        ("method.name=nope", "method.name must be one of "),
        ("name.x=1", "bad override 'name.x=1': name is not a section"),
    ],
)
def test_bad_overrides(override: str, expected: str) -> None:
    assert expected in _one_line_error(load_config, TINY, [override])


def test_a_single_string_override_is_one_override() -> None:
    assert load_config(TINY, "optim.lr=0.5").optim.lr == 0.5  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- agreement with lower floors


def test_choices_and_method_keys_match_the_library() -> None:
    from contrastkit.methods import SimCLR
    from contrastkit.models import BACKBONES
    from contrastkit.models.graph import ACTIVATIONS, GCN_INITS

    assert set(CHOICES[("model", "backbone")]) <= set(BACKBONES)
    assert CHOICES[("model", "activation")] == ACTIVATIONS and CHOICES[("model", "gcn_init")] == GCN_INITS
    simclr_args = inspect.signature(SimCLR).parameters
    for key in ("temperature", "gather_distributed", "projection_dim", "hidden_dim"):
        assert key in simclr_args
    presets_args = inspect.signature(__import__("contrastkit.augment", fromlist=["simclr_views"]).simclr_views)
    for key in ("min_scale", "strength", "hflip_p", "blur"):
        assert key in presets_args.parameters


def test_config_module_does_not_import_torch() -> None:
    code = "import sys, contrastkit.train.config; assert 'torch' not in sys.modules, 'torch imported'"
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
