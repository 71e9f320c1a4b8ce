"""Graph runs from YAML: a graph dataset trains a graph method on the gcn backbone through the engine, and a
config that mixes graph and image parts fails in one line before anything is built."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch_geometric")

from contrastkit.method_registry import ConfigError  # noqa: E402
from contrastkit.train import load_config  # noqa: E402
from contrastkit.train.builders import build_engine  # noqa: E402

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "ariel_fashion_mnist_knn.yaml"
CSBM = ["data.name=csbm", "data.num_nodes=120", "data.knn_k=10", "data.batch_size=60", "trainer.max_steps=2",
        "trainer.progress_bar=false"]  # fmt: skip


def test_a_graph_config_builds_a_gcn_and_trains_on_subgraphs() -> None:
    cfg = load_config(CONFIG, CSBM)
    engine, module, data = build_engine(cfg)
    assert len(data.train) == 120 and data.eval is None and data.train.num_classes == 4
    method = module.method
    assert type(method).__name__ == "ARIEL" and method.backbone.num_layers == 2
    assert method.backbone.in_dim == data.train.num_features and method.backbone.hidden_dim == 128
    engine.run()
    assert int(method.view_steps) == 2 and engine.state.step == 2
    grace = load_config(CONFIG, [*CSBM, "method.name=grace", "data.batch_size=120"])
    assert type(build_engine(grace)[1].method).__name__ == "GRACE"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.backbone=resnet18", "model.activation=prelu"], "do not fit together"),
        (["model.backbone=resnet18"], "model.activation is for model.backbone=gcn"),
        (["data.name=fashion-mnist", "data.eval_split=test", "data.num_nodes=null"], "do not fit together"),
        (["data.name=fashion-mnist", "data.eval_split=test"], "data.num_nodes is for graph data"),
        (["method.name=simclr"], "do not fit together"),
        (["data.eval_split=test"], "no held-out split"),
        (["monitor.online_linear=true"], "online_linear"),
        (["data.image_size=32"], "for image data"),
        (["data.node_features=spectral"], "node_features"),
        (["method.edge_drop=[0.2]"], "two probabilities"),
        (["method.attack_variant=tkdd"], "attack_variant"),
    ],
)
def test_mixed_or_bad_graph_configs_fail_in_one_line(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        load_config(CONFIG, overrides)
    assert "\n" not in str(err.value)


def test_image_configs_refuse_graph_keys() -> None:
    with pytest.raises(ConfigError, match="for graph data"):
        load_config(CONFIG.parent / "simclr_digits.yaml", ["data.num_nodes=100"])


def test_batch_larger_than_the_graph_is_refused() -> None:
    cfg = load_config(CONFIG, [*CSBM, "data.batch_size=500"])
    with pytest.raises(ValueError, match="larger than the 120 nodes"):
        build_engine(cfg)


def test_a_graph_run_evaluates_by_node_classification_and_exports_its_gcn(tmp_path: Path) -> None:
    import torch

    from contrastkit.models import load_backbone
    from contrastkit.train.loop import fit
    from contrastkit.train.run_dir import evaluate_run, export_run, method_of

    run = tmp_path / "run"
    cfg = load_config(CONFIG, [*CSBM, "trainer.max_steps=4"])
    fit(cfg, run, command="test")
    result = evaluate_run(run)
    metrics = result["metrics"]
    assert 0.25 < metrics["node_accuracy"] <= 1 and 0 < metrics["node_accuracy_raw_features"] <= 1
    assert "node_accuracy_random_init" in metrics and "raw features" in (run / "report.md").read_text()
    with pytest.raises(ValueError, match="--protocol node"):
        evaluate_run(run, "knn")
    file = export_run(run, tmp_path / "gcn.pt")
    encoder = load_backbone(file)
    from contrastkit.train.checkpoint import load_training_checkpoint

    checkpoint = load_training_checkpoint(run / "checkpoints" / "last.ckpt")
    method = method_of(load_config(run / "config.yaml"), checkpoint, build_engine(cfg)[2].train)
    graph = build_engine(cfg)[2].train.graph
    with torch.no_grad():
        assert torch.equal(encoder(graph.x, graph.edge_index), method.embed_graph(graph.x, graph.edge_index))
