"""``contrastkit reproduce dcc``: arms, claims on known rows, and a quick run of a few arms end to end."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from contrastkit.reproduce import get_experiment, run_experiment
from contrastkit.reproduce.experiments._dcc_report import summary_table
from contrastkit.reproduce.experiments._dcc_setup import condensation_config, eval_config
from contrastkit.reproduce.experiments.dcc import EXPERIMENT, claims


def test_registered_with_the_full_grid() -> None:
    experiment = get_experiment("dcc")
    names = [a.name for a in experiment.arms]
    assert len(names) == 5 * 3 * 2 == len(set(names))
    assert names[0] == "random-mnist-ipc1"
    assert {"dsac-clutter-ipc10", "dcc-fashion-mnist-ipc1", "random-clutter-ipc10"} <= set(names)
    assert [a.name for a in experiment.select_arms(["d*-clutter-ipc1"])] == [
        "dc-clutter-ipc1", "dcc-clutter-ipc1", "dsa-clutter-ipc1", "dsac-clutter-ipc1"]  # fmt: skip
    with pytest.raises(ValueError, match="no arm matches"):
        experiment.select_arms(["dm-*"])


def test_arm_settings_map_to_the_right_switches() -> None:
    setting = {"method": "dsac", "dataset": "mnist", "ipc": 1}
    cfg = condensation_config(setting, quick=False)
    assert cfg.matching == "dcc" and cfg.dsa and "flip" not in cfg.dsa_config.strategy
    assert cfg.resolved_loops() == (10, 5) and cfg.outer_warmup == cfg.outer_loop // 4
    dc = condensation_config({**setting, "method": "dc"}, quick=False)
    assert dc.matching == "dc" and not dc.dsa and dc.resolved_loops() == cfg.resolved_loops()  # same loops
    assert eval_config(setting, quick=False).augment == "dsa"
    assert eval_config({**setting, "method": "dcc"}, quick=False).augment == "dc"
    assert eval_config({**setting, "method": "dcc", "dataset": "fashion-mnist"}, quick=False).augment == "none"
    assert eval_config(setting, quick=False).num_nets >= 10
    ipc10 = [condensation_config({**setting, "ipc": 10, "method": m}, quick=False) for m in ("dc", "dcc", "dsa")]
    assert {c.resolved_loops() for c in ipc10} == {(10, 10)}  # T = 10 at ipc 10 (spec §7.6), the same in every arm


def _rows(values: dict[str, list[float]]) -> list[dict[str, Any]]:
    return [{"arm": arm, "setting": {}, "seed": s, "metrics": {"test_acc": v}}
            for arm, vs in values.items() for s, v in enumerate(vs)]  # fmt: skip


def test_claims_pair_the_arms_of_the_paper() -> None:
    rows = _rows({
        "random-clutter-ipc1": [0.30, 0.32, 0.31], "dc-clutter-ipc1": [0.25, 0.26, 0.24],
        "dcc-clutter-ipc1": [0.40, 0.41, 0.43], "dc-mnist-ipc1": [0.80, 0.81, 0.79],
        "dcc-mnist-ipc1": [0.79, 0.80, 0.78], "random-mnist-ipc1": [0.6, 0.62, 0.61],
    })  # fmt: skip
    judged = claims(rows)

    def verdict(prefix: str) -> str:
        (match,) = [c.verdict for c in judged if c.claim.startswith(prefix)]
        return match

    assert len(judged) == 5
    assert verdict("clutter-ipc1: DCC beats DC") == "reproduced"
    assert verdict("clutter-ipc1: DCC beats random") == "reproduced"
    assert verdict("clutter-ipc1: DC does no better than random") == "reproduced"
    assert verdict("mnist-ipc1: DCC beats DC") == "not reproduced"
    assert verdict("mnist-ipc1: DC beats random") == "reproduced"
    # a clear DC win over random on clutter refutes "DC <= random"
    rows = _rows({"random-clutter-ipc1": [0.3, 0.31, 0.32], "dc-clutter-ipc1": [0.5, 0.52, 0.5]})
    (claim,) = claims(rows)
    assert claim.verdict == "not reproduced"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    from contrastkit.data import DatasetNotInstalledError, load

    try:
        load("mnist", "test")
    except DatasetNotInstalledError:
        pytest.skip("MNIST is not installed")
    out = tmp_path_factory.mktemp("dcc")
    experiment = replace(EXPERIMENT, arms=EXPERIMENT.select_arms(["*-mnist-ipc1"])[:3])
    results = run_experiment(experiment, seeds=1, quick=True, out=out, command="contrastkit reproduce dcc --quick",
                             settings={"outer": 1})  # fmt: skip
    return results, out


def test_quick_run_writes_results_report_and_image_grid(quick_run: tuple[dict[str, Any], Path]) -> None:
    results, out = quick_run
    assert [r["arm"] for r in results["rows"]] == ["random-mnist-ipc1", "dc-mnist-ipc1", "dcc-mnist-ipc1"]
    for row in results["rows"]:
        assert 0.0 <= row["metrics"]["test_acc"] <= 1.0
    assert all(row["setting"]["outer"] == 1 for row in results["rows"])  # --set outer=1 reached every arm
    assert results["rows"][0]["metrics"]["condense_seconds"] == 0.0
    assert results["rows"][1]["metrics"]["condense_seconds"] > 0.0
    assert json.loads((out / "results.json").read_text())["experiment"] == "dcc"
    assert (out / "plots" / "synthetic_mnist-ipc1.png").stat().st_size > 1000
    assert "synthetic_mnist-ipc1.png" in (out / "report.md").read_text()
    assert all(c["verdict"] == "inconclusive" for c in results["claims"])  # one seed: no test


def test_summary_table_lists_mean_std_per_dataset_and_method() -> None:
    rows = _rows({"dc-mnist-ipc1": [0.80, 0.90], "random-mnist-ipc1": [0.5], "dcc-clutter-ipc10": [0.3, 0.4, 0.5]})
    table = summary_table({"rows": rows}).splitlines()
    assert table[0].startswith("| test accuracy %") and len(table) == 2 + 2  # header, rule, two settings present
    mnist = next(line for line in table if line.startswith("| mnist, ipc 1 |"))
    assert mnist.split(" | ")[1:3] == ["50.0 (1)", "85.0 ± 7.1 (2)"]
    assert "40.0 ± 10.0 (3)" in next(line for line in table if line.startswith("| clutter, ipc 10 |"))


def test_reproduce_command_reports_bad_input_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """What the old private dcc command refused, `contrastkit reproduce dcc` refuses in one line, exit 2."""
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
