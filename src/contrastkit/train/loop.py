"""The training loop: Lightning Fabric for devices, DDP and precision; an explicit, exactly resumable loop.

Data order and views are functions of ``(seed, step)`` only, so a run is reproducible and resumable without
replaying anything:

* epoch ``e`` visits the training set in the order ``randperm(N, seed=(seed, e))``; global step ``s`` takes the
  global batch ``s mod steps_per_epoch`` of epoch ``s // steps_per_epoch`` (the last incomplete batch is dropped);
* the views of step ``s`` are drawn for the *global* batch from a generator seeded with ``(seed, s)``, and rank ``r``
  of ``W`` trains on rows ``[r B/W, (r+1) B/W)``. Together with the gradient-exact gather in the losses, ``W``
  processes then see exactly what one process sees (with GlobalBatchNorm or batch-independent normalisation).

``checkpoints/last.ckpt`` is written atomically every ``checkpoint_every_steps`` and at the end; ``--resume``
restores model, optimisers, step, monitor state and RNG, so a run killed at any moment and resumed ends with the
same weights as an uninterrupted one (on the same device and thread count). A non-finite loss stops training
before the optimiser step, keeping the last good checkpoint.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from contrastkit import accel
from contrastkit._checks import NonFiniteError
from contrastkit._io import check_writable_dir
from contrastkit.methods import ViewBatch
from contrastkit.train.builders import build_data, build_method, build_optimizer, lr_factor
from contrastkit.train.callbacks import Callback, MonitorContext, build_callbacks, check_callbacks
from contrastkit.train.checkpoint import (
    BEST_CHECKPOINT,
    CHECKPOINT_DIR,
    LAST_CHECKPOINT,
    capture_rng_state,
    find_resume_checkpoint,
    load_training_checkpoint,
    restore_rng_state,
    save_training_checkpoint,
)
from contrastkit.train.config import Config, config_to_dict, dump_config
from contrastkit.train.monitors import TrainModule, evaluate_monitors, monitor_protocols
from contrastkit.train.report import MetricsLogger, write_run_report


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or Inf; training stopped and the last good checkpoint was kept."""


@dataclass
class LoopState:
    """What a checkpoint restores besides weights: the position and the monitors' memory."""

    step: int = 0
    elapsed: float = 0.0
    images_seen: int = 0
    best_knn: float = -1.0
    last_metrics: dict[str, float] = field(default_factory=dict)


