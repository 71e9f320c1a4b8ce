"""`contrastkit reproduce supercon`: arms as config overlays, two engine stages, claims and summary tables."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import pytest
import torch

from contrastkit.data import ImageDataset
from contrastkit.reproduce import Arm, Experiment, get_experiment, run_experiment
from contrastkit.reproduce.arms import arm_config
from contrastkit.reproduce.experiments import _supercon_arms as arms
from contrastkit.reproduce.experiments import supercon as sc
from contrastkit.reproduce.experiments._supercon_report import summary_tables
from contrastkit.train import builders

COUNTS = [24, 12, 6]
TINY = ["data.batch_size=16", "model.width=4"]


def _toy(counts: list[int], seed: int) -> ImageDataset:
    """Class c: a bright 8x8 square at a class-specific place on a noisy 28 x 28 image (easy to separate)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.cat([torch.full((n,), c, dtype=torch.int64) for c, n in enumerate(counts)])
    images = 0.3 * torch.rand(len(labels), 1, 28, 28, generator=g)
    for i, c in enumerate(labels.tolist()):
        images[i, 0, 2 + 8 * c : 10 + 8 * c, 10:18] += 0.7
    return ImageDataset(images.clamp(0, 1), labels, [f"c{c}" for c in range(len(counts))], "toy")


def _toy_data(cfg: Any) -> builders.Data:
    seed = cfg.trainer.seed
    return builders.Data(_toy(COUNTS, seed), _toy([8, 8, 8], 100 + seed))


def test_arms_profiles_and_settings() -> None:
    exp = get_experiment("supercon")
    assert len(exp.arms) == len(arms.METHODS) * len(arms.PROFILES) == 32
    names = {a.name for a in exp.arms}
    for profile in ("exp10", "exp50", "exp100", "ham"):
        for method in ("ce", "weighted_ce", "focal", "class_balanced", "supercon", "supercon_focal"):
            assert f"{method}-{profile}" in names
    settings = {a.name: a.setting for a in exp.arms}
    assert settings["supercon-ham"]["stage2_loss"] == "ce" and settings["supercon-ham"]["freeze_encoder"] is True
    assert settings["supercon_ft-ham"]["freeze_encoder"] is False
    assert {settings[f"{m}-ham"]["stage2_loss"] for m in arms.SUPERCON_ARMS} == {"ce", "focal", "class_balanced"}
    assert arms.profile_counts("ham", quick=False) == [3353, 557, 550, 257, 164, 71, 58]
    exp100 = arms.profile_counts("exp100", quick=False)
    assert len(exp100) == 10 and exp100[0] == 1000 and exp100[-1] == 10
    assert arms.profile_counts("exp10", quick=True)[0] / arms.profile_counts("exp10", quick=True)[-1] == 10
    with pytest.raises(ValueError, match="unknown profile"):
        arms.profile_counts("exp", quick=True)


@pytest.mark.parametrize("quick", [False, True])
def test_every_arm_is_the_base_config_with_method_data_and_epoch_overrides(quick: bool) -> None:
    """Arms differ from the base only in method, data subset and epochs; SuperCon's stages split the budget."""
    budget = "quick" if quick else "full"
    shared = None
    for arm in get_experiment("supercon").arms:
        cfg = arm_config("supercon", arm, 3, quick)
        profile = arm.setting["profile"]
        assert cfg.data.class_counts == arms.profile_counts(profile, quick) and cfg.trainer.seed == 3
        assert cfg.data.eval_per_class == arms.TEST_PER_CLASS[budget]
        rest = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("method", "data", "trainer", "schedule")}
        shared = shared or rest
        assert rest == shared
        assert cfg.method.name == "supervised" and cfg.schedule.warmup_fraction == pytest.approx(
            1 / cfg.trainer.max_epochs
        )
        if "stage1" in arm.setting:
            stage1 = arm_config(
                "supercon",
                Arm("s1", {"overrides": arm.setting["stage1"], "overrides_quick": arm.setting["stage1_quick"]}),
                3,
                quick,
            )
            assert stage1.method.name == "supercon" and stage1.method.temperature == 0.1
            assert stage1.trainer.max_epochs + cfg.trainer.max_epochs == arms.EPOCHS[budget]
            assert cfg.method.loss == arm.setting["stage2_loss"]
            assert cfg.method.freeze_encoder is arm.setting["freeze_encoder"]
        else:
            assert cfg.method.loss == arm.setting["method"] and cfg.trainer.max_epochs == arms.EPOCHS[budget]


