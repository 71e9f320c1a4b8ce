"""Run records a newcomer can judge: evaluation.json merged by protocol, the evaluation and its baselines in
report.md, the final monitor kNN equal to the evaluate kNN, progress lines, and plots of short runs in words."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from contrastkit.train import plots
from contrastkit.train.builders import build_engine
from contrastkit.train.config import load_config
from contrastkit.train.loop import _loss_rows, fit
from contrastkit.train.progress import Progress, training_status
from contrastkit.train.report import evaluation_summary, read_evaluation, write_run_report
from contrastkit.train.run_dir import evaluate_run, untrained_method

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "configs" / "tiny_test.yaml")
# 2 steps; the whole train split as the kNN memory bank, as `contrastkit evaluate` uses it
SHORT = ["trainer.max_steps=2", "monitor.knn_max_train=null", "trainer.precision=auto"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("records") / "tiny"
    fit(load_config(TINY, SHORT), out, command="test")
    return out


def test_evaluate_merges_by_protocol_and_reaches_the_report(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    knn = evaluate_run(run, "knn", progress=True)
    out = capsys.readouterr().out
    assert "kNN ..." in out and "kNN on the raw pixels:" in out and "evaluation:" in out  # phases, with seconds
    assert set(knn["metrics"]) == {"knn_top1", "knn_top1_random_init", "knn_top1_raw_pixels"}
    evaluate_run(run, "nmi")  # (k-means: quicker than the linear probe's L-BFGS)
    assert capsys.readouterr().out == ""  # the run's trainer.progress_bar is false: quiet
    records = read_evaluation(run)["evaluations"]
    assert set(records) == {"knn", "nmi"}
    assert records["knn"]["last"]["metrics"] == {"knn_top1": knn["metrics"]["knn_top1"]}
    assert set(records["knn"]["last"]["baselines"]["knn_top1"]) == {"random_init", "raw_pixels"}
    assert "baselines" not in records["nmi"]["last"]  # baselines: kNN and linear probe
    evaluate_run(run, "knn", which="best", baselines=False)
    records = read_evaluation(run)["evaluations"]
    assert set(records["knn"]) == {"last", "best"} and "nmi" in records  # replaced nothing, added a record
    report = (run / "report.md").read_text()
    assert report.count("## Evaluation") == 1 and report.count("| knn_top1 | last (2) |") == 1
    assert "| kmeans_nmi | last (2) | " in report and "Baselines: the same protocol" in report


def test_final_monitor_knn_is_the_evaluate_knn(run: Path) -> None:
    """One computation: the same features, bank, queries, k and T, so the same number under the same text."""
    trained = json.loads((run / "results.json").read_text())
    evaluated = evaluate_run(run, "knn", baselines=False)
    assert evaluated["metrics"]["knn_top1"] == trained["metrics"]["knn_top1"]
    assert evaluated["protocols"]["knn_top1"] == trained["protocols"]["knn_top1"]


def test_random_init_baseline_is_the_runs_initial_weights() -> None:
    cfg = load_config(TINY, SHORT)
    _, module, data = build_engine(cfg)
    untrained = untrained_method(cfg, data.train).state_dict()
    initial = module.method.state_dict()
    assert untrained.keys() == initial.keys()
    assert all(torch.equal(untrained[k], initial[k]) for k in initial)


def _evaluation(trained: float, random_init: float) -> dict[str, Any]:
    record = {
        "checkpoint": "last", "step": 80, "metrics": {"knn_top1": trained}, "protocols": {"knn_top1": "kNN (k=200)"},
        "baselines": {"knn_top1": {"random_init": random_init, "raw_pixels": 0.79}},
        "baseline_features": {"random_init": "untrained", "raw_pixels": "pixels"},
    }  # fmt: skip
    return {"run_dir": "r", "evaluations": {"knn": {"last": record}}}


@pytest.mark.parametrize(("trained", "below"), [(0.7524, True), (0.80, False)])
def test_report_says_in_one_line_when_below_random_init(tmp_path: Path, trained: float, below: bool) -> None:
    (tmp_path / "evaluation.json").write_text(json.dumps(_evaluation(trained, 0.767)))
    summary = {"config": "c", "command": "cmd", "metrics": {}, "protocols": {}, "epochs": 0.4}
    text = write_run_report(tmp_path, summary, []).read_text()
    assert f"| knn_top1 | last (80) | {trained:.4f} | 0.7670 | 0.7900 | kNN (k=200) |" in text
    assert ("is below the same method untrained, 76.70 %: training did not help" in text) is below
    printed = evaluation_summary(tmp_path)
    assert "random init (untrained) 76.70 %, raw pixels 79.00 %" in printed
    assert ("BELOW" in printed) is below


def test_old_flat_evaluation_file_is_read_as_records(tmp_path: Path) -> None:
    flat = {"checkpoint": "last", "step": 5, "metrics": {"knn_top1": 0.5, "kmeans_nmi": 0.3},
            "protocols": {"knn_top1": "kNN", "kmeans_nmi": "NMI"}}  # fmt: skip
    (tmp_path / "evaluation.json").write_text(json.dumps(flat))
    records = read_evaluation(tmp_path)["evaluations"]
    assert records["knn"]["last"]["metrics"] == {"knn_top1": 0.5} and records["nmi"]["last"]["step"] == 5


def _figure(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The figures the plot functions draw, instead of PNG files."""
    drawn: list[Any] = []

    def keep(fig: Any, path: str | Path) -> Path:
        drawn.append(fig)
        return Path(path)

    monkeypatch.setattr(plots, "save_figure", keep)
    return drawn


