"""``fit``: the run-directory shell around the engine (:mod:`contrastkit.train.engine`).

``fit(cfg, run_dir)`` builds the run (:func:`contrastkit.train.builders.build_engine`, the same call every
reproduction arm makes), then adds what a run directory needs, each as an engine callback: ``metrics.csv`` and
TensorBoard rows every ``log_every_steps``, the held-out monitors every ``knn_every_epochs`` (``best.ckpt`` at the
best kNN accuracy), ``checkpoints/last.ckpt`` every ``checkpoint_every_steps`` and at the end (atomic), and at the
end ``results.json`` and ``report.md`` with plots. With ``trainer.progress_bar`` every long phase shows
progress (:mod:`contrastkit.train.progress`): the training bar (step, epoch, training time of the budget, time
left, images/s, loss), the feature extraction of each monitor, the report.

``--resume`` restores model, optimisers, step, monitor state and RNG, so a run killed at any moment and resumed
ends with the same weights as an uninterrupted one (on the same device and thread count). A non-finite loss stops
training before the optimiser step, keeping the last good checkpoint; with ``trainer.loss_explosion_factor`` a loss
that stays above that multiple of its running median stops it too (:mod:`contrastkit.train.divergence`), and the
periodic save waits while the loss is above it, so ``last.ckpt`` precedes the divergence. With
``trainer.keep_checkpoints = K > 1`` the K newest saves are also kept as ``checkpoints/step-NNNNNNNN.ckpt``.
"""

from __future__ import annotations

import contextlib
import resource
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from contrastkit._io import CheckpointError, check_writable_dir
from contrastkit.distributed import is_collective_failure
from contrastkit.errors import TrainingInterrupted
from contrastkit.train.builders import Data, build_data, build_engine
from contrastkit.train.callbacks import Callback, MonitorContext, build_callbacks, check_callbacks
from contrastkit.train.checkpoint import (
    BEST_CHECKPOINT,
    CHECKPOINT_DIR,
    LAST_CHECKPOINT,
    capture_rng_state,
    check_resume_config,
    find_resume_checkpoint,
    keep_newest_checkpoints,
    load_training_checkpoint,
    restore_rng_state,
    save_training_checkpoint,
)
from contrastkit.train.config import Config, config_to_dict, dump_config
from contrastkit.train.divergence import LossExplosionError, LossExplosionGuard, diverged_error
from contrastkit.train.engine import Engine, NonFiniteLossError, StepCallback
from contrastkit.train.interrupts import collective_timeout_error, stop_on_signals
from contrastkit.train.metrics_log import MetricsLogger
from contrastkit.train.monitors import TrainModule, bank_of, data_texts, evaluate_monitors, monitor_protocols
from contrastkit.train.plots import FEW_EPOCHS
from contrastkit.train.progress import Progress, TrainingBar
from contrastkit.train.report import write_run_report
from contrastkit.train.run_lock import RunLock, is_launching_process
from contrastkit.train.runtime import Runtime, make_runtime

__all__ = ["NonFiniteLossError", "fit"]


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


