"""The plots of contrastkit, for run reports and reproduction reports alike: loss and metric curves, covariance
spectra, the 2-D PCA map of embeddings. Every figure is written atomically as PNG; matplotlib (Agg) is imported
inside the functions only, so importing this module is cheap."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from contrastkit._io import atomic_write, check_writable_dir

__all__ = [
    "FEW_EPOCHS", "Curve", "metric_curve", "metric_label", "plot_embedding_map", "plot_loss_curve",
    "plot_metric_over_epochs", "plot_spectra", "plot_spectrum", "pyplot", "save_figure",
]  # fmt: skip

FEW_EPOCHS = 5
"""Runs shorter than this many epochs are plotted per step (an epoch axis would hold a point or two)."""

_LABELS = {
    "loss": "training loss",
    "lr": "learning rate",
    "images_per_s": "images per second",
    "knn_top1": "kNN top-1 accuracy",
    "linear_top1": "linear probe top-1 accuracy",
    "online_linear_top1": "online linear probe top-1 accuracy",
    "online_linear_train_top1": "online linear probe top-1 on training batches",
    "online_linear_loss": "online linear probe loss",
    "effective_rank": "effective rank of the features",
    "kmeans_nmi": "k-means NMI",
    "kmeans_ari": "k-means ARI",
    "classifier_accuracy": "classifier accuracy",
    "classifier_balanced_accuracy": "classifier balanced accuracy",
    "classifier_macro_f1": "classifier macro-F1",
}
_COLLAPSE = {
    "effective_rank": "effective rank (L2-normalised)",
    "collapsed_dims": "collapsed dimensions",
    "dead_units": "dead units",
}


def metric_label(key: str, unit: bool = True) -> str:
    """A metric key in words for titles and axes: ``"knn_top1"`` -> ``"kNN top-1 accuracy (%)"``; accuracies (keys
    ending in ``top1`` or ``accuracy``) are plotted in percent and say so unless ``unit=False``."""
    if key in _LABELS:
        words = _LABELS[key]
    elif key.startswith("collapse_") and key[9:] in _COLLAPSE:
        words = f"{_COLLAPSE[key[9:]]} of the representation"
    elif key.startswith("loss_space_") and key[11:] in _COLLAPSE:
        words = f"{_COLLAPSE[key[11:]]} of the loss space"
    else:
        words = key.replace("top1", "top-1").replace("knn", "kNN").replace("_", " ")
    return f"{words} (%)" if unit and _is_accuracy(key) else words


def _is_accuracy(key: str) -> bool:
    return key.endswith(("top1", "accuracy"))


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
    """Training loss ``rows[key]`` against ``step`` (raw, plus an EMA with ``alpha = 2/(w+1)``, ``w = n/20``);
    markers when there are at most 50 points, so a short run's few values stay visible."""
    steps, losses = _series(rows, "step", key)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    every = "every step" if len(steps) < 2 or max(np.diff(steps)) == 1 else f"{len(steps)} logged steps"
    marker = "o" if len(losses) <= 50 else None
    ax.plot(steps, losses, lw=0.8, alpha=0.6 if marker else 0.45, marker=marker, ms=3, label=f"loss ({every})")
    if len(losses) >= 20:
        alpha, ema, smooth = 2.0 / (len(losses) / 20 + 1), losses[0], []
        for value in losses:
            ema = ema + alpha * (value - ema) if math.isfinite(value) else ema
            smooth.append(ema)
        ax.plot(steps, smooth, lw=1.8, label="moving average (EMA)")
    ax.set(xlabel="optimiser step", ylabel=metric_label(key), title=f"Training loss ({every}, final {losses[-1]:.4g})")
    ax.legend()
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


@dataclass(frozen=True)
class Curve:
    """What a metric plot draws: points ``(x, y)`` with axis labels and title in words."""

    x: list[float]
    y: list[float]
    x_label: str
    y_label: str
    title: str


