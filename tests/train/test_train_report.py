"""metrics.csv logging (append, new columns, torn lines, truncate_after), plots and the run report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from contrastkit.train.metrics_log import MetricsLogger, read_metrics
from contrastkit.train.plots import plot_embedding_map, plot_loss_curve, plot_metric_over_epochs, plot_spectrum
from contrastkit.train.report import write_run_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 2000, f"{path} is not a non-empty PNG"


def _fake_rows(epochs: int = 4, steps_per_epoch: int = 10) -> list[dict[str, float]]:
    rows: list[dict[str, float]] = []
    for step in range(epochs * steps_per_epoch):
        epoch = step // steps_per_epoch
        row = {"step": step, "epoch": epoch, "loss": 5.0 / (1 + 0.1 * step)}
        if (step + 1) % steps_per_epoch == 0:
            row["knn_top1"] = 0.3 + 0.1 * epoch
        rows.append(row)
    return rows


def test_logger_appends_grows_header_and_reads_back_exactly(tmp_path: Path) -> None:
    logger = MetricsLogger(tmp_path, tensorboard=False)
    logger.log({"step": 0, "epoch": 0, "loss": 2.5})
    logger.log({"step": 1, "epoch": 0, "loss": torch.tensor(0.1 + 0.2), "lr": np.float64(1e-3)})  # new column
    logger.log({"step": 2, "epoch": 1, "loss": 1 / 3})
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0]
    assert header == "step,epoch,loss,lr"
    rows = read_metrics(tmp_path)
    assert rows == [
        {"step": 0, "epoch": 0, "loss": 2.5},
        {"step": 1, "epoch": 0, "loss": float(torch.tensor(0.1 + 0.2)), "lr": 1e-3},
        {"step": 2, "epoch": 1, "loss": 1 / 3},  # repr round-trips floats bit-exactly
    ]
    assert isinstance(rows[0]["step"], int) and isinstance(rows[0]["epoch"], int)
    assert logger.rows() == rows


def test_logger_resume_truncates_and_drops_torn_line(tmp_path: Path) -> None:
    logger = MetricsLogger(tmp_path, tensorboard=False)
    for step in range(6):
        logger.log({"step": step, "epoch": step // 3, "loss": float(step)})
    with open(tmp_path / "metrics.csv", "a") as handle:  # a SIGKILL in the middle of an append
        handle.write("6,2,0.12")
    resumed = MetricsLogger(tmp_path, tensorboard=False)
    assert [r["step"] for r in read_metrics(tmp_path)] == list(range(6))
    resumed.truncate_after(3)
    resumed.log({"step": 4, "epoch": 1, "loss": -4.0, "knn_top1": 0.5})
    rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4]
    assert rows[-1] == {"step": 4, "epoch": 1, "loss": -4.0, "knn_top1": 0.5}
    assert "knn_top1" not in rows[0]


def test_logger_rejects_rows_without_step_or_with_non_numbers(tmp_path: Path) -> None:
    logger = MetricsLogger(tmp_path, tensorboard=False)
    with pytest.raises(ValueError, match="'step' and 'epoch'"):
        logger.log({"epoch": 0, "loss": 1.0})
    with pytest.raises(ValueError, match="metric 'loss'"):
        logger.log({"step": 0, "epoch": 0, "loss": "high"})
    with pytest.raises(ValueError, match="step must be an int"):
        logger.log({"step": 1.5, "epoch": 0})
    assert read_metrics(tmp_path) == []


def test_logger_writes_tensorboard_events(tmp_path: Path) -> None:
    pytest.importorskip("torch.utils.tensorboard")
    with MetricsLogger(tmp_path) as logger:
        logger.log({"step": 0, "epoch": 0, "loss": 1.0})
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_every_plot_writes_a_png(tmp_path: Path) -> None:
    rows = _fake_rows()
    _assert_png(plot_loss_curve(rows, tmp_path / "loss.png"))
    _assert_png(plot_metric_over_epochs(rows, "knn_top1", tmp_path / "knn.png"))
    eig = torch.tensor([4.0, 2.0, 1.0, 0.5, 0.0])
    _assert_png(plot_spectrum(eig, tmp_path / "sub" / "spectrum.png"))
    g = torch.Generator().manual_seed(0)
    features, labels = torch.randn(60, 8, generator=g), torch.arange(60) % 3
    _assert_png(plot_embedding_map(features, labels, tmp_path / "map.png", max_points=40))
    _assert_png(plot_embedding_map(features[:, :1], None, tmp_path / "map1d.png"))
    with pytest.raises(ValueError, match="no row holds both"):
        plot_metric_over_epochs(rows, "linear_top1", tmp_path / "missing.png")
    with pytest.raises(ValueError, match="negative eigenvalues"):
        plot_spectrum([1.0, -1.0], tmp_path / "bad.png")
    assert not (tmp_path / "missing.png").exists() and not (tmp_path / "bad.png").exists()


def test_run_report_names_protocols_and_links_existing_plots(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(1)
    features, labels = torch.randn(50, 6, generator=g), torch.arange(50) % 5
    summary = {
        "config": "simclr_tiny",
        "command": "contrastkit train configs/simclr_tiny.yaml",
        "metrics": {"knn_top1": 0.61, "linear_top1": 0.65},
        "protocols": {
            "knn_top1": "kNN top-1 (k=200, T=0.1, cosine, test split)",
            "linear_top1": "linear probe top-1 (L-BFGS, frozen features, test split)",
        },
        "epochs": 4,
        "images_per_second": float("nan"),
    }
    report = write_run_report(tmp_path, summary, _fake_rows(), features=features, labels=labels)
    text = report.read_text()
    assert "# Run report: simclr_tiny" in text and "contrastkit train configs/simclr_tiny.yaml" in text
    assert "| knn_top1 | 0.6100 | kNN top-1 (k=200, T=0.1, cosine, test split) |" in text
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert sorted(links) == ["plots/embedding.png", "plots/knn_top1.png", "plots/loss.png", "plots/spectrum.png"]
    for link in links:
        _assert_png(tmp_path / link)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["metrics"] == summary["metrics"] and results["images_per_second"] is None  # NaN -> null


def test_run_report_without_protocol_fails_before_writing(tmp_path: Path) -> None:
    summary = {"config": "c", "command": "cmd", "metrics": {"knn_top1": 0.5}, "protocols": {}}
    with pytest.raises(ValueError, match="no protocol for \\['knn_top1'\\]"):
        write_run_report(tmp_path, summary, _fake_rows())
    assert not list(tmp_path.iterdir())
