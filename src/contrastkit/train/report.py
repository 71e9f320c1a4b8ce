"""The run report: ``report.md`` (header, final metrics with their protocols, the evaluation records of
``contrastkit evaluate`` beside their baselines, the plots of :mod:`contrastkit.train.plots`) and ``results.json``
(the summary dict), both written atomically.

``evaluation.json`` (written by :func:`contrastkit.train.run_dir.evaluate_run`) holds
``{"run_dir", "evaluations": {protocol: {checkpoint: record}}}``; a record is ``{"checkpoint", "step",
"seconds", "metrics": {name: value}, "protocols": {name: text}, "baselines": {name: {baseline: value}},
"baseline_features": {baseline: text}}``. The baselines are the same protocol (same bank, queries, k, T) on
other features: ``random_init`` (the run's method at its initial weights, untrained) and ``raw_pixels``.
:func:`evaluation_lines` renders them for ``report.md``; a metric below its random-init baseline gets one line
that says so. :func:`evaluation_summary` is the same in plain text for the console.
"""

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
from contrastkit.train.plots import (
    FEW_EPOCHS,
    metric_label,
    plot_embedding_map,
    plot_loss_curve,
    plot_metric_over_epochs,
    plot_spectrum,
)

__all__ = [
    "EVALUATION_FILE", "MONITOR_KEY_PATTERN", "evaluation_lines", "evaluation_summary", "read_evaluation",
    "update_report_evaluation", "write_run_report",
]  # fmt: skip

