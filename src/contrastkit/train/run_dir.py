"""Work on a finished (or interrupted) run directory: evaluate its checkpoint, export its backbone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from contrastkit import accel
from contrastkit._io import CheckpointError, atomic_write_text
from contrastkit.evaluate import cluster_scores, extract_features, knn_accuracy, linear_probe
from contrastkit.models import export_backbone
from contrastkit.train.builders import build_data
from contrastkit.train.checkpoint import (
    BEST_CHECKPOINT,
    CHECKPOINT_DIR,
    LAST_CHECKPOINT,
    backbone_of,
    load_training_checkpoint,
)
from contrastkit.train.config import Config, load_config

PROTOCOLS = ("knn", "linear", "nmi", "all")


def _open_run(run_dir: str | Path, which: str = "last") -> tuple[Config, dict[str, Any]]:
    run = Path(run_dir)
    if not (run / "config.yaml").is_file():
        raise ValueError(f"{run} has no config.yaml: pass the run directory written by `contrastkit train`")
    cfg = load_config(run / "config.yaml")
    name = BEST_CHECKPOINT if which == "best" else LAST_CHECKPOINT
    file = run / CHECKPOINT_DIR / name
    if not file.is_file():
        raise CheckpointError(f"{file} does not exist: the run has not written a {which} checkpoint yet")
    return cfg, load_training_checkpoint(file, expected_config=cfg)


def export_run(run_dir: str | Path, out: str | Path, which: str = "last") -> Path:
    """``contrastkit export``: the backbone-only file that :func:`contrastkit.models.load_backbone` reads."""
    cfg, checkpoint = _open_run(run_dir, which)
    metadata = {"run_dir": str(run_dir), "config": cfg.name, "step": checkpoint["step"], "checkpoint": which}
    return export_backbone(backbone_of(checkpoint), out, metadata=metadata)


def evaluate_run(run_dir: str | Path, protocol: str = "all", which: str = "last") -> dict[str, Any]:
    """``contrastkit evaluate``: frozen-backbone protocols on the run's data; writes ``evaluation.json``."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    cfg, checkpoint = _open_run(run_dir, which)
    data = build_data(cfg)
    if data.eval is None or data.train.labels is None or data.eval.labels is None:
        raise ValueError("evaluation needs labelled train and eval splits: set data.eval_split in the config")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = accel.resolve_precision(cfg.trainer.precision, device)
    backbone = backbone_of(checkpoint).to(device)
    with accel.autocast(device, precision):
        f_train = extract_features(backbone, data.train.images, batch_size=1024, device=device)
        f_eval = extract_features(backbone, data.eval.images, batch_size=1024, device=device)
    split = cfg.data.eval_split
    metrics: dict[str, float] = {}
    protocols: dict[str, str] = {}
    if protocol in ("knn", "all"):
        k, temperature = cfg.monitor.knn_k, cfg.monitor.knn_temperature
        metrics["knn_top1"] = knn_accuracy(
            f_train, data.train.labels, f_eval, data.eval.labels, k=k, temperature=temperature
        )
        protocols["knn_top1"] = f"weighted kNN (k={k}, T={temperature}, cosine), train split as memory bank, {split}"
    if protocol in ("linear", "all"):
        probe = linear_probe(f_train, data.train.labels, f_eval, data.eval.labels, seed=cfg.trainer.seed)
        metrics["linear_top1"] = probe.test_accuracy
        protocols["linear_top1"] = f"linear probe (L-BFGS, standardised frozen features) trained on train, {split}"
    if protocol in ("nmi", "all"):
        scores = cluster_scores(f_eval, data.eval.labels, method="kmeans", seed=cfg.trainer.seed)
        metrics["kmeans_nmi"], metrics["kmeans_ari"] = scores["nmi"], scores["ari"]
        protocols["kmeans_nmi"] = protocols["kmeans_ari"] = (
            f"k-means (k = number of classes, L2-normalised features) on {split}"
        )
    result = {
        "run_dir": str(run_dir),
        "checkpoint": which,
        "step": checkpoint["step"],
        "metrics": metrics,
        "protocols": protocols,
    }
    atomic_write_text(Path(run_dir) / "evaluation.json", json.dumps(result, indent=2) + "\n")
    return result
