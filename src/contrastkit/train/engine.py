"""The one training engine: the step loop that every gradient-based training in contrastkit runs through.

``Engine(model, source, optimizers, ...).run()`` trains ``model`` (a method: ``make_views``, ``training_step``)
on a data source (:mod:`contrastkit.data.sources`) and handles, once for everyone:

* device and precision, through a runtime (:mod:`contrastkit.train.runtime`: one process, or Fabric's DDP);
* the seeding rule. Data order and views are functions of ``(seed, step)`` only, so a run is reproducible and
  resumable without replaying anything: optimiser step ``s`` with ``A = accumulate_grad_batches`` takes the global
  batches ``s A + a`` (``a < A``) in the order the source gives for ``(seed, epoch)``, an epoch being
  ``source.num_batches(B) // A`` steps; the views of batch ``s A + a`` are drawn for the *global* batch from
  :func:`step_generator` and rank ``r`` of ``W`` trains on rows ``[r B/W, (r+1) B/W)``. With the gradient-exact
  gather in the losses, ``W`` processes then see exactly what one process sees;
* gradient accumulation (the loss of each batch divided by ``A``) and clipping of the global gradient norm;
* when to stop: after ``max_steps`` optimiser steps, once the training time reaches the time budget, or with
  both, at whichever comes first;
* the optimiser and the learning-rate schedule: ``lr = base_lr * lr_factor(progress)`` on the first optimiser's
  groups, ``progress = max(steps / max_steps, elapsed / time budget)`` over the limits that are set (so the
  schedule ends with the limit that comes first); further optimisers (an online probe) keep their rate;
* the method's optional hooks (:mod:`contrastkit.methods.base`): ``on_fit_start``, ``on_epoch_start`` (with the
  features of the whole source), ``on_step_end``;
* callbacks (:class:`StepCallback`) after every step: logging, monitors, checkpoints;
* ``state_dict`` / ``load_state_dict`` of the loop (step, time, optimisers) for exact resume.

A non-finite loss stops training before the optimiser step with :class:`NonFiniteLossError`. The objective is
``outputs["total"]`` when a wrapper adds terms (the online probe), else ``outputs["loss"]``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from contrastkit._checks import NonFiniteError
from contrastkit.data.sources import DataSource
from contrastkit.methods.base import EpochContext, FitContext, StepContext
from contrastkit.train.runtime import LocalRuntime, Runtime

__all__ = ["Engine", "EngineState", "NonFiniteLossError", "StepCallback", "step_generator"]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or Inf; training stopped before the optimiser step."""


def step_generator(seed: int, batch: int) -> torch.Generator:
    """The generator of global batch ``batch``'s views (CPU; parameters are moved to the batch's device)."""
    return torch.Generator().manual_seed((seed * 998_244_353 + batch + 1) % 2**63)


@dataclass
class EngineState:
    """The loop's position: optimiser steps done, training seconds and samples seen (global)."""

    step: int = 0
    elapsed: float = 0.0
    samples_seen: int = 0


class StepCallback:
    """Called by the engine: ``on_step_end(engine, outputs)`` after every optimiser step (outputs detached, of the
    step's last batch) and ``on_train_end(engine)`` once the loop stops."""

    def on_step_end(self, engine: Engine, outputs: dict[str, Tensor]) -> None:
        """After every optimiser step."""

    def on_train_end(self, engine: Engine) -> None:
        """After the last step."""


