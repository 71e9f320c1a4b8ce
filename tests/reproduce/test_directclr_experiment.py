"""`contrastkit reproduce directclr`: arms differ only in what the loss sees and the augmentation, the claims pair
the arms the paper compares, and a tiny run trains, evaluates both spaces and saves the spectra."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

from contrastkit.methods import DirectCLR, SimCLR
from contrastkit.reproduce import artifacts_in, get_experiment, load_artifact_json
from contrastkit.reproduce.arms import arm_config, config_arm_runner
from contrastkit.reproduce.experiments import directclr as exp


def _without(cfg: Any, *sections: str) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    for s in sections:
        d.pop(s)
    return d


def test_arms_cover_the_issue_grid_and_share_everything_but_the_loss_space_and_views() -> None:
    names = {arm.name for arm in get_experiment("directclr").arms}
    for aug in ("weak", "strong"):
        assert {f"mlp-{aug}", f"linear-{aug}", f"none-{aug}"} <= names
        assert {f"directclr-d{d}-{aug}" for d in (16, 32, 64)} <= names  # D/8, D/4, D/2 of D = 128
    assert "random-init" in names
    configs = [arm_config(exp.BASE, arm, seed=1, quick=False) for arm in exp.ARMS]
    shared = _without(configs[0], "method", "augment")
    for cfg in configs:
        assert _without(cfg, "method", "augment") == shared
        assert cfg.method.temperature == 0.1 and cfg.method.negatives == "cross_view"
    assert configs[0].trainer.max_steps == 250 and configs[0].trainer.seed == 1
    assert arm_config(exp.BASE, exp.ARMS[0], 0, True, exp.QUICK).trainer.max_steps == 25
    strong = arm_config(exp.BASE, exp.ARMS[-2], 0, False).augment
    weak = arm_config(exp.BASE, exp.ARMS[0], 0, False).augment
    assert strong.min_scale < weak.min_scale and strong.strength > weak.strength == 0.0


@pytest.mark.parametrize(
    ("space", "cls", "dim"),
    [("mlp", SimCLR, 128), ("linear", SimCLR, 128), ("none", SimCLR, 128), ("directclr-d32", DirectCLR, 32)],
)
def test_each_loss_space_builds_the_right_method(space: str, cls: type, dim: int) -> None:
    from contrastkit.data import ImageDataset
    from contrastkit.train.builders import build_method

    arm = next(a for a in exp.ARMS if a.name == f"{space}-weak")
    cfg = arm_config(exp.BASE, arm, seed=0, quick=True)
    train = ImageDataset(torch.rand(4, 1, 28, 28), None, [], "noise")
    method = build_method(cfg, train).eval()
    assert isinstance(method, cls)
    with torch.no_grad():
        z = method(torch.rand(3, 1, 28, 28))
        r = method.embed(torch.rand(3, 1, 28, 28))
    assert z.shape == (3, dim) and r.shape == (3, exp.FEATURES)


def test_claims_pair_directclr_with_the_linear_projector_and_judge_direction() -> None:
    table: dict[tuple[str, int], dict[str, float]] = {}

    def put(metric: str, values: dict[str, list[float]]) -> None:
        for arm, per_seed in values.items():
            for seed, v in enumerate(per_seed):
                table.setdefault((arm, seed), {})[metric] = v

    put("linear_top1", {f"directclr-d{d}-strong": [0.80, 0.81, 0.82] for d in exp.D0S})
    put("linear_top1", {"linear-strong": [0.70, 0.70, 0.71]})
    for aug in ("weak", "strong"):  # no projector collapses most
        put("erank_representation", {f"none-{aug}": [3.0, 3.1, 3.2], f"linear-{aug}": [6.0, 6.2, 6.1],
                                     f"mlp-{aug}": [9.0, 9.1, 9.3]})  # fmt: skip
    for space in ("none", "linear", "mlp"):  # here strong augmentation has the HIGHER rank: the claim is reversed
        put("erank_loss_space", {f"{space}-strong": [8.0, 8.2, 8.1], f"{space}-weak": [4.0, 4.1, 4.3]})
    rows = [{"arm": arm, "setting": {}, "seed": seed, "metrics": m} for (arm, seed), m in table.items()]
    verdicts = [c.verdict for c in exp.claims(rows)]
    assert verdicts == ["reproduced"] * 3 + ["reproduced"] * 4 + ["not reproduced"] * 3


def test_a_tiny_run_evaluates_both_spaces_and_saves_spectra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("lightning")
    from contrastkit.data import available

    if not any(info.name == "fashion-mnist" and info.installed for info in available()):
        pytest.skip("fashion-mnist is not installed (make data)")
    monkeypatch.setattr(exp, "EVAL_QUICK", (200, 100))
    run = config_arm_runner(exp.BASE, exp.evaluate_arm, ["trainer.max_steps=2"])
    arm = next(a for a in exp.ARMS if a.name == "directclr-d16-strong")
    reference = next(a for a in exp.ARMS if a.name == "random-init")
    with artifacts_in(tmp_path):
        out = run(arm, 0, True)
        init_a = run(reference, 0, True)
        init_b = run(reference, 0, True)
        spectra = load_artifact_json("spectra-directclr-d16-strong-seed0")
    assert out["loss_space_dim"] == 16 and init_a["loss_space_dim"] == exp.FEATURES
    assert len(spectra["representation"]) == exp.FEATURES and len(spectra["loss_space"]) == 16
    assert 1.0 <= out["erank_loss_space"] <= 16.0 and 1.0 <= out["erank_representation"] <= exp.FEATURES
    assert 0.1 < out["linear_top1"] <= 1.0 and 0.1 < out["knn_top1"] <= 1.0
    # the reference arm is the seed's initialisation: deterministic, and its loss space is the representation
    drop = {"seconds"}
    assert {k: v for k, v in init_a.items() if k not in drop} == {k: v for k, v in init_b.items() if k not in drop}
    assert init_a["erank_loss_space"] == pytest.approx(init_a["erank_representation"])
