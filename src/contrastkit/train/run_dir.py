"""Work on a finished (or interrupted) run directory: evaluate its checkpoint, export its backbone."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from contrastkit import accel
from contrastkit._io import TRAIN_FORMAT, CheckpointError, atomic_write_text, load_torch_file
from contrastkit.data import GraphDataset, ImageDataset
from contrastkit.errors import OverwriteRefusedError
from contrastkit.evaluate.protocols import evaluate_features
from contrastkit.models import export_backbone
from contrastkit.train.builders import Data, build_data, build_method
from contrastkit.train.checkpoint import (
    BEST_CHECKPOINT,
    CHECKPOINT_DIR,
    LAST_CHECKPOINT,
    backbone_of,
    load_training_checkpoint,
)
from contrastkit.train.config import Config, load_config
from contrastkit.train.graph_evaluation import GRAPH_PROTOCOL, node_classification_record
from contrastkit.train.monitors import data_texts, embed_images, features_note
from contrastkit.train.progress import Progress
from contrastkit.train.report import EVALUATION_FILE, read_evaluation, update_report_evaluation

PROTOCOLS = ("knn", "linear", "nmi", "node", "all")  # node: graph runs (node classification)


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


def is_run_directory(folder: Path) -> bool:
    """A folder written by ``contrastkit train``: it holds ``config.yaml`` and a ``checkpoints/`` folder."""
    return (folder / "config.yaml").is_file() and (folder / CHECKPOINT_DIR).is_dir()


def _is_training_checkpoint(file: Path) -> bool:
    if file.suffix == ".ckpt" or file.parent.name == CHECKPOINT_DIR:
        return True
    try:
        payload = load_torch_file(file, what="file")
    except CheckpointError:
        return False
    return isinstance(payload, dict) and payload.get("format") == TRAIN_FORMAT


def check_export_target(out: str | Path, *, force: bool = False) -> Path:
    """Refuse an ``export --out`` that would replace a training checkpoint or a file inside a run directory (never
    allowed), or any other existing file unless ``force``; a new file (also inside a run directory) is fine."""
    target = Path(out).expanduser()
    if target.is_dir():
        raise OverwriteRefusedError(
            f"--out {target} is a directory: name a file inside it, e.g. {target / 'backbone.pt'}"
        )
    if not target.exists():
        return target
    resolved = target.resolve()
    inside = next((folder for folder in resolved.parents if is_run_directory(folder)), None)
    if inside is not None:
        raise OverwriteRefusedError(
            f"--out {target} would replace a file of the run directory {inside}: choose a new file name"
        )
    if _is_training_checkpoint(resolved):
        raise OverwriteRefusedError(
            f"--out {target} is a training checkpoint and is never replaced: choose another --out"
        )
    if not force:
        raise OverwriteRefusedError(
            f"--out {target} already exists: pass --force to replace it, or choose another --out"
        )
    return target


def export_run(run_dir: str | Path, out: str | Path, which: str = "last", *, force: bool = False) -> Path:
    """``contrastkit export``: the backbone-only file that :func:`contrastkit.models.load_backbone` reads.

    ``out`` must not replace a checkpoint or a file of a run directory; another existing file needs ``force``
    (:func:`check_export_target`, checked before the checkpoint is read)."""
    check_export_target(out, force=force)
    cfg, checkpoint = _open_run(run_dir, which)
    metadata = {"run_dir": str(run_dir), "config": cfg.name, "step": checkpoint["step"], "checkpoint": which}
    return export_backbone(backbone_of(checkpoint), out, metadata=metadata)


def method_of(cfg: Config, checkpoint: dict[str, Any], train: ImageDataset | GraphDataset) -> nn.Module:
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


def untrained_method(cfg: Config, train: ImageDataset | GraphDataset) -> nn.Module:
    """The run's method at its initial weights (eval mode): built after ``torch.manual_seed(trainer.seed)``, as
    :func:`contrastkit.train.builders.build_engine` builds it, without ``model.init_from``; the global RNG is
    left as it was."""
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, init_from=None))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.trainer.seed)
        return build_method(cfg, train).eval()


def evaluate_run(
    run_dir: str | Path,
    protocol: str = "all",
    which: str = "last",
    *,
    baselines: bool = True,
    progress: bool | None = None,
) -> dict[str, Any]:
    """``contrastkit evaluate``: frozen-feature protocols (:mod:`contrastkit.evaluate.protocols`) on the
    representation ``method.embed`` of the run's data.

    With ``baselines``, ``knn`` and ``linear`` are also measured, under the same protocol, on the features of the
    untrained method (:func:`untrained_method`) and on the raw pixels. The records are merged by protocol and
    checkpoint into ``evaluation.json`` (a protocol evaluated again replaces its record; the others stay) and
    the evaluation section of ``report.md`` is rewritten (:mod:`contrastkit.train.report`). ``progress`` (default:
    the run's ``trainer.progress_bar``) prints each phase: feature extraction with a bar, then each protocol.
    Returns this call's ``{"run_dir", "checkpoint", "step", "seconds", "metrics", "protocols"}``, the baselines
    as metrics ``<metric>_random_init`` and ``<metric>_raw_pixels``."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    cfg, checkpoint = _open_run(run_dir, which)
    data = build_data(cfg)
    if isinstance(data.train, GraphDataset):
        return _evaluate_graph_run(run_dir, cfg, checkpoint, data.train, protocol, which, baselines)
    if protocol == GRAPH_PROTOCOL:
        raise ValueError(f"--protocol {GRAPH_PROTOCOL} is for graph runs; {run_dir} trained on images")
    config_file = Path(run_dir) / "config.yaml"
    if data.eval is None:
        raise ValueError(
            f"{config_file} has data.eval_split: null, so the run has no held-out split: name one there "
            "(folder / npz data: with data.eval_path or data.eval_fraction)"
        )
    if data.train.labels is None or data.eval.labels is None:
        raise ValueError(
            f"--protocol {protocol} needs class labels, but the run's data is unlabelled (data.labelled: false in "
            f"{config_file}): to evaluate the backbone, make the data section there name labelled data "
            "(data.labelled: true)"
        )
    started = time.perf_counter()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = accel.resolve_precision(cfg.trainer.precision, device)
    show = Progress(cfg.trainer.progress_bar if progress is None else progress)
    names = ["knn", "linear", "nmi"] if protocol == "all" else [protocol]
    step = checkpoint["step"]
    show.say(f"evaluating the {which} checkpoint (step {step}) of {run_dir}: {', '.join(names)} on {device}")
    method = method_of(cfg, checkpoint, data.train)
    features = {"trained": _embed_splits(method, data, device, precision, show, "")}
    compare = baselines and any(name in ("knn", "linear") for name in names)
    if compare:
        untrained = untrained_method(cfg, data.train)
        features["random_init"] = _embed_splits(untrained, data, device, precision, show, " (untrained)")
        features["raw_pixels"] = (data.train.images.flatten(1).float(), data.eval.images.flatten(1).float())
    eval_split = cfg.data.eval_split or "held-out"
    bank_text, query_text = data_texts(
        cfg.data.train_split, len(data.train), len(data.train), eval_split, len(data.eval), cfg.trainer.seed
    )
    note = features_note(precision)
    kind_texts = {
        "random_init": features_note(precision, f"method.embed of the untrained method (seed {cfg.trainer.seed})"),
        "raw_pixels": f"features: the pixels, flattened to [N, {data.train.images[0].numel()}], float32",
    }
    records: dict[str, dict[str, Any]] = {}
    result: dict[str, Any] = {"run_dir": str(run_dir), "checkpoint": which, "step": step}
    result.update(metrics={}, protocols={})
    for name in names:
        begun = time.perf_counter()
        record: dict[str, Any] = {"checkpoint": which, "step": step, "metrics": {}, "protocols": {}}
        kinds = list(features) if compare and name in ("knn", "linear") else ["trained"]
        for kind in kinds:
            with show.phase(f"{_PHASES[name]}{'' if kind == 'trained' else ' on the ' + _KINDS[kind]}"):
                measured = evaluate_features(
                    features[kind][0], data.train.labels, features[kind][1], data.eval.labels, [name],
                    k=cfg.monitor.knn_k, temperature=cfg.monitor.knn_temperature, seed=cfg.trainer.seed,
                    bank_text=bank_text, query_text=query_text,
                )  # fmt: skip
            for metric, m in measured.items():
                key = metric if kind == "trained" else f"{metric}_{kind}"
                result["metrics"][key] = m.value
                result["protocols"][key] = f"{m.protocol}; {note if kind == 'trained' else kind_texts[kind]}"
                if kind == "trained":
                    record["metrics"][metric], record["protocols"][metric] = m.value, result["protocols"][key]
                else:
                    record.setdefault("baselines", {}).setdefault(metric, {})[kind] = m.value
        if len(kinds) > 1:
            record["baseline_features"] = kind_texts
        record["seconds"] = round(time.perf_counter() - begun, 1)
        records[name] = record
    _save_records(run_dir, which, records)
    result["seconds"] = round(time.perf_counter() - started, 1)
    show.say(f"evaluation: {result['seconds']:.0f} s")
    return result


def _save_records(run_dir: str | Path, which: str, records: dict[str, dict[str, Any]]) -> None:
    """Merge ``records`` (by protocol, for checkpoint ``which``) into ``evaluation.json``; rewrite the report."""
    evaluation = read_evaluation(run_dir)
    evaluation["run_dir"] = str(run_dir)
    for name, record in records.items():
        evaluation["evaluations"].setdefault(name, {})[which] = record
    atomic_write_text(Path(run_dir) / EVALUATION_FILE, json.dumps(evaluation, indent=2) + "\n")
    update_report_evaluation(run_dir)


def _evaluate_graph_run(run_dir: str | Path, cfg: Config, checkpoint: dict[str, Any], train: GraphDataset,
                        protocol: str, which: str, baselines: bool) -> dict[str, Any]:  # fmt: skip
    """``evaluate_run`` for a graph run: the ``node`` protocol (:mod:`contrastkit.train.graph_evaluation`)."""
    if protocol not in (GRAPH_PROTOCOL, "all"):
        raise ValueError(f"{run_dir} trained on a graph: evaluate it with --protocol {GRAPH_PROTOCOL} (or all)")
    started = time.perf_counter()
    method = method_of(cfg, checkpoint, train)
    untrained = untrained_method(cfg, train) if baselines else None
    record = node_classification_record(method, untrained, train.graph, cfg.trainer.seed, which, checkpoint["step"])
    _save_records(run_dir, which, {GRAPH_PROTOCOL: record})
    result: dict[str, Any] = {"run_dir": str(run_dir), "checkpoint": which, "step": checkpoint["step"]}
    result["metrics"], result["protocols"] = dict(record["metrics"]), dict(record["protocols"])
    for metric, values in record.get("baselines", {}).items():
        for kind, value in values.items():
            result["metrics"][f"{metric}_{kind}"] = value
            result["protocols"][f"{metric}_{kind}"] = record["baseline_features"][kind]
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


_PHASES = {"knn": "kNN", "linear": "linear probe (L-BFGS, at most 500 iterations)", "nmi": "k-means NMI / ARI"}
_KINDS = {"random_init": "untrained method's features", "raw_pixels": "raw pixels"}


def _embed_splits(
    method: nn.Module, data: Data, device: torch.device, precision: str, show: Progress, what: str
) -> tuple[Tensor, Tensor]:
    """``method.embed`` features of the training and held-out splits (``[N, D]``, ``[M, D]``)."""
    assert data.eval is not None
    return (
        embed_images(method, data.train.images, device, precision, show, f"embedding the train split{what}"),
        embed_images(method, data.eval.images, device, precision, show, f"embedding the held-out split{what}"),
    )