class _RunDirectory(StepCallback):
    """Logging, monitors and checkpoints of one run directory (rank 0 writes; every rank takes part)."""

    def __init__(
        self, cfg: Config, run_dir: Path, runtime: Runtime, module: TrainModule, data: Data, callbacks: list[Callback]
    ) -> None:
        self.cfg, self.run_dir, self.runtime, self.module, self.data = cfg, run_dir, runtime, module, data
        self.callbacks = callbacks
        self.logger = MetricsLogger(run_dir) if runtime.is_global_zero else None
        self.best_knn = -1.0
        self.last_metrics: dict[str, float] = {}
        self.features: Tensor | None = None  # the latest monitor's held-out features, for the report
        self.monitored_at = -1
        self.bar: TrainingBar | None = None
        self.progress = Progress(cfg.trainer.progress_bar and runtime.is_global_zero)
        self.knn_every: int | None = None
        self.step_losses: list[tuple[int, float, Tensor]] = []  # every step's loss while the run is short
        self.logged_monitor_at = -1  # the step of the last monitor row in metrics.csv (restored by --resume)
        self.saved_step: int | None = None  # the step of checkpoints/last.ckpt
        self.save_due = False  # a periodic save waits while the loss is above the explosion guard's threshold
        t = cfg.trainer
        self.guard = (
            LossExplosionGuard(t.loss_explosion_factor, t.loss_explosion_steps)
            if t.loss_explosion_factor is not None
            else None
        )

    def start(self, engine: Engine, checkpoint: dict[str, Any] | None) -> None:
        m, t = self.cfg.monitor, self.cfg.trainer
        if m.knn_every_epochs > 0 and self.data.eval is not None:
            self.knn_every = max(1, round(m.knn_every_epochs * engine.steps_per_epoch))
        if checkpoint is not None:
            self.best_knn = float(checkpoint["extra"]["best_knn"])
            self.last_metrics = dict(checkpoint["metrics"])
            self.logged_monitor_at = int(checkpoint["extra"].get("monitored_at", -1))
            self.saved_step = int(checkpoint["step"])
            if self.guard is not None:
                self.guard.load_state_dict(checkpoint["extra"].get("loss_guard", {}))
            if self.logger is not None:
                self.logger.truncate_after(engine.state.step)
        if t.progress_bar and self.runtime.is_global_zero:
            self.bar = TrainingBar(enabled=True)

    def save(self, engine: Engine, name: str) -> None:
        # every rank checks (weights are identical across ranks), so all stop together and nothing bad is saved
        step = engine.state.step
        if not all(p.isfinite().all() for p in self.module.parameters()):
            raise NonFiniteLossError(f"the weights became non-finite by step {step}: training stopped")
        if self.runtime.is_global_zero:
            loop = engine.state_dict()
            optimizers = loop.pop("optimizers")
            extra = {"elapsed": loop["elapsed"], "images_seen": loop["samples_seen"], "best_knn": self.best_knn,
                     "monitored_at": self.logged_monitor_at}  # fmt: skip
            if self.guard is not None:
                extra["loss_guard"] = self.guard.state_dict()
            path = save_training_checkpoint(
                self.run_dir / CHECKPOINT_DIR / name,
                model_state=self.module.state_dict(),
                optimizer_state={"method": optimizers[0], "probe": optimizers[1] if len(optimizers) > 1 else {}},
                scheduler_state=None,
                step=step,
                epoch=step // engine.steps_per_epoch,
                batch_in_epoch=step % engine.steps_per_epoch,
                rng_state=capture_rng_state(),
                config=config_to_dict(self.cfg),
                metrics=self.last_metrics,
                extra=extra,
                backbone_config=getattr(getattr(self.module.method, "backbone", None), "config", None),
            )
            if name == LAST_CHECKPOINT:
                keep_newest_checkpoints(path, step, self.cfg.trainer.keep_checkpoints)
        if name == LAST_CHECKPOINT:
            self.saved_step = step
        self.runtime.barrier()

    def monitor(self, engine: Engine) -> None:
        self.monitored_at = engine.state.step
        rt, cfg = self.runtime, self.cfg
        if rt.is_global_zero and self.data.eval is not None:
            metrics, features = evaluate_monitors(
                self.module, self.data.train, self.data.eval, cfg.monitor, rt.device, rt.precision, cfg.trainer.seed,
                progress=self.progress,
            )  # fmt: skip
            ctx = MonitorContext(
                engine.state.step, engine.epoch, self.module.method, self.data.eval, features, rt.device, rt.precision
            )
            self.module.eval()
            for callback in self.callbacks:
                metrics.update(callback.on_monitor(ctx))
            self.module.train()
            self.last_metrics, self.features = metrics, features
            if self.logger is not None and self.logged_monitor_at != engine.state.step:  # once per step, also
                self.logger.log({"step": engine.state.step, "epoch": engine.epoch, **metrics})  # after --resume
            self.logged_monitor_at = engine.state.step
            if metrics.get("knn_top1", -1.0) > self.best_knn:
                self.best_knn = metrics["knn_top1"]
                self.save(engine, BEST_CHECKPOINT)
                return
        rt.barrier()

    def on_step_end(self, engine: Engine, outputs: dict[str, Tensor]) -> None:
        s, t = engine.state, self.cfg.trainer
        if self.bar is not None:
            self.bar.update(engine, float(outputs["loss"]))
        if engine.epoch < FEW_EPOCHS:  # a short run plots every step; detached, read at the end (no sync per step)
            self.step_losses.append((s.step, engine.epoch, outputs["loss"].detach()))
        if self.logger is not None and s.step % t.log_every_steps == 0:
            row = {
                "step": s.step,
                "epoch": engine.epoch,
                "lr": engine.optimizers[0].param_groups[0]["lr"],
                "images_per_s": s.samples_seen / max(s.elapsed, 1e-9),
            }
            row.update({k: float(v) for k, v in outputs.items() if k != "total" and v.ndim == 0})
            self.logger.log(row)
        if self.guard is not None:
            self.check_loss(engine, float(outputs["loss"]))
        if self.knn_every is not None and s.step % self.knn_every == 0:
            self.monitor(engine)
        self.save_due = self.save_due or s.step % t.checkpoint_every_steps == 0
        if self.save_due and (self.guard is None or self.guard.streak == 0):
            self.save(engine, LAST_CHECKPOINT)
            self.save_due = False

    def check_loss(self, engine: Engine, loss: float) -> None:
        """The loss-explosion guard: every process agrees whether this step's loss is above the threshold."""
        assert self.guard is not None
        above = bool(self.runtime.max_int(int(self.guard.is_above(loss))))
        if self.guard.record(engine.state.step, loss, above):
            raise LossExplosionError(self.guard.describe(engine.state.step))

    def on_train_end(self, engine: Engine) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.knn_every is not None and self.monitored_at != engine.state.step and engine.stopped_by is None:
            self.progress.say(f"final evaluation at step {engine.state.step}: held-out monitors")
            self.monitor(engine)
        self.save(engine, LAST_CHECKPOINT)


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

    The launching process holds the run directory's lock (:mod:`contrastkit.train.run_lock`) while it runs. Every
    check of the input (the run directory, ``--resume`` against the checkpoint's config, the data) runs in every
    process before the DDP processes start and before anything is written.
    """
    callbacks = build_callbacks(cfg) + check_callbacks(callbacks)
    run_dir = Path(run_dir)
    lock = RunLock(run_dir) if is_launching_process() else None
    created = not run_dir.exists()
    if lock is not None:
        check_writable_dir(run_dir)
        lock.acquire()
        for stale in (run_dir / CHECKPOINT_DIR).glob(".*.tmp"):  # left by a killed writer (see contrastkit._io)
            stale.unlink(missing_ok=True)
    try:
        return _fit(cfg, run_dir, resume, command, callbacks)
    finally:
        if lock is not None:
            lock.release()
            if created:  # a run that failed before writing anything leaves no empty folders behind
                for folder in (run_dir / CHECKPOINT_DIR, run_dir):
                    with contextlib.suppress(OSError):
                        folder.rmdir()


def _restore(checkpoint: dict[str, Any], engine: Engine, module: TrainModule, file: Path | None) -> None:
    """Load a checkpoint's weights, optimiser and loop state and RNG; one-line :class:`CheckpointError` when
    they do not fit the run that the config builds."""
    try:
        module.load_state_dict(checkpoint["model_state"])
        optimizers = [checkpoint["optimizer_state"]["method"]]
        if module.online_classifier is not None:
            optimizers.append(checkpoint["optimizer_state"]["probe"])
        extra = checkpoint["extra"]
        engine.load_state_dict(
            {"step": checkpoint["step"], "elapsed": extra["elapsed"], "samples_seen": extra["images_seen"],
             "optimizers": optimizers}
        )  # fmt: skip
        restore_rng_state(checkpoint["rng_state"])
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as err:
        what = f"entry {err.args[0]!r} is missing" if isinstance(err, KeyError) else " ".join(str(err).split())[:300]
        raise CheckpointError(
            f"--resume: checkpoint {file} does not fit the run this config builds ({what}): resume with the "
            "run's own data and config.yaml, or drop --resume and choose another --out"
        ) from None


def _fit(cfg: Config, run_dir: Path, resume: bool, command: str, callbacks: list[Callback]) -> dict[str, Any]:
    t = cfg.trainer
    resume_file = find_resume_checkpoint(run_dir) if resume else None
    if resume and resume_file is None:
        raise ValueError(f"--resume: no checkpoint in {run_dir / CHECKPOINT_DIR}: drop --resume to start afresh")
    if not resume and find_resume_checkpoint(run_dir) is not None:
        raise ValueError(f"{run_dir} already holds a run: pass --resume to continue it, or choose another --out")
    checkpoint = load_training_checkpoint(resume_file) if resume_file else None
    if checkpoint is not None:
        check_resume_config(checkpoint["config"], config_to_dict(cfg), where=f"checkpoint {resume_file}")
    data = build_data(cfg)
    runtime = make_runtime(t.accelerator, t.devices, t.num_nodes, t.strategy, t.precision, t.collective_timeout)
    try:
        return _train(cfg, run_dir, runtime, data, checkpoint, resume_file, command, callbacks)
    except Exception as err:
        if runtime.world_size > 1 and is_collective_failure(err):
            raise collective_timeout_error(runtime, t.collective_timeout) from None
        raise


def _train(
    cfg: Config,
    run_dir: Path,
    runtime: Runtime,
    data: Data,
    checkpoint: dict[str, Any] | None,
    resume_file: Path | None,
    command: str,
    callbacks: list[Callback],
) -> dict[str, Any]:
    if runtime.is_global_zero:
        check_writable_dir(run_dir / CHECKPOINT_DIR)
    engine, module, data = build_engine(cfg, data, runtime=runtime)
    if checkpoint is not None:
        _restore(checkpoint, engine, module, resume_file)
    directory = _RunDirectory(cfg, run_dir, runtime, module, data, callbacks)
    engine.callbacks.append(directory)
    if runtime.is_global_zero:
        dump_config(cfg, run_dir / "config.yaml")
    directory.start(engine, checkpoint)
    try:
        with stop_on_signals(engine):
            engine.run()
    except NonFiniteLossError as err:
        last = find_resume_checkpoint(run_dir)
        raise diverged_error(err, cfg, runtime.precision, last, directory.saved_step) from None
    summary = _summarise(cfg, engine, runtime, data, command, run_dir, directory)
    if engine.stopped_by is not None:
        name = signal.Signals(engine.stopped_by).name
        raise TrainingInterrupted(
            f"stopped by {name} after step {engine.state.step}: saved {run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT} "
            f"and {run_dir / 'report.md'}; continue with --resume",
            engine.stopped_by,
        )
    return summary


def _summarise(
    cfg: Config, engine: Engine, runtime: Runtime, data: Data, command: str, run_dir: Path, directory: _RunDirectory
) -> dict[str, Any]:
    """The run summary; rank 0 also writes ``results.json``, ``report.md`` and the plots, and prints one line."""
    state = engine.state
    summary: dict[str, Any] = {
        "config": cfg.name,
        "command": command,
        "metrics": {},
        "protocols": {},
        "steps": state.step,
        "epochs": engine.epoch,
        "images_seen": state.samples_seen,
        "train_seconds": round(state.elapsed, 2),
        "images_per_s": state.samples_seen / max(state.elapsed, 1e-9),
        "peak_memory_mb": round(_peak_memory_mb(runtime.device), 1),
        "precision": runtime.precision,
        "world_size": runtime.world_size,
    }
    if engine.stopped_by is not None:
        summary["stopped_by"] = signal.Signals(engine.stopped_by).name
    if not runtime.is_global_zero:
        return summary
    if data.eval is not None:
        bank = len(bank_of(data.train, cfg.monitor, cfg.trainer.seed))
        split = cfg.data.eval_split or "held-out"
        texts = data_texts(cfg.data.train_split, len(data.train), bank, split, len(data.eval), cfg.trainer.seed)
        protocols = monitor_protocols(cfg.monitor, *texts, runtime.precision)
        for callback in directory.callbacks:
            protocols.update(callback.protocols())
        summary["metrics"] = dict(directory.last_metrics)
        summary["protocols"] = {k: protocols[k] for k in directory.last_metrics}
    logger = directory.logger
    rows = logger.rows() if logger is not None else []
    if logger is not None:
        logger.close()
    labels = data.eval.labels if data.eval is not None else None
    with directory.progress.phase("writing the report (plots, embedding map)"):
        extra_plots = [plot for callback in directory.callbacks for plot in callback.on_train_end(run_dir)]
        write_run_report(
            run_dir, summary, rows, features=directory.features, labels=labels, extra_plots=extra_plots,
            loss_rows=_loss_rows(rows, directory.step_losses) if engine.epoch < FEW_EPOCHS else None,
            class_names=data.eval.classes if data.eval is not None else None,
        )  # fmt: skip
    acc = summary["metrics"].get("knn_top1")
    if engine.stopped_by is not None:  # the caller prints the one line of a stopped run
        return summary
    print(
        f"done: {summary['epochs']:.2f} epochs, {state.step} steps in {state.elapsed:.0f} s, "
        f"{summary['images_per_s']:.0f} images/s, peak memory {summary['peak_memory_mb']:.0f} MB"
        + (f", kNN top-1 {100 * acc:.2f}%" if acc is not None else "")
        + f"; report: {run_dir / 'report.md'}",
        flush=True,
    )
    return summary


def _loss_rows(rows: list[dict[str, Any]], step_losses: list[tuple[int, float, Tensor]]) -> list[dict[str, Any]]:
    """Every step's loss of a short run: the logged rows before the first step recorded in this process (a resumed
    run), then each recorded step."""
    first = step_losses[0][0] if step_losses else None
    before = [r for r in rows if "loss" in r and (first is None or r["step"] < first)]
    return before + [{"step": s, "epoch": e, "loss": float(v)} for s, e, v in step_losses]
