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
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from contrastkit import accel

__all__ = ["FabricRuntime", "LocalRuntime", "Runtime", "make_runtime", "resolve_device"]


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


class FabricRuntime:
    """Lightning Fabric's processes (launched here); rank 0's decisions are broadcast."""

    def __init__(self, accelerator: str, devices: int, num_nodes: int, strategy: str, precision: str) -> None:
        from lightning.fabric import Fabric

        self.device = resolve_device(accelerator)
        self.precision = accel.resolve_precision(precision, self.device)
        self.fabric = Fabric(
            accelerator=self.device.type,
            devices=devices,
            num_nodes=num_nodes,
            strategy="ddp" if strategy == "ddp" or devices * num_nodes > 1 else "auto",
            precision="bf16-mixed" if self.precision == "bf16" else "32-true",
        )
        self.fabric.launch()
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


Runtime = LocalRuntime | FabricRuntime


def make_runtime(
    accelerator: str = "auto", devices: int = 1, num_nodes: int = 1, strategy: str = "auto", precision: str = "auto"
) -> Runtime:
    """:class:`LocalRuntime` for one process (``devices * num_nodes == 1`` and no ``ddp``), else Fabric."""
    if devices * num_nodes == 1 and strategy != "ddp":
        return LocalRuntime(resolve_device(accelerator), precision)
    return FabricRuntime(accelerator, devices, num_nodes, strategy, precision)
