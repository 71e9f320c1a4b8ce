"""`contrastkit reproduce supercon`: arms as config overlays, the learning-rate search, the re-fit head protocol end
to end, the declared claims and gates, and the summary."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import pytest
import torch

from contrastkit.data import ImageDataset
from contrastkit.reproduce import Arm, get_experiment, run_experiment
from contrastkit.reproduce.arms import arm_config
from contrastkit.reproduce.claims import judge
from contrastkit.reproduce.experiments import _supercon_arms as arms
from contrastkit.reproduce.experiments import _supercon_search as search
from contrastkit.reproduce.experiments import supercon as sc
from contrastkit.reproduce.experiments._supercon_report import headline, summary_tables
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


def _stage(arm: Arm, quick: bool) -> Any:
    """The config that trains ``arm``'s encoder (stage 1 for the SupCon arms)."""
    if arm.setting["kind"] != "supercon":
        return arm_config("supercon", arm, 3, quick)
    stage1 = Arm("s1", {"overrides": arm.setting["stage1"], "overrides_quick": arm.setting["stage1_quick"]})
    return arm_config("supercon", stage1, 3, quick)


def test_arms_profiles_and_settings() -> None:
    exp = get_experiment("supercon")
    assert len(exp.arms) == 9 * 4 and {a.name for a in exp.arms} == {
        f"{m}-{p}" for m in arms.METHODS for p in ("exp10", "exp50", "exp100", "ham")
    }
    settings = {a.name: a.setting for a in exp.arms}
    assert {settings[f"{m}-ham"]["head_loss"] for m in arms.SUPERCON_HEADS} == {
        "ce", "weighted_ce", "focal", "class_balanced"
    }  # fmt: skip
    assert settings["supercon_cb-ham"]["head_loss"] == "class_balanced"
    assert settings["focal-ham"]["head_loss"] == "focal"
    assert settings["random_init-ham"]["train"] is False and settings["random_init-ham"]["head_loss"] == "weighted_ce"
    assert arms.profile_counts("ham", quick=False) == [3353, 557, 550, 257, 164, 71, 58]
    exp100 = arms.profile_counts("exp100", quick=False)
    assert len(exp100) == 10 and exp100[0] == 1000 and exp100[-1] == 10
    with pytest.raises(ValueError, match="unknown profile"):
        arms.profile_counts("exp", quick=True)


@pytest.mark.parametrize("quick", [False, True])
def test_arms_differ_from_the_base_only_in_method_data_epochs_and_lr(quick: bool) -> None:
    budget = "quick" if quick else "full"
    shared, stage1 = None, {}
    for arm in get_experiment("supercon").arms:
        cfg = _stage(arm, quick)
        profile = arm.setting["profile"]
        assert cfg.data.class_counts == arms.profile_counts(profile, quick) and cfg.trainer.seed == 3
        assert cfg.data.eval_per_class == arms.TEST_PER_CLASS[budget]
        assert cfg.trainer.max_epochs == arms.EPOCHS[budget]  # every encoder: the same passes
        assert cfg.optim.lr == pytest.approx(arm.setting.get("lr", arms.BASE_LR))
        rest = dataclasses.asdict(cfg)
        rest = {k: v for k, v in rest.items() if k not in ("method", "data", "trainer")}
        rest["optim"].pop("lr")
        shared = shared or rest
        assert rest == shared
        kind = arm.setting["kind"]
        if kind == "supercon":
            assert cfg.method.name == "supercon" and cfg.method.temperature == 0.1
            assert stage1.setdefault(profile, arm.setting["stage1"]) == arm.setting["stage1"]  # one shared stage 1
        else:
            assert cfg.method.name == "supervised" and cfg.method.loss == arm.setting["head_loss"]


def test_learning_rates_come_from_the_search_record(tmp_path: Path) -> None:
    path = tmp_path / "search.yaml"
    search.write_record(path, "ham", {"chosen": {"stage1": 2.0, "weighted_ce": 0.5}, "scores": {}})
    search.write_record(path, "exp100", {"chosen": {"ce": 1.0}})
    record = arms.load_lr_search(path)
    assert set(record) == {"ham", "exp100"}  # the second write kept the first profile
    stage1 = arms._arm("supercon_cb", "ham", record).setting
    assert stage1["lr"] == pytest.approx(0.1) and stage1["lr_source"] == "search" and "optim.lr=0.1" in stage1["stage1"]
    assert arms._arm("weighted_ce", "ham", record).setting["lr"] == pytest.approx(0.025)
    assert arms._arm("ce", "ham", record).setting["lr_source"] == "not searched (base lr)"
    quick = arms._arm("ce", "exp100", {"exp100": {"chosen": {"ce": 2.0}, "quick": True}}).setting
    assert quick["lr_source"] == "search (quick)" and quick["lr"] == pytest.approx(0.1)  # fails the lr_searched gate
    assert "lr" not in arms._arm("random_init", "ham", record).setting
    (tmp_path / "bad.yaml").write_text("ham: 3\n")
    with pytest.raises(ValueError, match="not a learning-rate search record"):
        arms.load_lr_search(tmp_path / "bad.yaml")


