"""Callbacks: code that any method's run can switch on, called by :func:`contrastkit.train.fit` at fixed points.

A callback subclasses :class:`Callback` and overrides what it needs:

* ``on_monitor(ctx) -> {name: float}`` at every monitor point (rank 0, module in eval mode), with the held-out
  backbone features the kNN monitor already computed; the returned metrics are logged beside ``knn_top1``;
* ``protocols() -> {name: text}`` how each of its metrics is measured (the run report needs one per metric);
* ``on_train_end(run_dir) -> [(title, png path)]`` after training (rank 0): plots the run report links.

Config-driven callbacks come from :func:`build_callbacks` (``monitor.collapse: true`` adds
:class:`CollapseMonitor`); ``fit(cfg, run_dir, callbacks=[...])`` adds a user's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from contrastkit import accel
from contrastkit.data import ImageDataset
from contrastkit.evaluate import collapse_report, embedding_spectrum, extract_features
from contrastkit.train.config import Config
from contrastkit.train.plots import plot_spectra

__all__ = ["MonitorContext", "Callback", "CollapseMonitor", "build_callbacks"]


@dataclass(frozen=True)
class MonitorContext:
    """What a callback sees at a monitor point.

    ``method``: the method (unwrapped, eval mode); ``held_out``: the evaluation split; ``features``: its backbone
    features ``[N, D]`` (float32, CPU); ``step`` and ``epoch``: the position; ``device``/``precision``: where and how
    to run extra forward passes.
    """

    step: int
    epoch: float
    method: nn.Module
    held_out: ImageDataset
    features: Tensor
    device: torch.device
    precision: str


class Callback:
    """Base class with no-op hooks (see the module docstring)."""

    def on_monitor(self, ctx: MonitorContext) -> dict[str, float]:
        return {}

    def protocols(self) -> dict[str, str]:
        return {}

    def on_train_end(self, run_dir: Path) -> list[tuple[str, Path]]:
        return []


class CollapseMonitor(Callback):
    """Dimensional-collapse diagnostics (Jing et al., ICLR 2022) of the representation and of the loss's space.

    At each monitor point: :func:`contrastkit.evaluate.collapse_report` of the held-out backbone features
    (``collapse_effective_rank``, ``collapse_collapsed_dims`` (eigenvalues <= ``rel`` x the largest),
    ``collapse_dead_units``) and, when the method's ``forward(x)`` maps images to the space its loss sees (SimCLR's
    projections, DirectCLR's first ``d0`` dimensions), the same of that space with a ``loss_space_`` prefix. Spectra
    are of the L2-normalised rows when ``normalize`` (the protocol of Jing et al., ICLR 2022: spectrum of the
    L2-normalised rows). At the end it plots the last spectra of both spaces.
    """

    def __init__(self, *, rel: float = 1e-4, normalize: bool = True, loss_space: bool = True) -> None:
        self.rel = rel
        self.normalize = normalize
        self.loss_space = loss_space
        self.spectra: dict[str, Tensor] = {}

    def _space(self, prefix: str, z: Tensor, name: str) -> dict[str, float]:
        z = z.float()
        report = collapse_report(z, rel=self.rel, normalize=self.normalize)
        self.spectra[name] = embedding_spectrum(torch.nn.functional.normalize(z, dim=1) if self.normalize else z)
        return {f"{prefix}{k}": v for k, v in report.items() if k != "dim"}

    def on_monitor(self, ctx: MonitorContext) -> dict[str, float]:
        metrics = self._space("collapse_", ctx.features, f"representation (D={ctx.features.shape[1]})")
        if self.loss_space and _has_own_forward(ctx.method):
            with accel.autocast(ctx.device, ctx.precision):
                z = extract_features(ctx.method, ctx.held_out.images, batch_size=1024, device=ctx.device)
            metrics.update(self._space("loss_space_", z, f"loss space (d={z.shape[1]})"))
        return metrics

    def protocols(self) -> dict[str, str]:
        rows = "L2-normalised rows, " if self.normalize else ""
        what = {
            "effective_rank": "exp(entropy of lambda / sum lambda)",
            "collapsed_dims": f"eigenvalues <= {self.rel:g} x the largest",
            "dead_units": "units that are 0 on every held-out image",
        }
        out = {
            f"collapse_{k}": f"{v} of the held-out backbone features' covariance ({rows}float64)"
            for k, v in what.items()
        }
        if self.loss_space:
            out.update(
                {
                    f"loss_space_{k}": f"{v} of the held-out embeddings the loss sees (method.forward; {rows}float64)"
                    for k, v in what.items()
                }
            )
        return out

    def on_train_end(self, run_dir: Path) -> list[tuple[str, Path]]:
        if not self.spectra:
            return []
        rows = "L2-normalised rows" if self.normalize else "rows as they are"
        path = plot_spectra(
            self.spectra,
            run_dir / "plots" / "collapse_spectra.png",
            title=f"Covariance spectra ({rows}) at the last monitor point",
        )
        return [("Collapse: spectra of the representation and of the loss space", path)]


def _has_own_forward(method: nn.Module) -> bool:
    """True when the method defines ``forward`` (nn.Module's default raises NotImplementedError)."""
    return type(method).forward is not nn.Module.forward


def build_callbacks(cfg: Config) -> list[Callback]:
    """The callbacks the config switches on (``monitor.collapse``)."""
    callbacks: list[Callback] = []
    if cfg.monitor.collapse:
        callbacks.append(CollapseMonitor(rel=cfg.monitor.collapse_rel))
    return callbacks


def check_callbacks(callbacks: Sequence[object]) -> list[Callback]:
    """``callbacks`` as a list, each a :class:`Callback` (ValueError naming the bad one)."""
    bad = [type(c).__name__ for c in callbacks if not isinstance(c, Callback)]
    if bad:
        raise ValueError(f"callbacks must subclass contrastkit.train.callbacks.Callback, got {bad}")
    return list(callbacks)