EVALUATION_FILE = "evaluation.json"
BASELINE_NAMES = {
    "random_init": "random init (untrained)",
    "raw_pixels": "raw pixels",
    "raw_features": "raw features",  # graph runs: the node features
}
_START, _END = "<!-- evaluation: written by contrastkit evaluate -->", "<!-- /evaluation -->"

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
    loss_rows: Sequence[Mapping[str, Any]] | None = None,
    class_names: Sequence[str] | None = None,
) -> Path:
    """Write ``run_dir/plots/*.png``, ``run_dir/report.md`` and ``run_dir/results.json`` (= ``summary``).

    ``summary`` holds ``"config"`` (name) and ``"command"`` (str), ``"metrics"`` ``{name: number}`` (final
    metrics), ``"protocols"`` ``{name: text}`` with one entry per metric, e.g. ``"kNN top-1 (k=200, T=0.1, cosine,
    test split)"``, and any other JSON-able keys (epochs, seconds, images/s, ...) shown under "Run". Plots: the loss
    curve (``loss_rows`` when given, e.g. every step of a short run, else the rows with ``loss``), each epoch
    metric (``epoch_metrics``; default: keys matching :data:`MONITOR_KEY_PATTERN`) per step when
    ``summary["epochs"]`` is below :data:`contrastkit.train.plots.FEW_EPOCHS`, else per epoch, the covariance
    spectrum (``eigenvalues``, or that of ``features`` as they are: its title's effective rank is the table's
    ``effective_rank``) and the PCA map of ``features`` coloured by ``labels`` (legend: ``class_names``), then
    ``extra_plots`` ``[(title, png path in run_dir)]`` (from callbacks). Plots without data are skipped. The
    records of ``evaluation.json``, when the run has one, join the report. Returns the report path.
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
    loss_source = loss_rows if loss_rows else rows
    if any("loss" in r for r in loss_source):
        plots.append(("Training loss", plot_loss_curve(loss_source, directory / "plots" / "loss.png")))
    keys = [k for r in rows for k in r if k not in FIXED_COLUMNS]
    keys = (
        list(epoch_metrics)
        if epoch_metrics is not None
        else [k for k in dict.fromkeys(keys) if MONITOR_KEY_PATTERN.search(k)]
    )
    epochs = summary.get("epochs")
    per_step = bool(epochs < FEW_EPOCHS) if isinstance(epochs, (int, float)) else None
    for key in keys:
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", key)
        path = plot_metric_over_epochs(rows, key, directory / "plots" / f"{stem}.png", per_step=per_step)
        name = metric_label(key)
        plots.append((f"{name[:1].upper()}{name[1:]}, {'per step' if per_step else 'over epochs'}", path))
    if eigenvalues is None and features is not None:
        from contrastkit.evaluate import embedding_spectrum

        eigenvalues = embedding_spectrum(torch.as_tensor(features).float())
    if eigenvalues is not None:
        path = plot_spectrum(eigenvalues, directory / "plots" / "spectrum.png", of="the held-out features")
        plots.append(("Covariance spectrum of the held-out features (not L2-normalised, as effective_rank)", path))
    if features is not None:
        path = plot_embedding_map(features, labels, directory / "plots" / "embedding.png", class_names=class_names)
        plots.append(("Embedding map", path))
    plots += [(title, Path(file)) for title, file in extra_plots]

    lines = [f"# Run report: {summary['config']}", "", f"Command: `{summary['command']}`", "", "## Final metrics", ""]
    lines += ["| Metric | Value | Protocol |", "|---|---|---|"]
    lines += [f"| {name} | {_format(value)} | {_format(protocols[name])} |" for name, value in metrics.items()]
    lines += ["", _START, *evaluation_lines(read_evaluation(directory)), _END]
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


def read_evaluation(run_dir: str | Path) -> dict[str, Any]:
    """The ``evaluation.json`` of ``run_dir`` (``{"evaluations": {}}`` when absent); a file written before the
    records were merged by protocol (one flat ``metrics`` dict) is read as the records it holds."""
    path = Path(run_dir) / EVALUATION_FILE
    if not path.is_file():
        return {"run_dir": str(run_dir), "evaluations": {}}
    data = json.loads(path.read_text(encoding="utf-8"))
    if "evaluations" in data:
        return data
    evaluations: dict[str, Any] = {}
    which = data.get("checkpoint", "last")
    for name, value in data.get("metrics", {}).items():  # the older, flat file: one call's metrics
        protocol = "knn" if name.startswith("knn") else "linear" if name.startswith("linear") else "nmi"
        empty = {"checkpoint": which, "step": data.get("step"), "metrics": {}, "protocols": {}}
        record = evaluations.setdefault(protocol, {}).setdefault(which, empty)
        record["metrics"][name] = value
        record["protocols"][name] = data.get("protocols", {}).get(name, "")
    return {"run_dir": data.get("run_dir", str(run_dir)), "evaluations": evaluations}


def _records(evaluation: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [record for by_checkpoint in evaluation.get("evaluations", {}).values() for record in by_checkpoint.values()]


def _below_random_init(record: Mapping[str, Any]) -> list[tuple[str, float, float]]:
    """``(metric, trained, random init)`` for every metric of ``record`` below its random-init baseline."""
    out = []
    for name, value in record.get("metrics", {}).items():
        base = record.get("baselines", {}).get(name, {}).get("random_init")
        if base is not None and value < base:
            out.append((name, float(value), float(base)))
    return out


def evaluation_lines(evaluation: Mapping[str, Any]) -> list[str]:
    """The "Evaluation" section of ``report.md``: one table row per metric and checkpoint with the trained value,
    its baselines and the protocol, then one line per metric below its random-init baseline ([] when empty)."""
    records = _records(evaluation)
    if not records:
        return []
    lines = ["## Evaluation (`contrastkit evaluate`)", ""]
    present = {b for r in records for values in r.get("baselines", {}).values() for b in values}
    kinds = [b for b in BASELINE_NAMES if b in present] or ["random_init", "raw_pixels"]  # graph runs: raw features
    header = " | ".join(BASELINE_NAMES[b] for b in kinds)
    lines += [f"| Metric | Checkpoint (step) | Trained | {header} | Protocol |"]
    lines += ["|---|---|---|" + "---|" * len(kinds) + "---|"]
    features: dict[str, str] = {}
    for record in records:
        for name, value in record["metrics"].items():
            base = record.get("baselines", {}).get(name, {})
            cells = [_format(base[b]) if b in base else "-" for b in kinds]
            where = f"{record['checkpoint']} ({record.get('step')})"
            lines.append(
                f"| {name} | {where} | {_format(value)} | {' | '.join(cells)} | {_format(record['protocols'][name])} |"
            )
        features.update(record.get("baseline_features", {}))
    if features:
        told = "; ".join(f"{BASELINE_NAMES.get(b, b)}: {t.removeprefix('features: ')}" for b, t in features.items())
        lines += ["", f"Baselines: the same protocol (same data, splits and settings) on other features: {told}."]
    for record in records:
        for name, value, base in _below_random_init(record):
            what = f"{metric_label(name, unit=False)} of the {record['checkpoint']} checkpoint, {_plain(name, value)},"
            lines += [
                "",
                f"**{what} is below the same method untrained, {_plain(name, base)}: training did not help.**",
            ]
    return lines


def _plain(name: str, value: float) -> str:
    return f"{100 * value:.2f} %" if name.endswith(("top1", "accuracy")) else f"{value:.4f}"


def evaluation_summary(run_dir: str | Path) -> str:
    """The evaluation of ``run_dir`` in plain text, one line per metric with its baselines (accuracies in %),
    and a line for each metric below its random-init baseline; for the console (``make demo``)."""
    lines = []
    for record in _records(read_evaluation(run_dir)):
        for name, value in record["metrics"].items():
            base = record.get("baselines", {}).get(name, {})
            others = ", ".join(f"{BASELINE_NAMES.get(b, b)} {_plain(name, v)}" for b, v in base.items())
            where = f"{record['checkpoint']} checkpoint, step {record.get('step')}"
            line = f"{name}: {_plain(name, value)} ({where})"
            lines.append(line + (f"; same protocol on {others}" if others else ""))
        for name, value, base in _below_random_init(record):
            lines.append(
                f"  -> {name} is BELOW the same method untrained ({_plain(name, value)} < {_plain(name, base)})"
            )
    return "\n".join(lines) if lines else f"{run_dir}: no evaluation yet (run contrastkit evaluate {run_dir})"


def update_report_evaluation(run_dir: str | Path) -> Path | None:
    """Rewrite the evaluation section of ``run_dir/report.md`` from ``evaluation.json`` (the rest of the report is
    kept); None when the run has no report yet (``fit`` adds the evaluation when it writes one)."""
    path = Path(run_dir) / "report.md"
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    section = "\n".join([_START, *evaluation_lines(read_evaluation(run_dir)), _END])
    if _START in text and _END in text:
        text = text[: text.index(_START)] + section + text[text.index(_END) + len(_END) :]
    else:  # a report written before evaluation sections existed: the section goes before the "Run" table
        cut = text.find("\n## Run")
        text = text + "\n" + section + "\n" if cut < 0 else text[:cut] + "\n" + section + "\n" + text[cut:]
    return atomic_write_text(path, text)
