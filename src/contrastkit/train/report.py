"""Run logs and reports: ``metrics.csv`` (+ TensorBoard), PNG plots, ``report.md`` and ``results.json``.

A run directory holds::

    metrics.csv          one row per logged step: step, epoch, then every metric ever logged (blank = not logged)
    tb/                  TensorBoard events (when ``torch.utils.tensorboard`` is importable)
    plots/*.png          loss curve, monitors over epochs, embedding spectrum, 2-D PCA map of the embeddings
    report.md            header (config, command), final metrics with their protocols, the plots
    results.json         the summary dict

Every file is written atomically (temporary file + rename, :mod:`contrastkit._io`) except the per-row append to
``metrics.csv``; a process killed mid-append leaves at most a torn last line, which the next
:class:`MetricsLogger` on the same directory drops. matplotlib (Agg) is imported inside the plot functions only, so
importing this module is cheap. Only one process (rank 0) may log into a run directory.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from contrastkit._io import atomic_write, atomic_write_text, check_writable_dir

__all__ = [
    "MetricsLogger",
    "read_metrics",
    "plot_loss_curve",
    "plot_metric_over_epochs",
    "plot_spectrum",
    "plot_embedding_map",
    "write_run_report",
    "MONITOR_KEY_PATTERN",
]

METRICS_FILE = "metrics.csv"
FIXED_COLUMNS = ("step", "epoch")
MONITOR_KEY_PATTERN = re.compile(r"knn|probe|rank")
"""Default epoch-level metrics plotted by :func:`write_run_report`: kNN accuracy, online linear probe, effective
rank (the harness monitors name their metrics ``knn_*``, ``*probe*``, ``*rank*``)."""


def _number(name: str, value: object) -> int | float:
    """A logged value as a Python int/float (0-d tensors and numpy scalars unwrapped); ValueError otherwise."""
    if isinstance(value, (Tensor, np.ndarray, np.generic)) and np.prod(value.shape) == 1:
        value = value.item()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    raise ValueError(f"metric {name!r} must be a number or a 1-element tensor, got {type(value).__name__}")


def _parse(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def _read_table(path: Path) -> tuple[list[str], list[dict[str, int | float]], bool]:
    """Header, rows and ``torn`` of a metrics.csv; a torn last line (no trailing newline) is dropped."""
    if not path.exists():
        return [], [], False
    text = path.read_text(encoding="utf-8")
    torn = bool(text) and not text.endswith("\n")
    if torn:
        text = text[: text.rfind("\n") + 1]
    lines = list(csv.reader(io.StringIO(text)))
    if not lines:
        return [], [], torn
    header, rows = lines[0], []
    if tuple(header[:2]) != FIXED_COLUMNS:
        raise ValueError(f"{path} is not a contrastkit metrics.csv (header {header[:3]}); pass another run directory")
    for number, cells in enumerate(lines[1:], start=2):
        if len(cells) != len(header):
            raise ValueError(f"{path} line {number} has {len(cells)} cells, header has {len(header)}; file is corrupt")
        rows.append({key: _parse(cell) for key, cell in zip(header, cells, strict=True) if cell != ""})
    return header, rows, torn


def _csv_text(header: Sequence[str], rows: Sequence[Mapping[str, int | float]], with_header: bool = True) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if with_header:
        writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(row.get(key)) for key in header])
    return buffer.getvalue()


def _cell(value: int | float | None) -> str:
    return "" if value is None else repr(value)  # repr of a float round-trips exactly


def read_metrics(run_dir: str | Path) -> list[dict[str, int | float]]:
    """Rows of ``run_dir/metrics.csv`` as dicts holding only the logged keys (ints stay ints); ``[]`` if absent."""
    return _read_table(Path(run_dir) / METRICS_FILE)[1]


class MetricsLogger:
    """Append-only metrics log of one run: ``run_dir/metrics.csv`` and, optionally, TensorBoard in ``run_dir/tb``.

    Columns are ``step, epoch`` then every metric in order of first appearance; a row leaves the metrics it does
    not log blank. Appending a row with a new metric rewrites the file atomically with the wider header (rare: the
    first row of each monitor); otherwise the row is appended and flushed. Opening an existing directory continues
    the file (after dropping a torn last line); on ``--resume`` call :meth:`truncate_after` with the checkpoint's
    step so rows logged after the checkpoint (and TensorBoard events, through ``purge_step``) are discarded.

    Args:
        run_dir: the run directory (created if absent).
        tensorboard: also write TensorBoard scalars when ``torch.utils.tensorboard`` imports.
    """

    def __init__(self, run_dir: str | Path, tensorboard: bool = True) -> None:
        self.run_dir = check_writable_dir(run_dir)
        self.path = self.run_dir / METRICS_FILE
        header, rows, torn = _read_table(self.path)
        self.columns: list[str] = header or list(FIXED_COLUMNS)
        if torn or not header:
            atomic_write_text(self.path, _csv_text(self.columns, rows))  # new file, or drop a torn last line
        self._tensorboard = tensorboard
        self._writer: Any = None
        self._purge_step: int | None = None

    def log(self, row: Mapping[str, object]) -> None:
        """Append ``row`` = ``{"step": int, "epoch": int|float, name: number, ...}`` (tensors are unwrapped)."""
        if "step" not in row or "epoch" not in row:
            raise ValueError(f"a metrics row needs 'step' and 'epoch', got keys {sorted(row)}; add them")
        step = _number("step", row["step"])
        if not isinstance(step, int) or step < 0:
            raise ValueError(f"step must be an int >= 0, got {row['step']!r}")
        values = {str(key): _number(str(key), value) for key, value in row.items()}
        new = [key for key in values if key not in self.columns]
        if new:
            rows = _read_table(self.path)[1]
            self.columns += new
            atomic_write_text(self.path, _csv_text(self.columns, [*rows, values]))
        else:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(_csv_text(self.columns, [values], with_header=False))
                handle.flush()
        self._log_tensorboard(step, values)

    def truncate_after(self, step: int) -> None:
        """Drop every row with ``step > step`` (resume from a checkpoint taken at ``step``)."""
        if not isinstance(step, int) or step < 0:
            raise ValueError(f"step must be an int >= 0, got {step!r}")
        rows = _read_table(self.path)[1]
        atomic_write_text(self.path, _csv_text(self.columns, [r for r in rows if r["step"] <= step]))
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._purge_step = step + 1

    def rows(self) -> list[dict[str, int | float]]:
        """The rows logged so far (read back from disk)."""
        return read_metrics(self.run_dir)

    def _log_tensorboard(self, step: int, values: Mapping[str, int | float]) -> None:
        if not self._tensorboard:
            return
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard not installed: CSV only
                self._tensorboard = False
                return
            self._writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=self._purge_step)
            self._purge_step = None
        for key, value in values.items():
            if key not in FIXED_COLUMNS:
                self._writer.add_scalar(key, value, global_step=step)

    def close(self) -> None:
        """Flush and close the TensorBoard writer (the CSV is always flushed)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------------------------------------- plots


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path) -> Path:
    """Save ``fig`` as PNG atomically (creating the parent directory) and close it."""
    plt = pyplot()
    target = Path(path)
    check_writable_dir(target.parent, what="plot directory")
    try:
        fig.tight_layout()
        atomic_write(target, lambda handle: fig.savefig(handle, format="png", dpi=110))
    finally:
        plt.close(fig)
    return target