def test_tiny_end_to_end_run_writes_results_report_and_plots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(builders, "build_data", _toy_data)
    monkeypatch.setattr(sc, "QUICK", TINY)
    chosen = [a for a in sc.ARMS if a.name in ("ce-ham", "supercon-ham", "supercon_focal-ham")]
    exp = Experiment(
        "supercon-tiny", "test", chosen, sc.METRICS, sc.run, sc.claims, "macro_f1", sc.figures, sc.arm_commands
    )
    results = run_experiment(exp, seeds=1, quick=True, out=tmp_path, command="pytest")
    assert [r["arm"] for r in results["rows"]] == ["ce-ham", "supercon-ham", "supercon_focal-ham"]
    metrics = results["rows"][1]["metrics"]
    assert set(metrics) == {m.name for m in sc.METRICS} and metrics["seconds"] > 0
    # supercon_focal reused supercon's stage 1 (one exported backbone) and still counts its time
    assert sorted(p.name for p in (tmp_path / "artifacts").glob("stage1-*")) == [
        "stage1-ham-seed0.json", "stage1-ham-seed0.pt"
    ]  # fmt: skip
    assert results["rows"][2]["metrics"]["seconds"] >= 0.5 * metrics["seconds"]
    assert len(results["claims"]) == 4 and all(c["verdict"] == "inconclusive" for c in results["claims"])
    assert (tmp_path / "plots" / "per_class_recall.png").stat().st_size > 1000
    assert (tmp_path / "plots" / "paired_differences.png").stat().st_size > 1000
    report = (tmp_path / "report.md").read_text()
    assert "per_class_recall.png" in report and "model.init_from=runs/supercon-ham-stage1-seed0" in report


def _rows(gain: dict[str, float], noise: float = 0.01) -> list[dict[str, Any]]:
    """Synthetic rows: every arm of every profile on 4 seeds; ``gain[method]`` is added to its metrics."""
    rng = random.Random(0)
    rows = []
    for seed in range(4):
        for arm in get_experiment("supercon").arms:
            method = arm.setting["method"]
            base = 0.6 + 0.02 * seed
            value = base + gain.get(method, 0.0) + rng.uniform(-noise, noise)
            rows.append({"arm": arm.name, "setting": dict(arm.setting), "seed": seed,
                         "metrics": {"macro_f1": value, "auc_macro_ovr": value + 0.3}})  # fmt: skip
    return rows


def test_claims_pair_within_each_profile_and_give_verdicts() -> None:
    claims = sc.claims(_rows({"supercon": 0.05, "supercon_focal": -0.05}))
    assert len(claims) == 4 * 2 * 4 * 2  # profiles x claimed arms x baselines x metrics
    for claim in claims:
        expected = "reproduced" if claim.claim.split(": ", 1)[1].startswith("SuperCon (") else "not reproduced"
        assert claim.verdict == expected, claim
        profile = claim.claim.split(":")[0]
        assert f"-{profile} " in claim.evidence and "paired over 4 seeds" in claim.evidence
        other = {"exp10", "exp50", "exp100", "ham"} - {profile}
        assert not any(f"-{p} " in claim.evidence for p in other)
    assert any("macro OvR AUC" in c.claim for c in claims) and any("macro-F1" in c.claim for c in claims)
    # SuperCon identical to every baseline on every seed: a clear null, reported as not reproduced
    assert {c.verdict for c in sc.claims(_rows({}, noise=0.0))} == {"not reproduced"}
    # three seeds of one profile only: 16 claims, all judged on 3 pairs
    few = [r for r in _rows({"supercon": 0.05}) if r["seed"] < 3 and r["setting"]["profile"] == "exp50"]
    judged = sc.claims(few)
    assert len(judged) == 16 and all("paired over 3 seeds" in c.evidence for c in judged)


def test_summary_tables_give_per_profile_means_paired_differences_and_verdicts() -> None:
    rows = [r for r in _rows({"supercon": 0.05, "supercon_focal": -0.05}) if r["seed"] < 3]
    for r in rows:
        r["metrics"].update(balanced_accuracy=0.5, tail3_recall=0.25, seconds=10.0)
    results = {"rows": rows, "claims": [c.to_dict() for c in sc.claims(rows)]}
    text = summary_tables(results)
    assert "| method | exp10 | exp50 | exp100 | ham |" in text
    assert "| tail3_recall" not in text and "| supercon_ft | 25.0 ± 0.0 |" in text
    line = next(x for x in text.splitlines() if x.startswith("| supercon − ce |"))
    assert line.count("(R)") == 4 and line.count("| +") == 4
    line = next(x for x in text.splitlines() if x.startswith("| supercon_focal − focal |"))
    assert line.count("(N)") == 4 and line.count("| -") == 4
    partial = summary_tables({"rows": [r for r in rows if r["setting"]["profile"] == "ham"], "claims": []})
    assert "| method | ham |" in partial and "(not judged)" in partial