def _rows(epochs: int, steps_per_epoch: int = 10, monitor_every: int = 5) -> list[dict[str, float]]:
    rows = [{"step": s, "epoch": s / steps_per_epoch, "loss": 5.0 / s} for s in range(1, epochs * steps_per_epoch + 1)]
    for row in rows:
        if row["step"] % monitor_every == 0:
            row["knn_top1"] = 0.5
    return rows


def test_short_runs_plot_per_step_with_words(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = _figure(monkeypatch)
    plots.plot_metric_over_epochs(_rows(1), "knn_top1", "k.png")
    ax = drawn[-1].axes[0]
    assert ax.get_xlabel() == "optimiser step" and ax.get_ylabel() == "kNN top-1 accuracy (%)"
    assert list(ax.lines[0].get_xdata()) == [5.0, 10.0] and list(ax.lines[0].get_ydata()) == [50.0, 50.0]
    assert "knn_top1" not in ax.get_title() and ax.lines[0].get_marker() == "o"
    assert plots.metric_curve(_rows(8), "knn_top1").x_label == "epoch"  # long runs: per epoch
    single = plots.metric_curve(_rows(1, monitor_every=10), "knn_top1")
    assert single.x == [10] and "one measurement" in single.title
    plots.plot_metric_over_epochs(_rows(1, monitor_every=10), "knn_top1", "k1.png")
    assert drawn[-1].axes[0].texts  # the single point carries its value
    plots.plot_loss_curve(_loss_rows([], [(s, s / 10, torch.tensor(1.0 / s)) for s in range(1, 5)]), "l.png")
    line = drawn[-1].axes[0].lines[0]
    assert list(line.get_xdata()) == [1, 2, 3, 4] and line.get_marker() == "o"


def test_loss_rows_of_a_resumed_short_run_join_the_logged_rows() -> None:
    logged = [{"step": 2, "epoch": 0.2, "loss": 3.0}, {"step": 4, "epoch": 0.4, "loss": 2.0}, {"step": 6, "epoch": 0.6}]
    per_step = [(5, 0.5, torch.tensor(1.5)), (6, 0.6, torch.tensor(1.25))]
    assert [r["step"] for r in _loss_rows(logged, per_step)] == [2, 4, 5, 6]


def test_embedding_legend_names_classes_and_spectrum_matches_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = _figure(monkeypatch)
    g = torch.Generator().manual_seed(0)
    features = torch.randn(40, 6, generator=g) * torch.tensor([3.0, 2.0, 1.0, 1.0, 0.5, 0.1])
    plots.plot_embedding_map(features, torch.arange(40) % 2, "m.png", class_names=["T-shirt", "Trouser"])
    assert [t.get_text() for t in drawn[-1].axes[0].get_legend().get_texts()] == ["T-shirt", "Trouser"]
    from contrastkit.evaluate import effective_rank, embedding_spectrum

    plots.plot_spectrum(embedding_spectrum(features), "s.png", of="the held-out features")
    assert f"effective rank {effective_rank(features):.2f}" in drawn[-1].axes[0].get_title()


def test_training_status_gives_total_time_left_epoch_and_rate() -> None:
    budget = training_status(120, None, 0.51, 90.0, 300.0, 728.4, 2.31)
    assert budget == "step 120, epoch 0.51, 1:30 of 5:00 budget, 3:30 left, 728 images/s, loss 2.310"
    both = training_status(100, 150, 1.0, 60.0, 600.0, 50.0)  # 50 steps at 0.6 s: 0:30 before the budget's 9:00
    assert both == "step 100/150, epoch 1.00, 1:00 of 10:00 budget, 0:30 left, 50 images/s"


def test_progress_prints_phases_only_when_enabled(capsys: pytest.CaptureFixture[str]) -> None:
    with Progress(enabled=False).phase("quiet"):
        pass
    with Progress(enabled=True).phase("linear probe"):
        pass
    assert capsys.readouterr().out.splitlines() == ["linear probe ...", "linear probe: 0 s"]