def metric_curve(rows: Sequence[Mapping[str, Any]], key: str, per_step: bool | None = None) -> Curve:
    """The points of ``rows[key]``: against the step when ``per_step`` (default: when the rows span fewer than
    :data:`FEW_EPOCHS` epochs), else against the epoch (the last value logged in each epoch). Accuracies in %."""
    steps, values = _series(rows, "step", key)
    epochs, _ = _series(rows, "epoch", key)
    if per_step is None:
        per_step = max(epochs) < FEW_EPOCHS
    scale = 100.0 if _is_accuracy(key) else 1.0
    if per_step:
        x, y, x_label = steps, values, "optimiser step"
    else:
        last = dict(zip(epochs, values, strict=True))  # later rows of an epoch overwrite earlier ones
        x, y, x_label = list(last), list(last.values()), "epoch"
    name = metric_label(key)
    where = f"one measurement, at {x_label} {x[0]:g}" if len(x) == 1 else f"{len(x)} measurements"
    title = f"{name}: final {scale * y[-1]:.4g} ({where})"
    return Curve(list(x), [scale * v for v in y], x_label, name, title)


def plot_metric_over_epochs(
    rows: Sequence[Mapping[str, Any]], key: str, path: str | Path, per_step: bool | None = None
) -> Path:
    """Plot :func:`metric_curve` (per step for short runs); a single measurement is a labelled point, not a
    line; the top axis gives the epoch when the x axis is the step."""
    curve = metric_curve(rows, key, per_step)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(curve.x, curve.y, marker="o", ms=7 if len(curve.x) == 1 else 4)
    if len(curve.x) == 1:
        ax.annotate(f"{curve.y[0]:.4g}", (curve.x[0], curve.y[0]), textcoords="offset points", xytext=(8, 6))
    steps, epochs = _series(rows, "step", "epoch")
    ratio = next((e / s for s, e in zip(steps, epochs, strict=True) if s > 0 and e > 0), None)
    if curve.x_label != "epoch" and ratio is not None:
        top = ax.secondary_xaxis("top", functions=(lambda s: s * ratio, lambda e: e / ratio))
        top.set_xlabel("epoch")
    ax.set(xlabel=curve.x_label, ylabel=curve.y_label)
    ax.set_title(curve.title, fontsize=10)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_spectrum(
    eigenvalues: Tensor | np.ndarray | Sequence[float], path: str | Path, of: str = "the embeddings"
) -> Path:
    """Eigenvalues ``[D]`` of the covariance of ``of`` (words for the title), sorted descending, on a log scale
    (Jing et al., ICLR 2022, Fig. 2); the title gives the effective rank ``exp(H(lambda / sum lambda))``, so it
    equals the effective rank of a table that measured the same features. Zero eigenvalues (below the axis of a
    log plot) are counted in the title."""
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
    ax.set(xlabel="eigenvalue index (largest first)", ylabel="eigenvalue (log scale)")
    ax.set_title(f"Covariance spectrum of {of}\neffective rank {erank:.2f} of D={eig.numel()}{note}", fontsize=10)
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
        ax.semilogy(np.arange(1, positive.numel() + 1), positive.numpy(), label=f"{label}: effective rank {erank:.2f}")
    ax.set(xlabel="eigenvalue index (largest first)", ylabel="eigenvalue / largest (log scale)", title=title)
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
    class_names: Sequence[str] | None = None,
) -> Path:
    """2-D PCA map of ``features`` ``[N, D]``, points coloured by ``labels`` ``[N]`` (legend per class up to 20,
    by ``class_names[label]`` when given, else by the label id).

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
            name = class_names[int(cls)] if class_names is not None and int(cls) < len(class_names) else str(int(cls))
            ax.scatter(proj[mask, 0], proj[mask, 1], s=4, alpha=0.6, color=colour, label=name)
        if classes.size <= 20:
            ax.legend(title="class", markerscale=3, fontsize=7, loc="best")
    ax.set(
        xlabel=f"first principal component ({ratio[0]:.1%} of the variance)",
        ylabel=f"second principal component ({ratio[1]:.1%} of the variance)",
    )
    ax.set_title(f"Held-out embeddings, 2-D PCA ({index.size} of {x_np.shape[0]} points)")
    return save_figure(fig, path)