def test_search_scores_every_encoder_and_lr_on_the_validation_carve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(builders, "build_data", _toy_data)
    monkeypatch.setattr(search, "ENCODERS", ("stage1", "weighted_ce"))
    monkeypatch.setattr(search, "LR_SCALES", (1.0, 2.0))
    record = search.search_profile("ham", tmp_path / "work", quick=True, extra=tuple(TINY))
    assert set(record["chosen"]) == {"stage1", "weighted_ce"}
    assert (record["fit_images"], record["val_images"]) == (34, 8)  # 5 + 2 + 1 of 24 : 12 : 6 held out
    for encoder, scores in record["scores"].items():
        best = max(scores.values())
        assert scores[f"{record['chosen'][encoder]:g}"] == best
    cached = sorted(p.name for p in (tmp_path / "work").iterdir())
    assert len(cached) == 4 and cached[0] == "ham-stage1-x1-quick.json"
    assert search.search_profile("ham", tmp_path / "work", quick=True) == record  # resumed from the cache


def test_search_cli_refuses_a_quick_run_into_the_shipped_record() -> None:
    with pytest.raises(SystemExit):
        search.main(["--quick", "--profiles", "ham"])


def test_search_picks_the_best_scale_and_breaks_ties_towards_the_base_lr(tmp_path: Path) -> None:
    scores = {"stage1": {0.5: 0.8, 1.0: 0.8, 2.0: 0.7}, "ce": {0.5: 0.9, 1.0: 0.8, 2.0: 0.85},
              "weighted_ce": {0.5: 0.6, 1.0: 0.7, 2.0: 0.7}, "focal": {0.5: 0.5, 1.0: 0.5, 2.0: 0.9},
              "class_balanced": {0.5: 0.7, 1.0: 0.6, 2.0: 0.7}}  # fmt: skip
    for encoder, by_scale in scores.items():
        for scale, score in by_scale.items():
            cached = {"score": score, "fit_images": 80, "val_images": 20, "seconds": 1.0}
            (tmp_path / f"exp50-{encoder}-x{scale:g}.json").write_text(json.dumps(cached))
    record = search.search_profile("exp50", tmp_path)  # every candidate is cached: nothing trains
    assert record["chosen"] == {"stage1": 1.0, "ce": 0.5, "weighted_ce": 1.0, "focal": 2.0, "class_balanced": 0.5}
    assert record["scores"]["ce"] == {"0.5": 0.9, "1": 0.8, "2": 0.85} and record["seconds"] == 15.0


def test_claims_pair_arms_of_one_profile_with_the_declared_margins_and_gates() -> None:
    exp = get_experiment("supercon")
    primary = [h for h in exp.hypotheses if h.primary]
    assert len(primary) == 4 and all(h.metric == "macro_f1" and h.margin == 0.01 for h in primary)
    claimed, baselines = ("supercon_weighted_ce", "supercon_cb"), ("weighted_ce", "class_balanced")
    assert {(h.better, h.worse) for h in primary} == {(f"{c}-ham", f"{b}-ham") for c in claimed for b in baselines}
    for h in exp.hypotheses:
        profile = h.better.rsplit("-", 1)[1]
        assert h.worse.endswith(f"-{profile}") and h.claim.startswith(f"{profile}: ")
        assert set(h.gates) >= {f"lr_searched-{profile}", f"anchor-{profile}", f"heads_converged-{profile}"}
        assert (f"own_heads_converged-{profile}" in h.gates) == (h.metric == "own_macro_f1")
        assert h.margin == (0.005 if h.metric == "auc_macro_ovr" else 0.01)
    assert len(exp.hypotheses) == 4 + 12 + 16 + 8 + 8


def _rows(gain: dict[str, float], random_init: float = 0.5, noise: float = 0.005) -> list[dict[str, Any]]:
    """Synthetic finished rows on 5 seeds; ``gain[method]`` is added to the macro-F1 of a 0.7 baseline."""
    rng = random.Random(0)
    rows = []
    for seed in range(5):
        for arm in get_experiment("supercon").arms:
            method = arm.setting["method"]
            value = random_init if method == "random_init" else 0.7 + 0.02 * seed + gain.get(method, 0.0)
            value += rng.uniform(-noise, noise)
            metrics = {"macro_f1": value, "auc_macro_ovr": value + 0.2, "own_macro_f1": value, "own_head_gap": 0.0,
                       "head_grad_max": 1e-6}  # fmt: skip
            setting = {**arm.setting, "lr_source": "search"} if "lr" in arm.setting else dict(arm.setting)
            rows.append({"arm": arm.name, "setting": setting, "seed": seed, "metrics": metrics})
    return rows


