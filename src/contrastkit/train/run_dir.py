"""Work on a finished (or interrupted) run directory: evaluate its checkpoint, export its backbone."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from contrastkit._io import CheckpointError, atomic_write_text
from contrastkit.data import ImageDataset
from contrastkit.evaluate import Embedding, extract_features
from contrastkit.evaluate.protocols import evaluate_features
from contrastkit.models import export_backbone
from contrastkit.train.builders import build_data, build_method
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


def method_of(cfg: Config, checkpoint: dict[str, Any], train: ImageDataset) -> nn.Module:
    """The trained method of a run, rebuilt from its config and checkpoint (eval mode); ``model.init_from`` is not
    read again (the checkpoint holds the trained weights)."""
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, init_from=None))
    method = build_method(cfg, train)
    prefix = "method."
    state = {k[len(prefix) :]: v for k, v in checkpoint["model_state"].items() if k.startswith(prefix)}
    try:
        method.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"the checkpoint does not fit its config's method: {str(err).splitlines()[0]}") from None
    return method.eval()


def evaluate_run(run_dir: str | Path, protocol: str = "all", which: str = "last") -> dict[str, Any]:
    """``contrastkit evaluate``: frozen-feature protocols (:mod:`contrastkit.evaluate.protocols`) on the
    representation ``method.embed`` of the run's data; writes ``evaluation.json``."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    cfg, checkpoint = _open_run(run_dir, which)
    data = build_data(cfg)
    if data.eval is None or data.train.labels is None or data.eval.labels is None:
        raise ValueError("evaluation needs labelled train and eval splits: set data.eval_split in the config")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    embedding = Embedding(method_of(cfg, checkpoint, data.train)).to(device)
    kwargs = {"batch_size": 1024, "device": device, "precision": cfg.trainer.precision}
    f_train = extract_features(embedding, data.train.images, **kwargs)  # type: ignore[arg-type]
    f_eval = extract_features(embedding, data.eval.images, **kwargs)  # type: ignore[arg-type]
    measured = evaluate_features(
        f_train,
        data.train.labels,
        f_eval,
        data.eval.labels,
        ["knn", "linear", "nmi"] if protocol == "all" else [protocol],
        k=cfg.monitor.knn_k,
        temperature=cfg.monitor.knn_temperature,
        seed=cfg.trainer.seed,
        bank_text=f"the {len(data.train)} images of the {cfg.data.train_split} split",
        query_text=f"the {len(data.eval)} images of the {cfg.data.eval_split} split",
    )
    result = {
        "run_dir": str(run_dir),
        "checkpoint": which,
        "step": checkpoint["step"],
        "metrics": {name: m.value for name, m in measured.items()},
        "protocols": {name: m.protocol for name, m in measured.items()},
    }
    atomic_write_text(Path(run_dir) / "evaluation.json", json.dumps(result, indent=2) + "\n")
    return result