def _series(rows: Sequence[Mapping[str, Any]], x: str, y: str) -> tuple[list[float], list[float]]:
    pairs = [(float(r[x]), float(r[y])) for r in rows if x in r and y in r]
    if not pairs:
        raise ValueError(f"no row holds both {x!r} and {y!r}; log {y!r} before plotting it")
    xs, ys = zip(*pairs, strict=True)
    return list(xs), list(ys)


def plot_loss_curve(rows: Sequence[Mapping[str, Any]], path: str | Path, key: str = "loss") -> Path:
    """Training loss ``rows[key]`` against ``step`` (raw, plus an EMA with ``alpha = 2/(w+1)``, ``w = n/20``)."""
    steps, losses = _series(rows, "step", key)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(steps, losses, lw=0.8, alpha=0.45, label=key)
    if len(losses) >= 20:
        alpha, ema, smooth = 2.0 / (len(losses) / 20 + 1), losses[0], []
        for value in losses:
            ema = ema + alpha * (value - ema) if math.isfinite(value) else ema
            smooth.append(ema)
        ax.plot(steps, smooth, lw=1.8, label=f"{key} (EMA)")
    ax.set(xlabel="step", ylabel=key, title="Training loss")
    ax.legend()
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_metric_over_epochs(rows: Sequence[Mapping[str, Any]], key: str, path: str | Path) -> Path:
    """``rows[key]`` against ``epoch`` (the last value logged in each epoch), e.g. online kNN accuracy."""
    epochs, values = _series(rows, "epoch", key)
    last = dict(zip(epochs, values, strict=True))  # later rows of an epoch overwrite earlier ones
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(list(last), list(last.values()), marker="o")
    ax.set(xlabel="epoch", ylabel=key, title=f"{key} over epochs (final {values[-1]:.4g})")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_spectrum(eigenvalues: Tensor | np.ndarray | Sequence[float], path: str | Path) -> Path:
    """Eigenvalues ``[D]`` of the embedding covariance, sorted descending, on a log scale (Jing et al., ICLR
    2022, Fig. 2); the title gives the effective rank ``exp(H(lambda / sum lambda))``. Zero eigenvalues (below the
    axis of a log plot) are counted in the title."""
    from contrastkit.evaluate import effective_rank

    eig = torch.as_tensor(np.asarray(eigenvalues, dtype=np.float64)).flatten()
    erank = effective_rank(eig)  # validates: finite, non-empty, non-negative
    eig = eig.clamp_min(0).sort(descending=True).values
    positive = eig[eig > 0]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    if positive.numel():
        ax.semilogy(np.arange(1, positive.numel() + 1), positive.numpy(), marker=".", ms=3)
    zeros = eig.numel() - positive.numel()
    note = f", {zeros} zero" if zeros else ""
    ax.set(xlabel="index (sorted)", ylabel="eigenvalue (log)")
    ax.set_title(f"Embedding spectrum: effective rank {erank:.2f} of D={eig.numel()}{note}")
    ax.grid(alpha=0.3, which="both")
    return save_figure(fig, path)