def test_verdicts_on_fabricated_rows_follow_gains_margins_and_gates() -> None:
    exp = get_experiment("supercon")
    judged = {(c.better, c.worse, c.metric): c for c in judge(_rows({"supercon_cb": 0.04, "supercon_weighted_ce":
              0.004}), exp.hypotheses, exp.gates)}  # fmt: skip
    assert judged[("supercon_cb-ham", "weighted_ce-ham", "macro_f1")].verdict == "reproduced"
    assert judged[("supercon_weighted_ce-ham", "weighted_ce-ham", "macro_f1")].verdict == "not reproduced"  # < margin
    # baselines no better than the untrained encoder: the premise fails, the claims are untestable, not refuted
    anchorless = judge(_rows({"supercon_cb": 0.04}, random_init=0.75), exp.hypotheses, exp.gates)
    assert {c.verdict for c in anchorless} == {"untestable"} and "anchor-ham" in anchorless[0].failed_gates
    unsearched = _rows({"supercon_cb": 0.04})
    for row in unsearched:
        if row["arm"] == "focal-ham":
            row["setting"]["lr_source"] = "not searched (base lr)"
    verdicts = {c.claim.split(":")[0]: c.verdict for c in judge(unsearched, exp.hypotheses, exp.gates)}
    assert verdicts["ham"] == "untestable" and verdicts["exp100"] != "untestable"  # one unsearched arm of ham


def test_tiny_end_to_end_run_writes_results_report_summary_and_plots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(builders, "build_data", _toy_data)
    monkeypatch.setattr(sc, "QUICK", TINY)
    chosen = ["weighted_ce-ham", "supercon_weighted_ce-ham", "supercon_cb-ham", "random_init-ham"]
    results = run_experiment("supercon", seeds=[0], quick=True, out=tmp_path, command="pytest", arms=chosen)
    rows = {r["arm"]: r["metrics"] for r in results["rows"]}
    assert set(rows) == set(chosen)
    assert set(rows["supercon_cb-ham"]) == {m.name for m in sc.METRICS}
    for arm, metrics in rows.items():
        assert metrics["head_grad_max"] <= 1e-5 and metrics["head_l2"] in (1e-5, 1e-4, 1e-3, 1e-2, 1e-1), arm
        if not arm.startswith("weighted_ce"):  # the re-fit head is the arm's own classifier
            assert metrics["own_head_gap"] == 0.0 and metrics["own_macro_f1"] == metrics["macro_f1"]
    # the two SupCon arms share one stage 1 (one exported backbone) and both count its time
    assert sorted(p.name for p in (tmp_path / "artifacts").glob("stage1-*")) == [
        "stage1-ham-seed0.json", "stage1-ham-seed0.pt"
    ]  # fmt: skip
    assert rows["supercon_cb-ham"]["seconds"] >= 0.5 * rows["supercon_weighted_ce-ham"]["seconds"]
    assert {c["verdict"] for c in results["claims"]} == {"untestable"}  # one seed, no search, other profiles absent
    assert (tmp_path / "plots" / "per_class_recall.png").stat().st_size > 1000
    assert (tmp_path / "plots" / "paired_differences.png").stat().st_size > 1000
    report = (tmp_path / "report.md").read_text()
    assert "--out runs/stage1-ham-seed0 # then the frozen-head protocol, loss class_balanced" in report
    summary = (tmp_path / "summary.md").read_text()
    assert "**Headline**" in summary and "**Learning-rate search**" in summary


def test_summary_states_what_was_and_was_not_shown() -> None:
    exp = get_experiment("supercon")
    rows = _rows({"supercon_cb": 0.04})
    judged = judge(rows, exp.hypotheses, exp.gates)
    results = {"rows": rows, "claims": [c.to_dict() for c in judged], "gates": []}
    text = summary_tables(results)
    assert "| method | exp10 | exp50 | exp100 | ham |" in text
    line = next(x for x in text.splitlines() if x.startswith("| supercon_cb − weighted_ce |"))
    assert line.count("(reproduced)") == 4 and line.count("| +3.") + line.count("| +4.") == 4
    top = headline(results)
    assert "2 reproduced" in top and "Not shown: no skin-lesion image" in top
    assert "Shown: ham: SupCon -> class-balanced head beats weighted CE" in top
    record = {"ham": {"chosen": {"stage1": 2.0}, "scores": {"stage1": {"0.5": 0.61, "1": 0.62, "2": 0.655}}}}
    assert "| ham | stage1 | 61.0 | 62.0 | **65.5** |" in summary_tables(results, record)
    partial = summary_tables({"rows": [r for r in rows if r["setting"]["profile"] == "ham"], "claims": []})
    assert "| method | ham |" in partial and "Not judged" in partial and "(not judged)" in partial
