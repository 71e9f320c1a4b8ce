"""Artifacts and figures of a reproduction: run() saves under out/artifacts, figures() draws after the claims."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contrastkit.reproduce import (
    Arm,
    Experiment,
    Hypothesis,
    Metric,
    artifact_dir,
    artifact_path,
    artifacts_in,
    load_artifact_json,
    run_experiment,
    save_artifact_json,
)
from contrastkit.train.plots import pyplot, save_figure


def _run(arm: Arm, seed: int, quick: bool) -> dict[str, float]:
    curve = [float(arm.setting["slope"]) * i + seed for i in range(5)]
    save_artifact_json(f"{arm.name}-seed{seed}", {"curve": curve})
    return {"score": curve[-1]}


HYPOTHESES = [Hypothesis("b is steeper", "score", "b", "a")]


def _figures(results: dict, directory: Path, quick: bool) -> list[Path]:
    plt = pyplot()
    fig, ax = plt.subplots()
    for row in results["rows"]:
        ax.plot(load_artifact_json(f"{row['arm']}-seed{row['seed']}")["curve"])
    return [save_figure(fig, directory / "plots" / "curves.png")]


def _experiment(figures=_figures) -> Experiment:
    return Experiment(
        name="toy_artifacts",
        description="toy",
        arms=[Arm("a", {"slope": 1}), Arm("b", {"slope": 2})],
        metrics=[Metric("score", "last point of the curve")],
        run=_run,
        hypotheses=HYPOTHESES,
        primary_metric="score",
        figures=figures,
    )


def test_run_artifacts_land_in_the_output_directory_and_figures_are_linked(tmp_path: Path) -> None:
    run_experiment(_experiment(), seeds=2, out=tmp_path, command="pytest")
    saved = sorted(p.name for p in (tmp_path / "artifacts").iterdir())
    assert saved == ["a-seed0.json", "a-seed1.json", "b-seed0.json", "b-seed1.json"]
    assert json.loads((tmp_path / "artifacts" / "b-seed1.json").read_text())["curve"] == [1.0, 3.0, 5.0, 7.0, 9.0]
    assert (tmp_path / "plots" / "curves.png").stat().st_size > 1000
    report = (tmp_path / "report.md").read_text()
    assert "## Figures" in report and "![curves](plots/curves.png)" in report


def test_outside_a_runner_artifacts_go_to_a_temp_dir_and_the_context_restores(tmp_path: Path) -> None:
    outside = artifact_dir()
    assert outside != tmp_path and outside.is_dir()
    with artifacts_in(tmp_path / "inner") as inner:
        assert artifact_dir() == inner == tmp_path / "inner"
        assert artifact_path("a b/c").name == "a_b_c"
    assert artifact_dir() == outside


def test_a_failing_figures_function_keeps_the_judged_results_and_marks_the_report(tmp_path: Path) -> None:
    def broken(results: dict, directory: Path, quick: bool) -> list[Path]:
        raise RuntimeError("no display")

    with pytest.raises(RuntimeError, match="no display"):
        run_experiment(_experiment(broken), seeds=1, out=tmp_path, command="pytest")
    results = json.loads((tmp_path / "results.json").read_text())
    assert len(results["rows"]) == 2 and results["claims"]
    assert "drawing the figures" in (tmp_path / "report.md").read_text()


def test_figures_must_return_existing_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not files"):
        run_experiment(_experiment(lambda r, d, q: [d / "nope.png"]), seeds=1, out=tmp_path, command="pytest")


def test_bad_artifact_names_and_missing_artifacts_are_one_line_errors(tmp_path: Path) -> None:
    with artifacts_in(tmp_path):
        with pytest.raises(ValueError, match="file name"):
            artifact_path("..")
        with pytest.raises(FileNotFoundError, match="did run\\(\\) save 'ghost'"):
            load_artifact_json("ghost")
    with pytest.raises(ValueError, match="figures must be a callable"):
        _experiment(figures="plot.png")  # type: ignore[arg-type]
