"""`contrastkit reproduce hcsc` / `hcsc-digits`: arms differ from the base only in the method's switches, the
claims pair the arms the paper compares under their gates, and a quick run evaluates every arm alike."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

from contrastkit.data.hierarchy import COARSE_GROUPS, coarse_labels
from contrastkit.evaluate import cluster_purity
from contrastkit.reproduce import get_experiment
from contrastkit.reproduce.arms import arm_config
from contrastkit.reproduce.claims import judge
from contrastkit.reproduce.experiments import _hcsc_claims as claims
from contrastkit.reproduce.experiments import _hcsc_setup as setup
from contrastkit.reproduce.runner import run_experiment


@pytest.mark.parametrize("dataset", setup.DATASETS)
def test_arms_share_the_base_and_differ_only_in_the_method(dataset: str) -> None:
    configs = {arm.name: arm_config(f"hcsc_{dataset}", arm, seed=2, quick=False) for arm in setup.ARMS[dataset]}
    shared = {k: v for k, v in dataclasses.asdict(configs[f"moco-{dataset}"]).items() if k != "method"}
    for name, cfg in configs.items():
        assert {k: v for k, v in dataclasses.asdict(cfg).items() if k != "method"} == shared, name
    hcsc, pcl = configs[f"hcsc-zero-{dataset}"].method, configs[f"pcl-{dataset}"].method
    assert (hcsc.name, hcsc.instance_selection, hcsc.prototype_selection) == ("hcsc", True, True)
    assert hcsc.mask_fill == "zero" and hcsc.include_highest_cluster_id is True
    assert (pcl.name, pcl.instance_selection, pcl.prototype_selection, pcl.prototype_loss) == ("pcl", False, False, 1)
    assert configs[f"icsc-neginf-{dataset}"].method.prototype_selection is False
    assert configs[f"icsc-neginf-{dataset}"].method.mask_fill == "neg_inf"
    assert configs[f"pcsc-zero-{dataset}"].method.instance_selection is False
    assert hcsc.num_clusters == setup.HIERARCHY[dataset] and configs[f"moco-{dataset}"].method.name == "moco"
    base = configs[f"moco-{dataset}"]
    assert base.method.queue_size % base.data.batch_size == 0 and base.trainer.seed == 2


def test_fashion_subset_is_stratified_and_the_coarse_groups_partition_the_classes() -> None:
    cfg = arm_config("hcsc_fashion", setup.ARMS["fashion"][0], seed=0, quick=False)
    assert cfg.data.class_counts == [1000] * 10 and cfg.trainer.max_steps == 30 * (10_000 // 256)
    groups = COARSE_GROUPS["fashion-mnist"]
    assert sorted(c for g in groups for c in g) == list(range(10))
    fine = torch.tensor([0, 2, 4, 6, 1, 3, 5, 7, 9, 8])
    assert coarse_labels(fine, groups).tolist() == [0, 0, 0, 0, 1, 2, 3, 3, 3, 4]
    with pytest.raises(ValueError, match="in no coarse group"):
        coarse_labels(torch.tensor([0, 10]), groups)


def test_cluster_purity_counts_majority_labels() -> None:
    assignments, labels = torch.tensor([0, 0, 0, 1, 1, 2]), torch.tensor([5, 5, 6, 6, 6, 7])
    assert cluster_purity(assignments, labels) == pytest.approx(5 / 6)
    assert cluster_purity(torch.zeros(6, dtype=torch.long), labels) == pytest.approx(3 / 6)


def _rows(dataset: str, gap_hcsc: float, gap_random: float, knn_gain: float) -> list[dict[str, Any]]:
    rows = []
    for seed in range(5):
        for arm in setup.ARMS[dataset]:
            method = arm.name.rsplit("-", 1)[0]
            gap = {"hcsc-zero": gap_hcsc, "random-init": gap_random}.get(method, 0.0)
            knn = 0.80 + (knn_gain if method == "hcsc-zero" else 0.0) - (0.1 if method == "random-init" else 0)
            metrics = {m.name: 0.5 for m in setup.METRICS[dataset]}
            metrics.update({"knn_top1": knn + 0.001 * seed, "selection_gap_level1": gap + 0.001 * seed})
            rows.append({"arm": arm.name, "seed": seed, "metrics": metrics})
    return rows


def test_selection_claims_are_untestable_when_the_mechanism_is_absent() -> None:
    verdicts = {c.claim: c.verdict for c in judge(_rows("fashion", 0.01, 0.0, 0.02), claims.HYPOTHESES["fashion"],
                                                    claims.GATES["fashion"])}  # fmt: skip
    beats_moco = next(v for k, v in verdicts.items() if k.startswith("HCSC beats MoCo v2 on kNN"))
    assert beats_moco == "untestable"
    working = {c.claim: c.verdict for c in judge(_rows("fashion", 0.2, 0.0, 0.02), claims.HYPOTHESES["fashion"],
                                                   claims.GATES["fashion"])}  # fmt: skip
    assert next(v for k, v in working.items() if k.startswith("HCSC beats MoCo v2 on kNN")) == "reproduced"
    assert next(v for k, v in working.items() if k.startswith("Selection drops")) == "reproduced"


def test_quick_digits_run_evaluates_every_arm_and_draws_the_figures(tmp_path: Path) -> None:
    results = run_experiment(get_experiment("hcsc-digits"), seeds=1, quick=True, out=tmp_path, command="test",
                             arms=["moco-*", "hcsc-zero-*", "random-*"])  # fmt: skip
    rows = {r["arm"]: r["metrics"] for r in results["rows"]}
    assert set(rows) == {"moco-digits", "hcsc-zero-digits", "random-init-digits"}
    assert rows["hcsc-zero-digits"]["kmeans_share"] > 0 == rows["moco-digits"]["kmeans_share"]
    assert all(0 < rows[a]["purity_level1"] <= 1 for a in rows)
    assert (tmp_path / "plots" / "mechanism.png").is_file() and (tmp_path / "plots" / "nmi.png").is_file()
