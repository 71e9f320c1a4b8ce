"""The method registry: every recipe builds and trains from its defaults, a method registered from outside trains
through the same harness (with its own parameter groups), and ``contrastkit train`` runs the supervised recipe."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch import Tensor, nn

from contrastkit import method_registry
from contrastkit.cli import main
from contrastkit.data import Batch, ImageDataset, as_batch
from contrastkit.method_registry import BuildContext, MethodConfig, Recipe, recipes, register_method
from contrastkit.methods import Method, SimCLRConfig, SupervisedClassifier, SupervisedConfig
from contrastkit.train.builders import build_engine, build_method, build_optimizer
from contrastkit.train.checkpoint import load_training_checkpoint
from contrastkit.train.config import Config, config_from_dict, load_config, method_config_class

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny_test.yaml"
BUILT_IN = ("directclr", "simclr", "supercon", "supervised")


def tiny_raw(**method: Any) -> dict[str, Any]:
    """tiny_test.yaml with its method section replaced by ``method`` and a one-step run without monitors."""
    raw = yaml.safe_load(TINY.read_text(encoding="utf-8"))
    raw["method"] = method
    raw["trainer"].update(max_steps=1, checkpoint_every_steps=1)
    raw["monitor"].update(knn_every_epochs=0)
    return raw


def test_the_built_in_recipes_are_registered() -> None:
    registered = recipes()
    assert set(BUILT_IN) <= set(registered)
    for name, recipe in registered.items():
        assert isinstance(recipe, Recipe) and recipe.config().name == name
        assert issubclass(recipe.config, MethodConfig) and method_config_class({"name": name}) is recipe.config
    assert [name for name in BUILT_IN if registered[name].needs_labels] == ["supercon", "supervised"]
    assert method_config_class({}) is SimCLRConfig and isinstance(Config().method, SimCLRConfig)  # the default


def test_every_method_key_is_documented_in_docs_configs_md() -> None:
    """The ``method`` row of docs/configs.md names every built-in method and every key of its section."""
    import dataclasses

    row = next(
        line for line in (ROOT / "docs" / "configs.md").read_text().splitlines() if line.startswith("| `method`")
    )
    built_in = {name: r.config for name, r in recipes().items() if r.config.__module__.startswith("contrastkit.")}
    names = [f"`{name}`" for name in built_in]
    keys = [f"{name}.{f.name}" for name, config in built_in.items() for f in dataclasses.fields(config)]
    assert [n for n in names if n not in row] == [] and [k for k in keys if f"`{k.split('.')[1]}`" not in row] == []


IMAGE_RECIPES = sorted(name for name, recipe in recipes().items() if recipe.inputs == "images")
GRAPH_RECIPES = sorted(name for name, recipe in recipes().items() if recipe.inputs == "graph")


@pytest.mark.parametrize("name", IMAGE_RECIPES)
def test_every_recipe_builds_and_takes_a_training_step_from_its_defaults(name: str) -> None:
    cfg = config_from_dict(tiny_raw(name=name))
    assert cfg.method == recipes()[name].config()  # nothing but the defaults
    engine, module, data = build_engine(cfg)
    assert isinstance(module.method, Method)
    assert len(engine.optimizers) == 2  # the method's and the online probe's (labelled data with an eval split)
    before = {k: v.clone() for k, v in module.method.state_dict().items()}
    state = engine.run()
    assert state.step == 1
    after = module.method.state_dict()
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
    assert any(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point())
    embedding = module.method.embed(data.train.images[:3])
    assert embedding.ndim == 2 and embedding.shape[0] == 3


@pytest.mark.parametrize("name", GRAPH_RECIPES)
def test_every_graph_recipe_builds_and_takes_a_training_step_from_its_defaults(name: str) -> None:
    pytest.importorskip("torch_geometric")
    raw = yaml.safe_load((ROOT / "configs" / "ariel_fashion_mnist_knn.yaml").read_text(encoding="utf-8"))
    raw["method"] = {"name": name}
    raw["data"].update(name="csbm", num_nodes=80, batch_size=40)
    raw["trainer"].update(max_steps=1)
    cfg = config_from_dict(raw)
    assert cfg.method == recipes()[name].config()  # nothing but the defaults
    engine, module, data = build_engine(cfg)
    before = {k: v.clone() for k, v in module.method.state_dict().items()}
    assert engine.run().step == 1
    after = module.method.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point())
    graph = data.train.graph
    assert module.method.embed_graph(graph.x, graph.edge_index).shape == (80, 128)


@pytest.mark.parametrize("name", IMAGE_RECIPES)
def test_recipes_that_need_labels_refuse_unlabelled_data(name: str) -> None:
    cfg = config_from_dict(tiny_raw(name=name))
    unlabelled = ImageDataset(torch.rand(40, 1, 8, 8), None, [], "unlabelled")
    if recipes()[name].needs_labels:
        with pytest.raises(ValueError, match=f"method '{name}' needs labelled training data") as info:
            build_method(cfg, unlabelled)
        assert "\n" not in str(info.value)
    else:
        assert isinstance(build_method(cfg, unlabelled), Method)


def test_the_supervised_recipe_takes_its_classes_and_counts_from_the_training_data() -> None:
    cfg = config_from_dict(tiny_raw(name="supervised", loss="class_balanced", freeze_encoder=True))
    assert cfg.method == SupervisedConfig(loss="class_balanced", freeze_encoder=True)
    labels = torch.tensor([0] * 20 + [1] * 5 + [2] * 15)
    train = ImageDataset(torch.rand(40, 1, 8, 8), labels, ["a", "b", "c"], "toy")
    method = build_method(cfg, train)
    assert isinstance(method, SupervisedClassifier) and method.num_classes == 3 and method.freeze_encoder
    assert method.criterion.weights[1] > method.criterion.weights[2] > method.criterion.weights[0]
    optimizer = build_optimizer(cfg, method)  # a frozen encoder: only the classifier is optimised
    optimised = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert optimised == {id(p) for p in method.classifier.parameters()}


# ------------------------------------------------------------------------------ a method from outside


@dataclass
class ToyConfig(MethodConfig):
    """A method registered by a user: its head trains at ``head_lr_scale`` x optim.lr with its own decay."""

    name: str = "toy_regression"
    head_lr_scale: float = 0.0
    head_weight_decay: float = 0.5


class ToyMethod(nn.Module):
    """Regress the mean pixel from the backbone features; two parameter groups (backbone, head)."""

    def __init__(self, backbone: nn.Module, cfg: ToyConfig) -> None:
        super().__init__()
        self.backbone, self.cfg = backbone, cfg
        self.head = nn.Linear(int(getattr(backbone, "num_features", 0)), 1)

    def make_views(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor]:
        return (images,)

    def embed(self, x: Tensor) -> Tensor:
        return self.backbone(x)

    def training_step(self, batch: Batch | Tensor) -> dict[str, Tensor]:
        (view,) = as_batch(batch).views
        features = self.backbone(view)
        target = view.mean(dim=(1, 2, 3))
        return {"loss": (self.head(features).squeeze(1) - target).pow(2).mean(), "embeddings": features.detach()}

    def parameter_groups(self) -> list[dict[str, Any]]:
        head = {"params": list(self.head.parameters()), "lr_scale": self.cfg.head_lr_scale}
        return [{"params": list(self.backbone.parameters())}, {**head, "weight_decay": self.cfg.head_weight_decay}]


def build_toy(cfg: ToyConfig, ctx: BuildContext) -> ToyMethod:
    return ToyMethod(ctx.backbone, cfg)


@pytest.fixture
def toy_registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The toy method in a copy of the registry (the built-in methods first), restored afterwards."""
    monkeypatch.setattr(method_registry, "_RECIPES", dict(recipes()))
    register_method(ToyConfig, build_toy)
    yield


