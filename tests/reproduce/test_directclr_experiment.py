"""`contrastkit reproduce directclr` (digits variant): arms differ only in what the loss sees, the depth and the
noise; the hypotheses pair the arms the paper compares and their gates judge the premise; a tiny run trains,
evaluates both spaces and saves the spectra."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

from contrastkit.methods import DirectCLR, SimCLR
from contrastkit.reproduce import artifacts_in, load_artifact_json
from contrastkit.reproduce.arms import arm_config
from contrastkit.reproduce.claims import judge
from contrastkit.reproduce.experiments import _directclr_claims as claims
from contrastkit.reproduce.experiments import directclr as exp

EXPERIMENT = exp.EXPERIMENT


def _without(cfg: Any, *keys: str) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    for key in keys:
        section, _, name = key.partition(".")
        if name:
            d[section].pop(name)
        else:
            d.pop(section)
    return d


def test_arms_cover_the_grid_and_share_everything_but_the_loss_space_depth_and_noise() -> None:
    names = [arm.name for arm in EXPERIMENT.arms]
    spaces = ["mlp", "linear", "none", "directclr-d16", "directclr-d32", "directclr-d64"]  # D0s: D/8, D/4, D/2
    assert names == [f"{s}-{setting}" for setting in ("weak", "deep", "strong") for s in spaces] + ["random-init"]
    configs = {arm.name: arm_config(exp.BASE, arm, seed=1, quick=False) for arm in exp.ARMS}
    shared = _without(configs["mlp-weak"], "method", "model.depth", "augment.noise_std")
    for cfg in configs.values():
        assert _without(cfg, "method", "model.depth", "augment.noise_std") == shared
        assert cfg.method.temperature == 0.1 and cfg.method.negatives == "cross_view"
    base = configs["mlp-weak"]
    assert (base.data.name, base.data.batch_size, base.trainer.max_steps, base.trainer.seed) == ("digits", 256, 750, 1)
    assert (base.optim.name, base.optim.lr, base.optim.exclude_bias_and_norm) == ("lars", 0.3, True)
    assert base.optim.lr == pytest.approx(4.8 * 256 / 4096)
    assert base.schedule.warmup_fraction * 750 == pytest.approx(50) and base.schedule.final_lr_fraction == 0.001
    assert (base.model.backbone, base.model.width, base.model.norm, base.model.zero_init_residual) == (
        "residual_mlp", 128, "batch", True)  # fmt: skip
    assert (base.model.projection_dim, base.model.hidden_dim, base.augment.preset) == (32, 128, "noise")
    setting = {s: (configs[f"none-{s}"].model.depth, configs[f"none-{s}"].augment.noise_std) for s in exp.SETTINGS}
    assert setting == {"weak": (2, 0.1), "deep": (4, 0.1), "strong": (4, 0.5)}
    assert arm_config(exp.BASE, exp.ARMS[0], 0, True, exp.QUICK).trainer.max_steps == 10


def test_an_epoch_is_five_full_batches_so_750_steps_are_150_epochs() -> None:
    from contrastkit.train.builders import build_engine

    cfg = arm_config(exp.BASE, exp.ARMS[0], seed=0, quick=False)
    engine, _, data = build_engine(cfg)
    assert len(data.train) == 1347 and len(data.eval) == 450
    assert engine.max_steps == 750 == 150 * engine.source.num_batches(256)


@pytest.mark.parametrize(
    ("space", "cls", "dim"),
    [("mlp", SimCLR, 32), ("linear", SimCLR, 32), ("none", SimCLR, 128), ("directclr-d32", DirectCLR, 32)],
)
def test_each_loss_space_builds_the_right_method(space: str, cls: type, dim: int) -> None:
    from contrastkit.data import ImageDataset
    from contrastkit.train.builders import build_method

    arm = next(a for a in exp.ARMS if a.name == f"{space}-strong")
    train = ImageDataset(torch.rand(4, 1, 8, 8), None, [], "noise")
    method = build_method(arm_config(exp.BASE, arm, seed=0, quick=True), train).eval()
    assert isinstance(method, cls) and len(method.backbone.blocks) == 4
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        assert method(x).shape == (3, dim) and method.embed(x).shape == (3, exp.FEATURES)


def _rows(values: dict[str, dict[str, list[float]]]) -> list[dict[str, Any]]:
    table: dict[tuple[str, int], dict[str, float]] = {}
    for metric, arms in values.items():
        for arm, per_seed in arms.items():
            for seed, v in enumerate(per_seed):
                table.setdefault((arm, seed), {})[metric] = v
    return [{"arm": arm, "setting": {}, "seed": seed, "metrics": m} for (arm, seed), m in table.items()]


def test_primary_hypotheses_pair_the_paper_arms_and_the_premise_gate_decides_testability() -> None:
    primary = [h for h in EXPERIMENT.hypotheses if h.primary]
    assert [(h.metric, h.better, h.worse) for h in primary] == [
        ("linear_top1", "directclr-d32-strong", "linear-strong"),
        (claims.LIVE, "linear-strong", "none-strong"),
        (claims.LIVE, "mlp-strong", "none-strong"),
        (claims.LIVE, "none-deep", "none-strong"),
    ]
    assert [h.gates for h in primary] == [("probe_sees_training_strong",)] + [("collapse_seen_strong",)] * 3
    assert primary[0].margin == 0.005 and all(h.margin == 1.0 for h in primary[1:])
    live = {"random-init": [6.0, 6.0, 7.0], "none-strong": [15.0, 16.0, 15.0], "linear-strong": [6.0, 8.0, 7.0],
            "mlp-strong": [9.0, 8.0, 9.0], "none-deep": [1.0, 2.0, 0.0]}  # fmt: skip
    top1 = {
        "directclr-d32-strong": [0.970, 0.975, 0.972],
        "linear-strong": [0.960, 0.962, 0.961],
        "random-init": [0.93, 0.94, 0.935],
    }
    higher = {m.name: m.higher_is_better for m in EXPERIMENT.metrics}
    judged = judge(_rows({claims.LIVE: live, "linear_top1": top1}), primary, EXPERIMENT.gates, higher_is_better=higher)
    assert [c.verdict for c in judged] == ["reproduced"] * 4
    # the premise is not met when no trained arm collapses beyond the untrained network (here every live count is
    # at most random-init's + 1): the collapse claims are untestable, the accuracy claim is still judged
    flat = {arm: [min(v, 7.0) for v in values] for arm, values in live.items()}
    judged = judge(_rows({claims.LIVE: flat, "linear_top1": top1}), primary, EXPERIMENT.gates, higher_is_better=higher)
    assert [c.verdict for c in judged] == ["reproduced"] + ["untestable"] * 3
    assert "collapse_seen_strong" in judged[1].failed_gates
    # a probe that cannot tell trained from untrained features (random-init within 1 point) cannot judge accuracy
    saturated = {**top1, "random-init": [0.965, 0.97, 0.968]}
    judged = judge(_rows({claims.LIVE: live, "linear_top1": saturated}), primary, EXPERIMENT.gates,
                   higher_is_better=higher)  # fmt: skip
    assert [c.verdict for c in judged] == ["untestable"] + ["reproduced"] * 3
    assert judged[0].failed_gates == ("probe_sees_training_strong",)
    no_reference = _rows({claims.LIVE: {"none-strong": [15.0, 16.0, 15.0]}})
    gate = next(g for g in EXPERIMENT.gates if g.name == "collapse_seen_strong")
    assert gate.check(no_reference)[0] is False and gate.check(no_reference)[1].startswith("not run")


def test_every_hypothesis_names_arms_of_one_comparison() -> None:
    for h in EXPERIMENT.hypotheses:
        assert h.better != h.worse and h.better.rsplit("-", 1)[0] != "random"
        same_setting = h.better.rsplit("-", 1)[1] == h.worse.rsplit("-", 1)[1]
        same_space = h.better.rsplit("-", 1)[0] == h.worse.rsplit("-", 1)[0]
        assert same_setting != same_space, h.claim  # exactly one factor differs
        if not same_setting:  # settings compared: they differ in one factor only (noise, or depth)
            pair = {h.better.rsplit("-", 1)[1], h.worse.rsplit("-", 1)[1]}
            assert pair in ({"deep", "strong"}, {"weak", "deep"}), h.claim


def test_a_tiny_run_evaluates_both_spaces_and_saves_spectra(tmp_path: Path) -> None:
    pytest.importorskip("lightning")
    arms = {a.name: a for a in exp.ARMS}
    threads = torch.get_num_threads()
    with artifacts_in(tmp_path):
        out = exp.run(arms["directclr-d16-strong"], 0, True)
        init_a = exp.run(arms["random-init"], 0, True)
        init_b = exp.run(arms["random-init"], 0, True)
        spectra = load_artifact_json("spectra-directclr-d16-strong-seed0")
    assert set(out) == {m.name for m in EXPERIMENT.metrics}
    assert out["loss_space_dim"] == 16 and init_a["loss_space_dim"] == exp.FEATURES
    assert len(spectra["representation"]) == exp.FEATURES and len(spectra["loss_space"]) == 16
    assert 1.0 <= out["erank_loss_space"] <= 16.0 and 1.0 <= out["erank_representation"] <= exp.FEATURES
    assert 0.5 < out["linear_top1"] <= 1.0 and 0.5 < out["knn_top1"] <= 1.0
    assert out["collapsed_live_dims_representation"] == (
        out["collapsed_dims_representation"] - out["dead_units_representation"])  # fmt: skip
    # the reference arm is the seed's initialisation: deterministic, and its loss space is the representation
    drop = {"seconds"}
    assert {k: v for k, v in init_a.items() if k not in drop} == {k: v for k, v in init_b.items() if k not in drop}
    assert init_a["erank_loss_space"] == pytest.approx(init_a["erank_representation"])
    assert torch.get_num_threads() == threads  # the one-thread run restores the pool