def epoch_order(n: int, seed: int, epoch: int) -> Tensor:
    """The visiting order of epoch ``epoch``: a permutation of ``range(n)`` that depends on (seed, epoch) only."""
    return torch.randperm(n, generator=torch.Generator().manual_seed((seed * 1_000_003 + epoch) % 2**63))


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of step ``step``'s augmentation (CPU; parameters are moved to the batch's device)."""
    return torch.Generator().manual_seed((seed * 998_244_353 + step + 1) % 2**63)


def _device(accelerator: str) -> torch.device:
    if accelerator == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(accelerator)


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _progress(enabled: bool, total: int | None) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="step", dynamic_ncols=True, file=sys.stderr)


def fit(
    cfg: Config,
    run_dir: str | Path,
    *,
    resume: bool = False,
    command: str = "",
    callbacks: Sequence[Callback] = (),
) -> dict[str, Any]:
    """Train ``cfg`` into ``run_dir`` and return the run summary (also ``results.json`` and ``report.md``).

    ``callbacks`` (:class:`contrastkit.train.callbacks.Callback`) run beside the ones the config switches on
    (``monitor.collapse``); their metrics join the monitors' at every monitor point.
    """
    from lightning.fabric import Fabric

    callbacks = build_callbacks(cfg) + check_callbacks(callbacks)

    t = cfg.trainer
    device = _device(t.accelerator)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("trainer.accelerator=cuda but no CUDA device is visible: use trainer.accelerator=cpu")
    precision = accel.resolve_precision(t.precision, device)
    fabric = Fabric(
        accelerator=device.type,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy="ddp" if t.strategy == "ddp" else "auto",
        precision="bf16-mixed" if precision == "bf16" else "32-true",
    )
    fabric.launch()
    world, rank = fabric.world_size, fabric.global_rank
    if cfg.data.batch_size % world:
        raise ValueError(f"data.batch_size={cfg.data.batch_size} must be divisible by the {world} processes")
    run_dir = Path(run_dir)
    if fabric.is_global_zero:
        check_writable_dir(run_dir / CHECKPOINT_DIR)
    resume_file = find_resume_checkpoint(run_dir) if resume else None
    if resume and resume_file is None:
        raise ValueError(f"--resume: no checkpoint in {run_dir / CHECKPOINT_DIR}: drop --resume to start afresh")
    if not resume and fabric.is_global_zero and find_resume_checkpoint(run_dir) is not None:
        raise ValueError(f"{run_dir} already holds a run: pass --resume to continue it, or choose another --out")
    config_dict = config_to_dict(cfg)
    checkpoint = load_training_checkpoint(resume_file, expected_config=config_dict) if resume_file else None

    torch.manual_seed(t.seed)
    data = build_data(cfg)
    train = data.train
    image_size, channels = train.images.shape[-1], train.images.shape[1]
    method = build_method(cfg, image_size, channels)
    labelled = train.labels is not None
    module = TrainModule(method, train.num_classes if cfg.monitor.online_linear and labelled else None)
    use_channels_last = t.channels_last and precision == "bf16" or (t.channels_last and device.type == "cuda")
    module = accel.channels_last(module, use_channels_last)
    optimizer = build_optimizer(cfg, module.method)
    probe_optimizer = (
        torch.optim.Adam(module.online_classifier.parameters(), lr=1e-3)
        if module.online_classifier is not None
        else None
    )
    base_lrs = [group["lr"] for group in optimizer.param_groups]  # before a resumed state overwrites "lr"
    state = LoopState()
    if checkpoint is not None:
        module.load_state_dict(checkpoint["model_state"])
        optimizer.load_state_dict(checkpoint["optimizer_state"]["method"])
        if probe_optimizer is not None:
            probe_optimizer.load_state_dict(checkpoint["optimizer_state"]["probe"])
        extra = checkpoint["extra"]
        state = LoopState(
            checkpoint["step"], extra["elapsed"], extra["images_seen"], extra["best_knn"], dict(checkpoint["metrics"])
        )
        restore_rng_state(checkpoint["rng_state"])
    optimizers = [optimizer] + ([probe_optimizer] if probe_optimizer is not None else [])
    module, *optimizers = fabric.setup(module, *optimizers)
    module.mark_forward_method("training_step")

    global_batch, local_batch = cfg.data.batch_size, cfg.data.batch_size // world
    steps_per_epoch = len(train) // global_batch
    total_steps = (
        t.max_steps
        if t.max_steps is not None
        else (t.max_epochs * steps_per_epoch if t.max_epochs is not None else None)
    )
    budget = t.time_budget_minutes * 60.0 if t.time_budget_minutes is not None else None
    knn_every = (
        max(1, round(cfg.monitor.knn_every_epochs * steps_per_epoch))
        if cfg.monitor.knn_every_epochs > 0 and data.eval is not None
        else None
    )

    logger = MetricsLogger(run_dir) if fabric.is_global_zero else None
    if fabric.is_global_zero:
        dump_config(cfg, run_dir / "config.yaml")
        if checkpoint is not None and logger is not None:
            logger.truncate_after(state.step)
    bar = _progress(t.progress_bar and fabric.is_global_zero, total_steps)
    if bar is not None:
        bar.update(state.step)
    train_images = train.images
    train_labels = train.labels

    def save(name: str) -> None:
        # every rank checks (weights are identical across ranks), so all stop together and nothing bad is saved
        if not all(p.isfinite().all() for p in module.parameters()):
            last = find_resume_checkpoint(run_dir)
            kept = f"the last good checkpoint is {last}" if last else "no checkpoint was written"
            raise NonFiniteLossError(
                f"the weights became non-finite by step {state.step}: training stopped and "
                f"{kept}; lower optim.lr or use trainer.precision=32"
            )
        if fabric.is_global_zero:
            save_training_checkpoint(
                run_dir / CHECKPOINT_DIR / name,
                model_state=module.state_dict(),
                optimizer_state={
                    "method": optimizers[0].state_dict(),
                    "probe": optimizers[1].state_dict() if len(optimizers) > 1 else {},
                },
                scheduler_state=None,
                step=state.step,
                epoch=state.step // steps_per_epoch,
                batch_in_epoch=state.step % steps_per_epoch,
                rng_state=capture_rng_state(),
                config=config_dict,
                metrics=state.last_metrics,
                extra={"elapsed": state.elapsed, "images_seen": state.images_seen, "best_knn": state.best_knn},
                backbone_config=getattr(method.backbone, "config", None),
            )
        fabric.barrier()

    held_out_features: list[Tensor] = []  # the latest monitor's held-out features, for the report
    monitored_at = [-1]

    def run_monitors() -> None:
        monitored_at[0] = state.step
        if fabric.is_global_zero and data.eval is not None:
            unwrapped = module.module if hasattr(module, "module") else module
            metrics, features = evaluate_monitors(
                unwrapped,
                train,
                data.eval,
                cfg.monitor,
                device,
                precision,
                t.seed,
            )
            ctx = MonitorContext(
                state.step, state.step / steps_per_epoch, unwrapped.method, data.eval, features, device, precision
            )
            unwrapped.eval()
            for callback in callbacks:
                metrics.update(callback.on_monitor(ctx))
            unwrapped.train()
            state.last_metrics = metrics
            held_out_features[:] = [features]
            if logger is not None:
                logger.log({"step": state.step, "epoch": state.step / steps_per_epoch, **metrics})
            if metrics.get("knn_top1", -1.0) > state.best_knn:
                state.best_knn = metrics["knn_top1"]
                save(BEST_CHECKPOINT)
                return
        fabric.barrier()

    def finished() -> bool:
        if total_steps is not None:
            return state.step >= total_steps
        assert budget is not None
        return bool(fabric.broadcast(state.elapsed >= budget, src=0))

    module.train()
    order, order_epoch = None, -1
    while not finished():
        start = time.perf_counter()
        epoch, batch_index = divmod(state.step, steps_per_epoch)
        if epoch != order_epoch:
            order, order_epoch = epoch_order(len(train), t.seed, epoch), epoch
        assert order is not None
        idx = order[batch_index * global_batch : (batch_index + 1) * global_batch]
        images = train_images[idx].to(device, non_blocking=True)
        views = module.method.make_views(images, generator=step_generator(t.seed, state.step))
        local = slice(rank * local_batch, (rank + 1) * local_batch)
        views = tuple(v[local] for v in views)
        if use_channels_last:
            views = tuple(v.contiguous(memory_format=torch.channels_last) for v in views)
        labels = train_labels[idx][local].to(device) if train_labels is not None else None
        progress = state.step / total_steps if total_steps is not None else state.elapsed / budget  # type: ignore[operator]
        factor = lr_factor(cfg, progress)
        for group, base in zip(optimizers[0].param_groups, base_lrs, strict=True):
            group["lr"] = base * factor
        try:
            # Fabric enters the precision context for forward() and for a LightningModule's *_step methods only
            # (Lightning #16857 / #17439); TrainModule is a plain nn.Module, so without this bf16-mixed ran float32
            with fabric.autocast():
                out = module.training_step(ViewBatch(views, labels))
        except NonFiniteError:  # the losses refuse NaN/Inf embeddings: the same divergence, seen earlier
            out = {"total": torch.tensor(float("nan"))}
        total = out["total"]
        if not torch.isfinite(total).all():
            last = find_resume_checkpoint(run_dir)
            kept = f"the last good checkpoint is {last}" if last else "no checkpoint was written yet"
            raise NonFiniteLossError(
                f"the loss became {total.item()} at step {state.step} (epoch {epoch}): training "
                f"stopped and {kept}; lower optim.lr or use trainer.precision=32"
            )
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        fabric.backward(total)
        for opt in optimizers:
            opt.step()
        state.step += 1
        state.images_seen += global_batch
        state.elapsed += time.perf_counter() - start
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{out['loss'].item():.3f}", refresh=False)
        if logger is not None and (state.step % t.log_every_steps == 0):
            row = {
                "step": state.step,
                "epoch": state.step / steps_per_epoch,
                "lr": base_lrs[0] * factor,
                "images_per_s": state.images_seen / max(state.elapsed, 1e-9),
            }
            row.update({k: float(v) for k, v in out.items() if k != "total"})
            logger.log(row)
        if knn_every is not None and state.step % knn_every == 0:
            run_monitors()
        if state.step % t.checkpoint_every_steps == 0:
            save(LAST_CHECKPOINT)
    if bar is not None:
        bar.close()
    if data.eval is not None and monitored_at[0] != state.step:
        run_monitors()
    save(LAST_CHECKPOINT)
    features = held_out_features[0] if held_out_features else None
    return _summarise(
        cfg, fabric, data, state, steps_per_epoch, device, precision, command, run_dir, logger, features, callbacks
    )


def _summarise(
    cfg: Config,
    fabric: Any,
    data: Any,
    state: LoopState,
    steps_per_epoch: int,
    device: torch.device,
    precision: str,
    command: str,
    run_dir: Path,
    logger: MetricsLogger | None,
    features: Tensor | None,
    callbacks: Sequence[Callback] = (),
) -> dict[str, Any]:
    """The run summary; rank 0 also writes ``results.json``, ``report.md`` and the plots, and prints one line."""
    summary: dict[str, Any] = {
        "config": cfg.name,
        "command": command,
        "metrics": {},
        "protocols": {},
        "steps": state.step,
        "epochs": state.step / steps_per_epoch,
        "images_seen": state.images_seen,
        "train_seconds": round(state.elapsed, 2),
        "images_per_s": state.images_seen / max(state.elapsed, 1e-9),
        "peak_memory_mb": round(_peak_memory_mb(device), 1),
        "precision": precision,
        "world_size": fabric.world_size,
    }
    if not fabric.is_global_zero:
        return summary
    if data.eval is not None:
        bank = min(len(data.train), cfg.monitor.knn_max_train or len(data.train))
        protocols = monitor_protocols(cfg.monitor, cfg.data.eval_split or "eval", bank)
        for callback in callbacks:
            protocols.update(callback.protocols())
        summary["metrics"] = dict(state.last_metrics)
        summary["protocols"] = {k: protocols[k] for k in state.last_metrics}
    rows = logger.rows() if logger is not None else []
    if logger is not None:
        logger.close()
    labels = data.eval.labels if data.eval is not None else None
    extra_plots = [plot for callback in callbacks for plot in callback.on_train_end(run_dir)]
    write_run_report(run_dir, summary, rows, features=features, labels=labels, extra_plots=extra_plots)
    acc = summary["metrics"].get("knn_top1")
    print(
        f"done: {summary['epochs']:.2f} epochs, {state.step} steps in {state.elapsed:.0f} s, "
        f"{summary['images_per_s']:.0f} images/s, peak memory {summary['peak_memory_mb']:.0f} MB"
        + (f", kNN top-1 {100 * acc:.2f}%" if acc is not None else "")
        + f"; report: {run_dir / 'report.md'}",
        flush=True,
    )
    return summary