def test_a_method_registered_from_outside_trains_with_its_parameter_groups(toy_registered: None) -> None:
    raw = tiny_raw(name="toy_regression", head_weight_decay=0.25)
    raw["trainer"].update(max_steps=3)
    raw["optim"].update(name="sgd", lr=0.05, weight_decay=1e-4)
    cfg = config_from_dict(raw)
    assert cfg.method == ToyConfig(head_weight_decay=0.25)
    engine, module, _ = build_engine(cfg)
    method = module.method
    assert isinstance(method, ToyMethod)
    groups = engine.optimizers[0].param_groups
    head = {id(p) for p in method.head.parameters()}
    # exclude_bias_and_norm splits each group into weights (decay) and biases / norms (no decay)
    for group in groups:
        in_head = {id(p) for p in group["params"]} <= head
        assert group["lr"] == (0.0 if in_head else 0.05)
        assert group["weight_decay"] == (0.0 if group["params"][0].ndim <= 1 else 0.25 if in_head else 1e-4)
    assert sum(len(g["params"]) for g in groups) == len(list(method.parameters()))
    head_before = [p.detach().clone() for p in method.head.parameters()]
    backbone_before = [p.detach().clone() for p in method.backbone.parameters()]
    engine.run()
    assert all(torch.equal(p, b) for p, b in zip(method.head.parameters(), head_before, strict=True))
    assert any(not torch.equal(p, b) for p, b in zip(method.backbone.parameters(), backbone_before, strict=True))


