"""``contrastkit reproduce dcc``: arms, budgets, the declared claims and gates judged on fabricated rows, and a
quick run of a few arms end to end."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from contrastkit.reproduce import get_experiment, run_experiment
from contrastkit.reproduce.claims import judge
from contrastkit.reproduce.experiments._dcc_claims import GATES, HYPOTHESES, MOVED_IPC10
from contrastkit.reproduce.experiments._dcc_report import summary_table
from contrastkit.reproduce.experiments._dcc_setup import (
    DATASETS,
    check_setting,
    condensation_config,
    eval_config,
    make_net_factory,
)
from contrastkit.reproduce.experiments.dcc import EXPERIMENT

_METHODS = ("random", "dc", "dcc", "dsa", "dsac")


def test_registered_with_the_full_grid() -> None:
    experiment = get_experiment("dcc")
    names = [a.name for a in experiment.arms]
    assert len(names) == 5 * 3 * 2 == len(set(names))
    assert names[0] == "random-mnist-ipc1"
    assert {"dsac-clutter-ipc10", "dcc-fashion-mnist-ipc1", "random-clutter-ipc10"} <= set(names)
    assert [a.name for a in experiment.select_arms(["d*-clutter-ipc1"])] == [
        "dc-clutter-ipc1", "dcc-clutter-ipc1", "dsa-clutter-ipc1", "dsac-clutter-ipc1"]  # fmt: skip
    # the shard globs of docs/results.md split the ipc-1 arms into two disjoint halves
    half_a = experiment.select_arms(["random-*-ipc1", "dc-*-ipc1", "dcc-*-ipc1"])
    half_b = experiment.select_arms(["dsa-*-ipc1", "dsac-*-ipc1"])
    assert len(half_a) == 9 and len(half_b) == 6 and not {a.name for a in half_a} & {a.name for a in half_b}
    with pytest.raises(ValueError, match="no arm matches"):
        experiment.select_arms(["dm-*"])


def test_arm_settings_map_to_the_right_switches() -> None:
    setting = {"method": "dsac", "dataset": "mnist", "ipc": 1}
    cfg = condensation_config(setting, quick=False)
    assert cfg.matching == "dcc" and cfg.dsa and "flip" not in cfg.dsa_config.strategy
    assert cfg.resolved_loops() == (10, 5) and cfg.outer_loop == 200 and cfg.outer_warmup == 50  # Lee et al.: 250/1000
    dc = condensation_config({**setting, "method": "dc"}, quick=False)
    assert dc.matching == "dc" and not dc.dsa and dc.resolved_loops() == cfg.resolved_loops()  # same loops
    ipc10 = [condensation_config({**setting, "ipc": 10, "method": m}, quick=False) for m in ("dc", "dcc", "dsa")]
    assert {(c.resolved_loops(), c.outer_loop, c.outer_warmup) for c in ipc10} == {((10, 10), 200, 50)}
    assert condensation_config({**setting, "outer": 40}, quick=False).outer_warmup == 10  # --set outer=40


@pytest.mark.parametrize(
    ("method", "dataset", "augment", "epochs"),
    [
        ("dc", "mnist", "dc", 1000),  # DC's MNIST augmentation: 1,000 epochs (DC/DSA code)
        ("random", "clutter", "dc", 1000),
        ("dsa", "fashion-mnist", "dsa", 1000),
        ("dcc", "fashion-mnist", "none", 300),  # no augmentation: 300
        ("random", "fashion-mnist", "none", 300),
    ],
)
def test_evaluation_epochs_follow_dc_augmentation_rule(method: str, dataset: str, augment: str, epochs: int) -> None:
    cfg = eval_config({"method": method, "dataset": dataset, "ipc": 1}, quick=False)
    assert (cfg.augment, cfg.epochs, cfg.num_nets) == (augment, epochs, 10)
    assert cfg.lr_decay_epoch() == epochs // 2  # the one lr x 0.1 at half, as DC's evaluate_synset
    assert eval_config({"method": method, "dataset": dataset, "ipc": 10}, quick=False).num_nets == 5
    assert eval_config({"method": method, "dataset": dataset, "ipc": 1}, quick=True).epochs == 20


def test_settings_are_checked_and_the_net_is_dc_mnist_convnet() -> None:
    import torch

    with pytest.raises(ValueError, match="unknown dcc setting"):
        check_setting({"method": "dc", "dataset": "mnist", "ipc": 1, "outr": 100})
    with pytest.raises(ValueError, match="must be an int >= 1"):
        check_setting({"method": "dc", "dataset": "mnist", "ipc": 1, "outer": 0})
    with pytest.raises(ValueError, match="unknown method"):
        condensation_config({"method": "dm", "dataset": "mnist", "ipc": 1}, quick=False)
    net = make_net_factory(8, 10)()
    assert net.embed(torch.zeros(2, 1, 28, 28)).shape == (2, 8 * 4 * 4)  # padding 3: 32 -> 16 -> 8 -> 4


def _rows(values: dict[str, list[float]], metric: str = "test_acc") -> list[dict[str, Any]]:
    return [{"arm": arm, "setting": {}, "seed": s, "metrics": {metric: v}}
            for arm, vs in values.items() for s, v in enumerate(vs)]  # fmt: skip


def test_hypotheses_pair_the_arms_of_the_paper() -> None:
    primary = [h for h in HYPOTHESES if h.primary]
    assert {(h.better, h.worse) for h in primary} == {
        (f"{b}-{d}-ipc1", f"{w}-{d}-ipc1") for d in DATASETS for b, w in (("dcc", "dc"), ("dsac", "dsa"))}  # fmt: skip
    assert all(h.metric == "test_acc" and h.margin == 0.01 for h in primary)
    for h in HYPOTHESES:  # a claim compares two arms of one dataset and ipc, and its gates exist
        assert h.better.split("-", 1)[1] == h.worse.split("-", 1)[1]
        assert set(h.gates) <= {g.name for g in GATES}
        dataset = h.better.split("-", 1)[1].rsplit("-", 1)[0]
        if dataset in ("mnist", "clutter") and "random" not in h.better + h.worse:
            assert "dc_anchor_mnist" in h.gates  # no MNIST-digit claim before DC reaches its anchor
        if h.better.endswith("-ipc10"):
            family = "dsa" if h.better.startswith("dsa") else "dc"
            assert f"moved_{dataset}_ipc10_{family}" in h.gates and not h.primary
    (reversed_claim,) = [h for h in HYPOTHESES if h.margin < 0]
    assert (reversed_claim.better, reversed_claim.worse, reversed_claim.margin) == (
        "random-clutter-ipc1", "dc-clutter-ipc1", -0.02)  # fmt: skip
    assert reversed_claim in [h for h in EXPERIMENT.hypotheses] and not reversed_claim.primary


def _ipc1_rows(dc_mnist: float) -> list[dict[str, Any]]:
    """Five seeds where DCC beats DC by ~3 points everywhere, DC at ``dc_mnist`` on MNIST."""
    jitter = [0.0, 0.004, -0.003, 0.002, -0.001]
    means = {"mnist": (0.65, dc_mnist), "fashion-mnist": (0.55, 0.68), "clutter": (0.20, 0.40)}
    values: dict[str, list[float]] = {}
    for dataset, (random, dc) in means.items():
        for method, level in (("random", random), ("dc", dc), ("dcc", dc + 0.03), ("dsa", dc), ("dsac", dc + 0.03)):
            values[f"{method}-{dataset}-ipc1"] = [level + j * (1 + _METHODS.index(method)) for j in jitter]
    return _rows(values)


def _verdicts(rows: list[dict[str, Any]]) -> dict[str, str]:
    return {f"{c.better}>{c.worse}": c.verdict for c in judge(rows, HYPOTHESES, GATES)}


def test_the_mnist_anchor_gates_every_digit_claim() -> None:
    passed = _verdicts(_ipc1_rows(dc_mnist=0.90))
    assert passed["dcc-mnist-ipc1>dc-mnist-ipc1"] == "reproduced"
    assert passed["dsac-clutter-ipc1>dsa-clutter-ipc1"] == "reproduced"
    assert passed["random-clutter-ipc1>dc-clutter-ipc1"] == "not reproduced"  # DC far above random: reversed
    failed = _verdicts(_ipc1_rows(dc_mnist=0.85))  # DC below its 88 % anchor
    for claim in ("dcc-mnist-ipc1>dc-mnist-ipc1", "dsac-mnist-ipc1>dsa-mnist-ipc1", "dcc-clutter-ipc1>dc-clutter-ipc1",
                  "dcc-clutter-ipc1>random-clutter-ipc1"):  # fmt: skip
        assert failed[claim] == "untestable", claim
    assert failed["dcc-fashion-mnist-ipc1>dc-fashion-mnist-ipc1"] == "reproduced"  # its own gate passed
    assert failed["dc-mnist-ipc1>random-mnist-ipc1"] == "reproduced"  # the sanity claim has no gate
    assert failed["dcc-mnist-ipc10>dc-mnist-ipc10"] == "untestable"  # no ipc-10 rows: its gates fail "not run"


def test_fashion_and_clutter_gates_on_fabricated_rows() -> None:
    gates = {g.name: g for g in GATES}
    rows = _rows({"dc-fashion-mnist-ipc1": [0.60, 0.62, 0.64], "random-fashion-mnist-ipc1": [0.55, 0.56, 0.57]})
    passed, evidence = gates["dc_gain_fashion"].check(rows)  # paired gains 0.05, 0.06, 0.07: 6 points on average
    assert passed and "+0.06" in evidence
    assert not gates["dc_gain_fashion"].check(rows[:3] + _rows({"random-fashion-mnist-ipc1": [0.6, 0.6, 0.6]}))[0]
    passed, evidence = gates["clutter_premise"].check(rows)
    assert not passed and evidence.startswith("not run")
    premise = _rows({"random-mnist-ipc1": [0.65, 0.66], "random-clutter-ipc1": [0.50, 0.44]})
    assert not gates["clutter_premise"].check(premise)[0]  # loses 15 and 22 points: 18.5 on average, below 20
    premise = _rows({"random-mnist-ipc1": [0.65, 0.66], "random-clutter-ipc1": [0.40, 0.40]})
    assert gates["clutter_premise"].check(premise)[0]


def test_ipc10_claims_need_sets_that_moved() -> None:
    jitter = [0.0, 0.004, -0.003]
    accuracy = {"dc": 0.93, "dcc": 0.97, "dsa": 0.93, "dsac": 0.97, "random": 0.92}
    rows = _ipc1_rows(dc_mnist=0.90)
    for method, level in accuracy.items():
        change = {"dc": 0.40, "dcc": 0.30, "dsa": 0.30, "dsac": MOVED_IPC10 - 0.1, "random": 0.0}[method]
        for seed, j in enumerate(jitter):
            rows.append(
                {
                    "arm": f"{method}-mnist-ipc10",
                    "setting": {},
                    "seed": seed,
                    "metrics": {"test_acc": level + j * (1 + _METHODS.index(method)), "image_change": change},
                }
            )
    verdicts = _verdicts(rows)
    assert verdicts["dcc-mnist-ipc10>dc-mnist-ipc10"] == "reproduced"  # both moved >= 0.25
    assert verdicts["dsac-mnist-ipc10>dsa-mnist-ipc10"] == "untestable"  # DSAC barely moved: near-random subsets


def test_summary_tables_list_mean_std_per_dataset_and_method() -> None:
    rows = _rows({"dc-mnist-ipc1": [0.80, 0.90], "random-mnist-ipc1": [0.5], "dcc-clutter-ipc10": [0.3, 0.4, 0.5]})
    table = summary_table({"rows": rows}).splitlines()
    assert table[0].startswith("| test accuracy %") and len(table) == 2 + 2  # header, rule, two settings present
    mnist = next(line for line in table if line.startswith("| mnist, ipc 1 |"))
    assert mnist.split(" | ")[1:3] == ["50.0 (1)", "85.0 ± 7.1 (2)"]
    assert "40.0 ± 10.0 (3)" in next(line for line in table if line.startswith("| clutter, ipc 10 |"))
    moved = summary_table({"rows": _rows({"dc-mnist-ipc10": [0.25, 0.35]}, "image_change")}, "image_change")
    assert "| mnist, ipc 10 | - | 0.300 ± 0.071 (2) |" in moved


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, float]:
    from contrastkit.data import DatasetNotInstalledError, load

    try:
        load("mnist", "test")
    except DatasetNotInstalledError:
        pytest.skip("MNIST is not installed")
    out = tmp_path_factory.mktemp("dcc")
    start = time.perf_counter()
    results = run_experiment(EXPERIMENT, seeds=1, quick=True, out=out, command="contrastkit reproduce dcc --quick",
                             arms=["random-mnist-ipc1", "dc-mnist-ipc1", "dcc-mnist-ipc1"],
                             settings={"outer": 1})  # fmt: skip
    return results, out, time.perf_counter() - start


def test_quick_run_is_short_and_writes_results_report_and_figures(
    quick_run: tuple[dict[str, Any], Path, float],
) -> None:
    results, out, seconds = quick_run
    assert seconds < 90, f"a --quick run of 3 arms took {seconds:.0f}s"
    assert [r["arm"] for r in results["rows"]] == ["random-mnist-ipc1", "dc-mnist-ipc1", "dcc-mnist-ipc1"]
    random, dc, dcc = (row["metrics"] for row in results["rows"])
    assert all(0.0 <= m["test_acc"] <= 1.0 for m in (random, dc, dcc))
    assert all(row["setting"]["outer"] == 1 for row in results["rows"])  # --set outer=1 reached every arm
    assert random["condense_seconds"] == 0.0 < dc["condense_seconds"]
    assert random["image_change"] == 0.0 < dc["image_change"] and dcc["image_change"] > 0.0
    assert dc["contrastive_share"] == 0.0 and dcc["contrastive_share"] == 1.0  # warm-up 1 // 4 = 0
    assert json.loads((out / "results.json").read_text())["experiment"] == "dcc"
    assert (out / "plots" / "synthetic_mnist-ipc1.png").stat().st_size > 1000
    assert (out / "plots" / "image_change.png").stat().st_size > 1000
    assert "synthetic_mnist-ipc1.png" in (out / "report.md").read_text()
    assert all(c["verdict"] in ("inconclusive", "untestable") for c in results["claims"])  # one seed: no test


def test_reproduce_command_reports_bad_input_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`contrastkit reproduce dcc` refuses bad arms, merges and settings in one line, exit 2."""
    from contrastkit.cli import main

    bad = [
        ["--arms", "dm-*", "--out", str(tmp_path)],
        ["--arms", "dc-mnist-ipc1", "--out", str(tmp_path / "o"), "--merge", str(tmp_path / "none")],
        ["--arms", "dc-mnist-ipc1", "--out", str(tmp_path / "p"), "--set", "outer"],
        ["--arms", "dc-mnist-ipc1", "--out", str(tmp_path / "q"), "--set", "outer=[1"],
    ]
    for argv in bad:
        assert main(["reproduce", "dcc", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("contrastkit: error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "o" / "results.json").exists()  # a refused merge writes nothing
