"""Where a run executes: one local process, or Lightning Fabric's processes (DDP on CPUs or GPUs, several nodes).

The engine talks to a runtime through eight members, so that one step loop serves both:

* ``device``, ``precision`` (``"32"`` or ``"bf16"``), ``world_size``, ``rank``, ``is_global_zero``;
* ``setup(module, optimizers) -> (module, optimizers)``: move to the device (Fabric: wrap in DDP);
* ``autocast()``: the precision context of the forward pass; ``backward(loss)``;
* ``barrier()`` and ``broadcast(value)``: agreement between processes (no-ops locally).

:func:`make_runtime` picks :class:`LocalRuntime` for one process and :class:`FabricRuntime` otherwise, so a
one-process run never pays for Fabric's wrappers and two runs with the same config take the same code path.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from contrastkit import accel

__all__ = ["DEFAULT_COLLECTIVE_TIMEOUT", "FabricRuntime", "LocalRuntime", "Runtime", "make_runtime", "resolve_device"]

DEFAULT_COLLECTIVE_TIMEOUT = 600.0
"""Seconds a DDP collective waits for the other processes (``trainer.collective_timeout``'s default)."""
STARTUP_TIMEOUT = 300.0
"""Seconds the processes have to start and meet (imports, data loading), whatever the collective timeout."""


def resolve_device(accelerator: str) -> torch.device:
    """``"auto"`` -> CUDA when visible, else CPU; ``"cuda"`` without a visible GPU is a one-line error."""
    if accelerator == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if accelerator == "cuda" and not torch.cuda.is_available():
        raise ValueError("trainer.accelerator=cuda but no CUDA device is visible: use trainer.accelerator=cpu")
    return torch.device(accelerator)


class LocalRuntime:
    """One process on ``device`` with ``precision`` (``"auto"`` resolves to bf16 where it is fast)."""

    world_size = 1
    rank = 0
    is_global_zero = True

    def __init__(self, device: torch.device | str = "cpu", precision: str = "32") -> None:
        self.device = torch.device(device)
        self.precision = accel.resolve_precision(precision, self.device)

    def setup(self, module: nn.Module, optimizers: Sequence[torch.optim.Optimizer]) -> tuple[Any, list[Any]]:
        return module.to(self.device), list(optimizers)

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        with accel.autocast(self.device, self.precision):
            yield

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def barrier(self) -> None:
        """Nothing to wait for."""

    def broadcast(self, value: Any) -> Any:
        return value

    def max_int(self, value: int) -> int:
        """The largest ``value`` over the processes (here: ``value``)."""
        return value


class FabricRuntime:
    """Lightning Fabric's processes (launched here); rank 0's decisions are broadcast."""

    def __init__(
        self,
        accelerator: str,
        devices: int,
        num_nodes: int,
        strategy: str,
        precision: str,
        collective_timeout: float = DEFAULT_COLLECTIVE_TIMEOUT,
    ) -> None:
        from lightning.fabric import Fabric
        from lightning.fabric.strategies import DDPStrategy

        self.device = resolve_device(accelerator)
        self.precision = accel.resolve_precision(precision, self.device)
        ddp = strategy == "ddp" or devices * num_nodes > 1
        self.num_nodes = num_nodes
        self.fabric = Fabric(
            accelerator=self.device.type,
            devices=devices,
            num_nodes=num_nodes,
            strategy=DDPStrategy(timeout=datetime.timedelta(seconds=max(collective_timeout, STARTUP_TIMEOUT)))
            if ddp
            else "auto",
            precision="bf16-mixed" if self.precision == "bf16" else "32-true",
        )
        _let_collectives_report_dead_children()
        self.fabric.launch()
        if ddp:  # start-up had STARTUP_TIMEOUT at least; training's collectives get the configured limit
            _set_collective_timeout(collective_timeout)
        self.device = self.fabric.device
        self.world_size, self.rank = self.fabric.world_size, self.fabric.global_rank
        self.is_global_zero = self.fabric.is_global_zero

    def setup(self, module: nn.Module, optimizers: Sequence[torch.optim.Optimizer]) -> tuple[Any, list[Any]]:
        wrapped, *opts = self.fabric.setup(module, *optimizers)
        wrapped.mark_forward_method("training_step")
        return wrapped, list(opts)

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        # Fabric enters the precision context only for forward() and a LightningModule's *_step methods; a
        # method's training_step is a plain method, so the engine enters it explicitly
        return self.fabric.autocast()

    def backward(self, loss: torch.Tensor) -> None:
        self.fabric.backward(loss)

    def barrier(self) -> None:
        self.fabric.barrier()

    def broadcast(self, value: Any) -> Any:
        return self.fabric.broadcast(value, src=0)

    def end_ranks(self, ranks: Sequence[int]) -> None:
        """SIGKILL the processes of ``ranks`` that this process started (one node: child ``r - 1`` is rank ``r``),
        so a frozen process does not outlive the run it stopped."""
        children = getattr(getattr(self.fabric.strategy, "launcher", None), "procs", None) or []
        for r in ranks:
            if self.rank == 0 and self.num_nodes == 1 and 0 < r <= len(children):
                with contextlib.suppress(OSError):
                    children[r - 1].kill()

    def max_int(self, value: int) -> int:
        """The largest ``value`` over the processes (an ``all_reduce(MAX)``)."""
        import torch.distributed as dist

        out = torch.tensor([int(value)], dtype=torch.int64, device=self.device)
        dist.all_reduce(out, op=dist.ReduceOp.MAX)
        return int(out.item())


Runtime = LocalRuntime | FabricRuntime


def _set_collective_timeout(seconds: float) -> None:
    """Set the default process group's timeout after start-up (a private torch call; kept if it is missing)."""
    import torch.distributed as dist
    from torch.distributed import distributed_c10d

    setter = getattr(distributed_c10d, "_set_pg_timeout", None)
    if setter is not None and dist.is_initialized():
        setter(datetime.timedelta(seconds=seconds))


def _let_collectives_report_dead_children() -> None:
    """Lightning's launcher watches its child processes and SIGKILLs every process, itself included, as soon as
    one child exits with a non-zero code (also a child that stopped cleanly on SIGTERM a moment before the launcher
    finished writing its report). Without that watcher a dead child surfaces in the next collective, which fails
    at once (a closed connection) or after ``trainer.collective_timeout``, and the run ends with one line naming
    the rank (:func:`contrastkit.train.loop.fit`)."""
    try:
        from lightning.fabric.strategies.launchers import subprocess_script
    except ImportError:  # pragma: no cover - another Lightning layout: keep its watcher
        return
    if hasattr(subprocess_script, "_launch_process_observer"):
        subprocess_script._launch_process_observer = lambda child_processes: None


def make_runtime(
    accelerator: str = "auto",
    devices: int = 1,
    num_nodes: int = 1,
    strategy: str = "auto",
    precision: str = "auto",
    collective_timeout: float = DEFAULT_COLLECTIVE_TIMEOUT,
) -> Runtime:
    """:class:`LocalRuntime` for one process (``devices * num_nodes == 1`` and no ``ddp``), else Fabric, whose
    collectives fail after ``collective_timeout`` seconds without an answer (``trainer.collective_timeout``)."""
    if devices * num_nodes == 1 and strategy != "ddp":
        return LocalRuntime(resolve_device(accelerator), precision)
    return FabricRuntime(accelerator, devices, num_nodes, strategy, precision, collective_timeout)
