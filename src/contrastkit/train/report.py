"""The run report: ``report.md`` (header, final metrics with their protocols, the plots of
:mod:`contrastkit.train.plots`) and ``results.json`` (the summary dict), both written atomically."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from contrastkit._io import atomic_write_text, check_writable_dir
from contrastkit.train.metrics_log import FIXED_COLUMNS
from contrastkit.train.plots import plot_embedding_map, plot_loss_curve, plot_metric_over_epochs, plot_spectrum

__all__ = ["MONITOR_KEY_PATTERN", "write_run_report"]

MONITOR_KEY_PATTERN = re.compile(r"knn|probe|rank")
"""Default epoch-level metrics plotted by :func:`write_run_report`: kNN accuracy, online linear probe, effective
rank (the harness monitors name their metrics ``knn_*``, ``*probe*``, ``*rank*``)."""


def _json_value(value: Any) -> Any:
    """``value`` as JSON-able data: tensors/numpy scalars unwrapped, non-finite floats -> None, Paths -> str."""
    if isinstance(value, (Tensor, np.ndarray, np.generic)):
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise ValueError(f"summary value {value!r} ({type(value).__name__}) is not JSON-serialisable; pass numbers/str")


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) and abs(value) < 1e4 else f"{value:.4g}"
    return str(value).replace("|", "\\|")


def write_run_report(
    run_dir: str | Path,
    summary: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    eigenvalues: Tensor | np.ndarray | Sequence[float] | None = None,
    features: Tensor | np.ndarray | None = None,
    labels: Tensor | np.ndarray | None = None,
    *,
    epoch_metrics: Sequence[str] | None = None,
    extra_plots: Sequence[tuple[str, Path]] = (),
) -> Path:
    """Write ``run_dir/plots/*.png``, ``run_dir/report.md`` and ``run_dir/results.json`` (= ``summary``).

    ``summary`` holds ``"config"`` (name) and ``"command"`` (str), ``"metrics"`` ``{name: number}`` (final
    metrics), ``"protocols"`` ``{name: text}`` with one entry per metric, e.g. ``"kNN top-1 (k=200, T=0.1, cosine,
    test split)"``, and any other JSON-able keys (epochs, seconds, images/s, ...) shown under "Run". Plots: the loss
    curve (rows with ``loss``), each epoch metric over epochs (``epoch_metrics``; default: keys matching
    :data:`MONITOR_KEY_PATTERN`), the spectrum (``eigenvalues``, or that of the L2-normalised ``features``) and
    the PCA map of ``features`` coloured by ``labels``, then ``extra_plots`` ``[(title, png path in run_dir)]`` (from
    callbacks). Plots without data are skipped. Returns the report path.
    """
    for key in ("config", "command", "metrics", "protocols"):
        if key not in summary:
            raise ValueError(f"summary needs {key!r} (config, command, metrics, protocols); add it")
    metrics, protocols = dict(summary["metrics"]), dict(summary["protocols"])
    missing = [name for name in metrics if not protocols.get(name)]
    if missing:
        raise ValueError(f"summary['protocols'] names no protocol for {missing}; say how each metric was measured")
    payload = _json_value(dict(summary))  # validates before anything is written
    directory = check_writable_dir(run_dir)
    plots: list[tuple[str, Path]] = []
    if any("loss" in r for r in rows):
        plots.append(("Training loss", plot_loss_curve(rows, directory / "plots" / "loss.png")))
    keys = [k for r in rows for k in r if k not in FIXED_COLUMNS]
    keys = (
        list(epoch_metrics)
        if epoch_metrics is not None
        else [k for k in dict.fromkeys(keys) if MONITOR_KEY_PATTERN.search(k)]
    )
    for key in keys:
        file = re.sub(r"[^A-Za-z0-9_.-]", "_", key)
        plots.append((f"{key} over epochs", plot_metric_over_epochs(rows, key, directory / "plots" / f"{file}.png")))
    spectrum_title = "Embedding spectrum"
    if eigenvalues is None and features is not None:
        from contrastkit.evaluate import embedding_spectrum

        eigenvalues = embedding_spectrum(torch.nn.functional.normalize(torch.as_tensor(features).float(), dim=1))
        spectrum_title += " (covariance of the L2-normalised features)"
    if eigenvalues is not None:
        plots.append((spectrum_title, plot_spectrum(eigenvalues, directory / "plots" / "spectrum.png")))
    if features is not None:
        plots.append(("Embedding map", plot_embedding_map(features, labels, directory / "plots" / "embedding.png")))
    plots += [(title, Path(file)) for title, file in extra_plots]

    lines = [f"# Run report: {summary['config']}", "", f"Command: `{summary['command']}`", "", "## Final metrics", ""]
    lines += ["| Metric | Value | Protocol |", "|---|---|---|"]
    lines += [f"| {name} | {_format(value)} | {_format(protocols[name])} |" for name, value in metrics.items()]
    extra = {k: v for k, v in summary.items() if k not in ("config", "command", "metrics", "protocols")}
    if extra:
        lines += ["", "## Run", "", "| Key | Value |", "|---|---|"]
        lines += [
            f"| {k} | {_format(json.dumps(_json_value(v)) if isinstance(v, (Mapping, list)) else v)} |"
            for k, v in extra.items()
        ]
    if plots:
        lines += ["", "## Plots"]
        for title, file in plots:
            lines += ["", f"### {title}", "", f"![{title}]({file.relative_to(directory).as_posix()})"]
    atomic_write_text(directory / "results.json", json.dumps(payload, indent=2, allow_nan=False) + "\n")
    return atomic_write_text(directory / "report.md", "\n".join(lines) + "\n")
