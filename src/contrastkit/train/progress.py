"""Progress output of long phases: the training bar, feature extraction, evaluation protocols, the report.

Every phase that takes more than a few seconds says so. :class:`Progress` is switched by the run's
``trainer.progress_bar`` (off in the test configs): phase lines go to stdout, bars to stderr (tqdm when it imports,
otherwise a printed line every ``fallback_every_s`` seconds). :class:`TrainingBar` shows the training's position:
step (of the step limit), epoch, training time of the budget, the time left, images/s and the loss
(:func:`training_status`). :meth:`Progress.counter` is the bar that the feature extraction of the monitors and
of ``contrastkit evaluate`` (:func:`contrastkit.train.monitors.embed_images`) moves.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["QUIET", "Progress", "TrainingBar", "clock", "training_status"]


def clock(seconds: float) -> str:
    """``seconds`` as ``m:ss`` (or ``h:mm:ss``)."""
    whole = max(int(round(seconds)), 0)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _tqdm() -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


class _Counter:
    """A bar over ``total`` items: tqdm on stderr, or a printed line at most every ``every_s`` seconds."""

    def __init__(self, desc: str, total: int, unit: str, enabled: bool, every_s: float) -> None:
        self.desc, self.total, self.unit, self.enabled, self.every_s = desc, total, unit, enabled, every_s
        self.done, self.start, self.printed = 0, time.perf_counter(), time.perf_counter()
        tqdm = _tqdm() if enabled else None
        self.bar = (
            tqdm(total=total, desc=desc, unit=unit, unit_scale=True, leave=False, file=sys.stderr, dynamic_ncols=True)
            if tqdm is not None
            else None
        )

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled and time.perf_counter() - self.printed >= self.every_s:
            self.printed = time.perf_counter()
            rate = self.done / max(self.printed - self.start, 1e-9)
            print(f"  {self.desc}: {self.done}/{self.total} {self.unit} ({rate:.0f} {self.unit}/s)", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Progress:
    """Phase lines and item bars, printed only when ``enabled``.

    ``with progress.phase("kNN (k=200)"):`` prints ``kNN (k=200) ...`` and then ``kNN (k=200): 3 s``;
    ``progress.counter(desc, total, unit)`` is a bar (context manager) whose ``update(n)`` adds ``n`` items.
    """

    def __init__(self, enabled: bool = True, fallback_every_s: float = 15.0) -> None:
        self.enabled = enabled
        self.fallback_every_s = fallback_every_s

    def say(self, text: str) -> None:
        if self.enabled:
            print(text, flush=True)

    @contextmanager
    def phase(self, what: str) -> Iterator[None]:
        start = time.perf_counter()
        self.say(f"{what} ...")
        yield
        self.say(f"{what}: {time.perf_counter() - start:.0f} s")

    @contextmanager
    def counter(self, desc: str, total: int, unit: str = "img") -> Iterator[_Counter]:
        count = _Counter(desc, total, unit, self.enabled, self.fallback_every_s)
        try:
            yield count
        finally:
            count.close()


QUIET = Progress(enabled=False)


def training_status(
    step: int,
    max_steps: int | None,
    epoch: float,
    elapsed_s: float,
    budget_s: float | None,
    images_per_s: float,
    loss: float | None = None,
) -> str:
    """One line on the training's position, e.g. ``step 120/900, epoch 0.51, 1:30 of 5:00 budget, 3:30 left,
    728 images/s, loss 2.310``. The time left is the smaller of ``budget - elapsed`` and the steps left at the
    mean step time so far (training time: the monitors' pauses are not counted)."""
    parts = [f"step {step}" + (f"/{max_steps}" if max_steps is not None else ""), f"epoch {epoch:.2f}"]
    if budget_s is not None:
        parts.append(f"{clock(elapsed_s)} of {clock(budget_s)} budget")
    left = [budget_s - elapsed_s] if budget_s is not None else []
    if max_steps is not None and step > 0:
        left.append((max_steps - step) * elapsed_s / step)
    if left:
        parts.append(f"{clock(max(min(left), 0.0))} left")
    parts.append(f"{images_per_s:.0f} images/s")
    if loss is not None:
        parts.append(f"loss {loss:.3f}")
    return ", ".join(parts)


class TrainingBar:
    """The training bar: the share of the run done (``engine.progress``: steps of the step limit, or training
    time of the budget, whichever is further) and :func:`training_status`; without tqdm a status line every
    ``fallback_every_s`` seconds."""

    _TOTAL = 1000  # the bar counts thousandths of the run

    def __init__(self, enabled: bool, fallback_every_s: float = 30.0) -> None:
        tqdm = _tqdm() if enabled else None
        self.enabled, self.every_s, self.printed = enabled, fallback_every_s, time.perf_counter()
        layout = "training {percentage:3.0f}%|{bar:24}| {desc}"  # the status line is the bar's description
        self.bar = (
            tqdm(total=self._TOTAL, desc="starting", bar_format=layout, file=sys.stderr, dynamic_ncols=True)
            if tqdm is not None
            else None
        )

    def update(self, engine: Any, loss: float | None) -> None:
        """Show ``engine``'s position (an :class:`contrastkit.train.engine.Engine`) after a step."""
        if not self.enabled:
            return
        s = engine.state
        status = training_status(
            s.step, engine.max_steps, engine.epoch, s.elapsed, engine.time_budget_s,
            s.samples_seen / max(s.elapsed, 1e-9), loss,
        )  # fmt: skip
        if self.bar is not None:
            self.bar.set_description_str(status, refresh=False)
            self.bar.update(min(int(engine.progress * self._TOTAL), self._TOTAL) - self.bar.n)
        elif time.perf_counter() - self.printed >= self.every_s:
            self.printed = time.perf_counter()
            print(f"training: {status}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