class Engine:
    """The step loop (see the module docstring).

    Args:
        model: the method (or a wrapper that forwards ``make_views`` and the hooks, e.g. with an online probe).
        source: the training :class:`~contrastkit.data.sources.DataSource`.
        optimizers: the first follows ``lr_factor``; all step together.
        batch_size: global batch size ``B`` (divisible by the number of processes).
        seed: the run's seed (data order, views).
        max_steps / time_budget_s: a step limit, a limit on training seconds, or both (whichever comes first).
        lr_factor: ``progress in [0, 1] -> multiplier`` of every group's initial ``lr`` (None: constant).
        runtime: where to run (default: one local process on the CPU in float32).
        accumulate_grad_batches: batches per optimiser step.
        gradient_clip_norm: clip the global gradient norm of the first optimiser's parameters (None: off).
        channels_last: hand 4-D images (and ready views) to the model in channels_last memory format.
        callbacks: :class:`StepCallback` objects.
    """

    def __init__(
        self,
        model: nn.Module,
        source: DataSource,
        optimizers: Sequence[torch.optim.Optimizer],
        *,
        batch_size: int,
        seed: int,
        max_steps: int | None = None,
        time_budget_s: float | None = None,
        lr_factor: Callable[[float], float] | None = None,
        runtime: Runtime | None = None,
        accumulate_grad_batches: int = 1,
        gradient_clip_norm: float | None = None,
        channels_last: bool = False,
        callbacks: Sequence[StepCallback] = (),
    ) -> None:
        if max_steps is None and time_budget_s is None:
            raise ValueError("set max_steps, time_budget_s or both (the run stops at whichever comes first)")
        if not optimizers:
            raise ValueError("the engine needs at least one optimiser")
        self.runtime: Runtime = runtime or LocalRuntime()
        rt = self.runtime
        if batch_size % rt.world_size:
            raise ValueError(f"data.batch_size={batch_size} must be divisible by the {rt.world_size} processes")
        self.steps_per_epoch = source.num_batches(batch_size) // accumulate_grad_batches
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"the {len(source)} training items give no full batch of {batch_size} x {accumulate_grad_batches} "
                "accumulated: lower data.batch_size or trainer.accumulate_grad_batches"
            )
        self.method = model  # unwrapped: views and hooks
        self.source, self.batch_size, self.seed = source, batch_size, seed
        self.max_steps, self.time_budget_s = max_steps, time_budget_s
        self.lr_factor, self.accumulate, self.clip_norm = lr_factor, accumulate_grad_batches, gradient_clip_norm
        self.channels_last, self.callbacks = channels_last, list(callbacks)
        self.base_lrs = [group["lr"] for group in optimizers[0].param_groups]  # before a resume overwrites "lr"
        self.model, self.optimizers = rt.setup(model, optimizers)
        self.state = EngineState()
        self.stop_signal: int | None = None  # set (e.g. by a signal handler) to stop after the step in flight
        self.stopped_by: int | None = None  # the signal that stopped :meth:`run` early (agreed by every process)

    # ------------------------------------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """The loop state and every optimiser's state (the model's weights are the caller's to save)."""
        s = self.state
        return {
            "step": s.step,
            "elapsed": s.elapsed,
            "samples_seen": s.samples_seen,
            "optimizers": [opt.state_dict() for opt in self.optimizers],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (call before :meth:`run`)."""
        if len(state["optimizers"]) != len(self.optimizers):
            raise ValueError(
                f"the state holds {len(state['optimizers'])} optimisers, the engine has {len(self.optimizers)}"
            )
        for opt, saved in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(saved)
        self.state = EngineState(int(state["step"]), float(state["elapsed"]), int(state["samples_seen"]))

    @property
    def epoch(self) -> float:
        return self.state.step / self.steps_per_epoch

    @property
    def progress(self) -> float:
        """``max(step / max_steps, elapsed / time_budget_s)`` over the limits that are set; 1 at the first one."""
        parts = [] if self.max_steps is None else [self.state.step / self.max_steps]
        if self.time_budget_s is not None:
            parts.append(self.state.elapsed / self.time_budget_s)
        return max(parts)

    def finished(self) -> bool:
        """The step limit is reached, or the time budget (rank 0's clock decides for every process)."""
        if self.max_steps is not None and self.state.step >= self.max_steps:
            return True
        if self.time_budget_s is None:
            return False
        return bool(self.runtime.broadcast(self.state.elapsed >= self.time_budget_s))

    # ------------------------------------------------------------------------------------------------ hooks

    def _hook(self, name: str) -> Callable[[Any], None] | None:
        hook = getattr(self.method, name, None)
        return hook if callable(hook) else None

    @torch.no_grad()
    def features(self, fn: Callable[[Tensor], Tensor] | None = None, batch_size: int = 1024) -> Tensor:
        """``fn(images)`` (default ``method.embed``) over the whole source in index order, eval mode, float32."""
        fn = fn or self.method.embed  # type: ignore[assignment]
        assert fn is not None
        was_training = self.method.training
        self.method.eval()
        out = []
        with self.runtime.autocast():
            for start in range(0, len(self.source), batch_size):
                idx = torch.arange(start, min(start + batch_size, len(self.source)))
                images = self.source.fetch(idx).images
                assert images is not None, "features() needs a source with images"
                out.append(fn(images.to(self.runtime.device)).float())
        self.method.train(was_training)
        return torch.cat(out)

    # ------------------------------------------------------------------------------------------------- loop

    def _batch(self, epoch: int, index: int, generator_batch: int) -> Any:
        """The local batch: the source's global batch, its views drawn globally, this rank's rows."""
        rt = self.runtime
        raw = self.source.fetch(self.source.batch_indices(epoch, index, self.batch_size, self.seed))
        views = tuple(self._to_device(v) for v in raw.views)  # a source may hand out ready views
        if raw.images is not None:  # views drawn from channels_last images keep that layout
            generator = step_generator(self.seed, generator_batch)
            views = self.method.make_views(self._to_device(raw.images), generator=generator)
        n = len(raw)
        if n % rt.world_size:
            raise ValueError(f"a batch of {n} items cannot be split over {rt.world_size} processes")
        local = slice(rt.rank * n // rt.world_size, (rt.rank + 1) * n // rt.world_size)
        views = tuple(v[local] for v in views)
        return raw.replace(images=None, views=()).rows(local).to(rt.device).replace(views=views)

    def _to_device(self, x: Tensor) -> Tensor:
        x = x.to(self.runtime.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.ndim == 4 else x

    def _forward_backward(self, batch: Any) -> dict[str, Tensor]:
        try:
            with self.runtime.autocast():
                out = self.model.training_step(batch)
        except NonFiniteError:  # the losses refuse NaN/Inf embeddings: the same divergence, seen earlier
            out = {"loss": torch.tensor(float("nan"))}
        objective = out.get("total", out["loss"])
        if not torch.isfinite(objective).all():
            epoch = self.state.step // self.steps_per_epoch
            raise NonFiniteLossError(f"the loss became {objective.item()} at step {self.state.step} (epoch {epoch})")
        self.runtime.backward(objective / self.accumulate if self.accumulate > 1 else objective)
        return {k: v.detach() for k, v in out.items() if isinstance(v, Tensor)}

    def start(self) -> None:
        """Before the first :meth:`step`: the method's ``on_fit_start`` hook, train mode, clean gradients."""
        rt = self.runtime
        fit_start = self._hook("on_fit_start")
        if fit_start is not None:
            fit_start(FitContext(self.source, rt.device, rt.precision, self.seed, self.batch_size,
                                 self.steps_per_epoch, self.max_steps, rt.world_size, rt.rank))  # fmt: skip
        self.method.train()
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)

    def step(self) -> dict[str, Tensor]:
        """One optimiser step (``accumulate_grad_batches`` batches), the hooks and the callbacks; returns the
        detached outputs of its last batch."""
        state, start = self.state, time.perf_counter()
        epoch, step_in_epoch = divmod(state.step, self.steps_per_epoch)
        epoch_start, step_end = self._hook("on_epoch_start"), self._hook("on_step_end")
        if epoch_start is not None and step_in_epoch == 0:
            epoch_start(EpochContext(epoch, state.step, self.features))
        if self.lr_factor is not None:
            factor = self.lr_factor(min(max(self.progress, 0.0), 1.0))
            for group, base in zip(self.optimizers[0].param_groups, self.base_lrs, strict=True):
                group["lr"] = base * factor
        samples = 0
        for a in range(self.accumulate):
            batch = self._batch(epoch, step_in_epoch * self.accumulate + a, state.step * self.accumulate + a)
            out = self._forward_backward(batch)
            samples += len(batch) * self.runtime.world_size  # the global batch (class-balanced ones may be smaller)
        if self.clip_norm is not None:
            params = [p for g in self.optimizers[0].param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.clip_norm)
        for opt in self.optimizers:
            opt.step()
            opt.zero_grad(set_to_none=True)
        state.step += 1
        state.samples_seen += samples
        if step_end is not None:
            step_end(StepContext(state.step, self.progress, batch, out))
        state.elapsed += time.perf_counter() - start
        for callback in self.callbacks:
            callback.on_step_end(self, out)
        return out

    def run(self) -> EngineState:
        """:meth:`start`, :meth:`step` until ``max_steps`` or the time budget (whichever first), then every callback's
        ``on_train_end``; returns the final :class:`EngineState`. Setting ``stop_signal`` on any process stops every
        process before the next step (``stopped_by`` tells which signal), with the callbacks' ``on_train_end``."""
        self.start()
        while not self.finished():
            agreed = self.runtime.max_int(self.stop_signal or 0)  # a stop on any process stops them all
            if agreed:
                self.stopped_by = agreed
                break
            self.step()
        for callback in self.callbacks:
            callback.on_train_end(self)
        return self.state
