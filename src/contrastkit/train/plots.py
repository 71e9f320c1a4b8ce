"""The plots of contrastkit, for run reports and reproduction reports alike: loss and metric curves, covariance
spectra, the 2-D PCA map of embeddings. Every figure is written atomically as PNG; matplotlib (Agg) is imported
inside the functions only, so importing this module is cheap."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from contrastkit._io import atomic_write, check_writable_dir

__all__ = [
    "plot_embedding_map", "plot_loss_curve", "plot_metric_over_epochs", "plot_spectra", "plot_spectrum", "pyplot",
    "save_figure",
]  # fmt: skip


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