def plot_spectra(
    spectra: Mapping[str, Tensor | np.ndarray | Sequence[float]], path: str | Path, title: str = "Covariance spectra"
) -> Path:
    """Several spectra on one log plot, each divided by its largest eigenvalue so that spaces of different scale
    and dimension compare (the collapse of Jing et al., ICLR 2022, Fig. 6 style); legends give the effective rank.
    ``spectra``: ``{label: eigenvalues [D]}``."""
    from contrastkit.evaluate import effective_rank

    if not spectra:
        raise ValueError("plot_spectra needs at least one spectrum: pass {label: eigenvalues}")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for label, eigenvalues in spectra.items():
        eig = torch.as_tensor(np.asarray(eigenvalues, dtype=np.float64)).flatten()
        erank = effective_rank(eig)
        eig = eig.clamp_min(0).sort(descending=True).values
        top = float(eig[0]) if eig.numel() and float(eig[0]) > 0 else 1.0
        positive = eig[eig > 0] / top
        ax.semilogy(np.arange(1, positive.numel() + 1), positive.numpy(), label=f"{label}: erank {erank:.1f}")
    ax.set(xlabel="index (sorted)", ylabel="eigenvalue / largest (log)", title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def _pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Projection ``[N, 2]`` of centred ``x`` ``[N, D]`` on its top-2 principal axes and their variance ratios."""
    x = x - x.mean(axis=0, keepdims=True)
    if x.shape[1] <= x.shape[0]:  # eigen-decompose the smaller of X^T X [D, D] and X X^T [N, N]
        vals, vecs = np.linalg.eigh(x.T @ x)
        vals, vecs = vals[::-1][:2], vecs[:, ::-1][:, :2]
        proj = x @ vecs
    else:
        vals, vecs = np.linalg.eigh(x @ x.T)
        vals, vecs = vals[::-1][:2], vecs[:, ::-1][:, :2]
        proj = vecs * np.sqrt(np.clip(vals, 0, None))
    signs = np.sign(proj[np.abs(proj).argmax(axis=0), np.arange(proj.shape[1])])
    proj = proj * np.where(signs == 0, 1.0, signs)  # deterministic orientation
    if proj.shape[1] < 2:
        proj = np.pad(proj, ((0, 0), (0, 2 - proj.shape[1])))
        vals = np.pad(vals, (0, 2 - vals.shape[0]))
    total = float((x**2).sum())
    return proj, np.clip(vals, 0, None) / total if total > 0 else np.zeros(2)


def plot_embedding_map(
    features: Tensor | np.ndarray,
    labels: Tensor | np.ndarray | None,
    path: str | Path,
    max_points: int = 3000,
    seed: int = 0,
) -> Path:
    """2-D PCA map of ``features`` ``[N, D]``, points coloured by ``labels`` ``[N]`` (legend per class up to 20).

    At most ``max_points`` rows, drawn uniformly without replacement with ``numpy.random.default_rng(seed)``.
    """
    from contrastkit._checks import check_labels, check_tensor

    x = check_tensor("features", torch.as_tensor(features), 2, min_rows=2, floating=True)
    y = None if labels is None else check_labels("labels", torch.as_tensor(labels), x.shape[0])
    if not isinstance(max_points, int) or max_points < 2:
        raise ValueError(f"max_points must be an int >= 2, got {max_points!r}")
    x_np = x.detach().cpu().to(torch.float64).numpy()
    index = np.arange(x_np.shape[0])
    if x_np.shape[0] > max_points:
        index = np.sort(np.random.default_rng(seed).choice(x_np.shape[0], size=max_points, replace=False))
    proj, ratio = _pca_2d(x_np[index])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    if y is None:
        ax.scatter(proj[:, 0], proj[:, 1], s=4, alpha=0.6)
    else:
        y_np = y.detach().cpu().numpy()[index]
        classes = np.unique(y_np)
        cmap = plt.get_cmap("tab10" if classes.size <= 10 else "tab20" if classes.size <= 20 else "viridis")
        for rank, cls in enumerate(classes):
            colour = cmap(rank if classes.size <= 20 else rank / max(classes.size - 1, 1))
            mask = y_np == cls
            ax.scatter(proj[mask, 0], proj[mask, 1], s=4, alpha=0.6, color=colour, label=str(int(cls)))
        if classes.size <= 20:
            ax.legend(title="label", markerscale=3, fontsize=7, loc="best")
    ax.set(xlabel=f"PC1 ({ratio[0]:.1%} var.)", ylabel=f"PC2 ({ratio[1]:.1%} var.)")
    ax.set_title(f"Embeddings, 2-D PCA ({index.size} of {x_np.shape[0]} points)")
    return save_figure(fig, path)


# ---------------------------------------------------------------------------------------------------------- report


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