def test_an_unregistered_method_name_lists_the_registered_ones(toy_registered: None) -> None:
    with pytest.raises(ValueError, match="method.name must be one of ") as info:
        load_config(TINY, ["method.name=byol"])
    assert all(name in str(info.value) for name in (*BUILT_IN, "toy_regression")) and "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------- the CLI


def test_contrastkit_train_runs_the_supervised_recipe_with_the_focal_loss(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "focal"
    overrides = ["method.name=supervised", "method.loss=focal", "trainer.max_steps=2", "data.eval_split=null"]
    assert main(["train", str(TINY), "--out", str(run), "--set", *overrides, "monitor.knn_every_epochs=0"]) == 0
    assert "done: " in capsys.readouterr().out
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["method"] == {
        "name": "supervised",
        "loss": "focal",
        "focal_gamma": 2.0,
        "cb_beta": 0.999,
        "freeze_encoder": False,
    }
    checkpoint = load_training_checkpoint(run / "checkpoints" / "last.ckpt")
    assert checkpoint["step"] == 2 and checkpoint["config"]["method"]["loss"] == "focal"
    assert any(k.startswith("method.classifier.") for k in checkpoint["model_state"])
    results = json.loads((run / "results.json").read_text())
    assert results["steps"] == 2
    rows = (run / "metrics.csv").read_text().splitlines()
    assert "loss" in rows[0].split(",") and len(rows) == 3


def test_a_classifier_method_gets_held_out_classifier_metrics_from_the_monitors(tmp_path: Path) -> None:
    """Methods with predict() (the supervised recipe) are scored on the held-out split: accuracy, balanced accuracy
    and macro-F1 of their own classifier, each with its protocol, and they agree with a recomputation."""
    import torch

    from contrastkit.evaluate import imbalanced_classification_report
    from contrastkit.train import load_config
    from contrastkit.train.builders import build_data
    from contrastkit.train.run_dir import method_of

    run = tmp_path / "clf"
    overrides = ["method.name=supervised", "trainer.max_steps=3", "optim.lr=1e-2"]
    assert main(["train", str(TINY), "--out", str(run), "--set", *overrides]) == 0
    results = json.loads((run / "results.json").read_text())
    metrics = results["metrics"]
    for name in ("classifier_accuracy", "classifier_balanced_accuracy", "classifier_macro_f1"):
        assert 0.0 <= metrics[name] <= 1.0 and "predict" in results["protocols"][name]
    cfg = load_config(run / "config.yaml")
    data = build_data(cfg)
    method = method_of(cfg, load_training_checkpoint(run / "checkpoints" / "last.ckpt"), data.train)
    with torch.no_grad():
        logits = method.predict(data.eval.images)
    report = imbalanced_classification_report(data.eval.labels, torch.softmax(logits, dim=1))
    assert metrics["classifier_accuracy"] == pytest.approx(report["accuracy"], abs=1e-6)
    # SimCLR has no classifier: no such metric
    simclr = tmp_path / "simclr"
    assert main(["train", str(TINY), "--out", str(simclr), "--set", "trainer.max_steps=1"]) == 0
    assert "classifier_accuracy" not in json.loads((simclr / "results.json").read_text())["metrics"]
