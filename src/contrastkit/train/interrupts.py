"""How a run stops early and still leaves its work whole: the stop signals (SIGINT, SIGTERM: finish the step, save,
report, exit 130 / 143) and the one-line error of a DDP collective that another process stopped answering. Used by
:func:`contrastkit.train.loop.fit`."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from contrastkit.distributed import unresponsive_ranks
from contrastkit.errors import CollectiveTimeoutError
from contrastkit.train.engine import Engine
from contrastkit.train.runtime import Runtime

__all__ = ["STOP_SIGNALS", "collective_timeout_error", "stop_on_signals"]


def collective_timeout_error(runtime: Runtime, timeout: float) -> CollectiveTimeoutError:
    """The one-line error of a DDP collective that failed: names the ranks that stopped answering."""
    missing = unresponsive_ranks(wait_s=min(3.0, timeout))
    others = [r for r in (missing or []) if r != runtime.rank]
    end_ranks = getattr(runtime, "end_ranks", None)
    if end_ranks is not None:
        end_ranks(others)
    who = f"rank {', '.join(map(str, others))}" if others else "another rank"
    return CollectiveTimeoutError(
        f"{who} of {runtime.world_size} stopped answering (died, or no reply within trainer.collective_timeout="
        f"{timeout:g} s), so rank {runtime.rank} ended the run: see what happened to that process (memory, "
        "signals), then continue with --resume"
    )


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""Signals that stop a run cleanly: the step in flight finishes, ``last.ckpt`` and the report are written, then
:class:`~contrastkit.errors.TrainingInterrupted` (exit 130 / 143). SLURM's pre-emption and Kubernetes send
SIGTERM. A second signal of the same kind while saving takes its default action (the files stay whole: atomic)."""


@contextlib.contextmanager
def stop_on_signals(engine: Engine) -> Iterator[None]:
    """While training, :data:`STOP_SIGNALS` set ``engine.stop_signal`` instead of killing the process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}

    def handle(signum: int, frame: object) -> None:
        engine.stop_signal = signum
        signal.signal(signum, previous[signum] if signum != signal.SIGTERM else signal.SIG_DFL)

    for signum in STOP_SIGNALS:
        signal.signal(signum, handle)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
