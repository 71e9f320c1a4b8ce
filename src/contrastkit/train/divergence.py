"""The loss-explosion guard of a training run (``trainer.loss_explosion_factor``, ``loss_explosion_steps``).

A NaN / Inf loss stops the engine at once (:class:`contrastkit.train.engine.NonFiniteLossError`). A loss that
grows without becoming infinite is caught here. With factor ``f > 1``, median ``m`` of the last
``MEDIAN_WINDOW`` losses that were not themselves above the threshold, and threshold

    ``t = m + (f - 1) |m|``   (``= f m`` for a positive loss; a negative loss, e.g. SimSiam's, is handled too),

step ``s`` is *above* when ``loss_s > t`` (or the loss is not finite). ``steps`` above in a row stop the run with
:class:`LossExplosionError` (exit code 3). The guard arms once ``min(MEDIAN_WINDOW, steps)`` losses are recorded.
Losses above the threshold do not enter the median, so a slow climb cannot drag the threshold up with it.
While a streak is open, ``contrastkit.train.loop`` postpones the periodic save of ``last.ckpt``, so the
checkpoint the error names was saved before the loss rose. The state (recent losses, streak) is saved in every
checkpoint's ``extra["loss_guard"]`` and restored by ``--resume``.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from pathlib import Path
from typing import Any

from contrastkit.train.config import Config
from contrastkit.train.engine import NonFiniteLossError

__all__ = ["MEDIAN_WINDOW", "LossExplosionError", "LossExplosionGuard", "diverged_error"]

MEDIAN_WINDOW = 100
"""How many recent (not exploded) losses the running median is taken over."""


class LossExplosionError(NonFiniteLossError):
    """The loss stayed above ``trainer.loss_explosion_factor`` x its running median for
    ``trainer.loss_explosion_steps`` steps in a row (exit code 3, like a NaN loss)."""


class LossExplosionGuard:
    """Counts the steps in a row whose loss is above ``factor`` x the running median (module docstring).

    Call :meth:`is_above` with a step's loss, agree on the answer across processes, then :meth:`record` it; record
    returns True when the streak reaches ``steps``.
    """

    def __init__(self, factor: float, steps: int, window: int = MEDIAN_WINDOW) -> None:
        if not factor > 1 or steps < 1 or window < 1:
            raise ValueError(f"need factor > 1, steps >= 1, window >= 1; got {factor}, {steps}, {window}")
        self.factor, self.steps = float(factor), int(steps)
        self.history: deque[float] = deque(maxlen=window)
        self.streak = 0  # steps above the threshold in a row
        self.streak_start = -1  # the first step of the open streak
        self.median_at_start = math.nan  # the running median when the streak began

    def threshold(self) -> float | None:
        """``m + (f - 1)|m|`` of the recorded losses; None until ``min(window, steps)`` are recorded."""
        if len(self.history) < min(self.history.maxlen or 1, self.steps):
            return None
        median = statistics.median(self.history)
        return median + (self.factor - 1) * abs(median)

    def is_above(self, loss: float) -> bool:
        """Whether ``loss`` counts as exploded (a non-finite loss does, once the guard is armed)."""
        limit = self.threshold()
        return limit is not None and (not math.isfinite(loss) or loss > limit)

    def record(self, step: int, loss: float, above: bool) -> bool:
        """Count step ``step`` (``above`` as agreed by every process); True once ``steps`` in a row are above."""
        if not above:
            self.streak, self.streak_start = 0, -1
            self.history.append(float(loss))
            return False
        if self.streak == 0:
            self.streak_start, self.median_at_start = step, statistics.median(self.history)
        self.streak += 1
        return self.streak >= self.steps

    def describe(self, last_step: int) -> str:
        """The first half of the error: what the loss did and when."""
        return (
            f"the loss stayed above {self.factor:g} x its running median ({self.median_at_start:.4g}) for "
            f"{self.streak} steps in a row (steps {self.streak_start} to {last_step}, "
            f"trainer.loss_explosion_steps={self.steps}): training stopped"
        )

    def state_dict(self) -> dict[str, Any]:
        """Recent losses and the open streak (plain numbers: ``torch.load(weights_only=True)`` reads them)."""
        return {
            "history": [float(x) for x in self.history],
            "streak": self.streak,
            "streak_start": self.streak_start,
            "median_at_start": float(self.median_at_start),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (a checkpoint written without the guard leaves it empty)."""
        self.history.clear()
        self.history.extend(float(x) for x in state.get("history", []))
        self.streak = int(state.get("streak", 0))
        self.streak_start = int(state.get("streak_start", -1))
        self.median_at_start = float(state.get("median_at_start", math.nan))


def diverged_error(
    err: NonFiniteLossError, cfg: Config, precision: str, last: Path | None, step: int | None
) -> NonFiniteLossError:
    """The one-line error of a diverged run (``err``): what happened, ``last`` (``checkpoints/last.ckpt``, saved at
    ``step`` before the divergence; None when there is none yet) and the keys to change, each named only when it
    is not already at its safe value (``precision``: the run's resolved precision, ``"32"`` or ``"bf16"``)."""
    t = cfg.trainer
    fixes = [f"a lower optim.lr (now {cfg.optim.lr:g})"]
    if t.gradient_clip_norm is None:
        fixes.append("trainer.gradient_clip_norm=1.0")
    if precision != "32":
        fixes.append("trainer.precision=32")
    remedy = ", ".join(fixes[:-1]) + (" or " if len(fixes) > 1 else "") + fixes[-1]
    if last is None or step is None:
        return type(err)(f"{err}; no checkpoint was written yet: start again with {remedy}")
    kept = f"the last good checkpoint, saved before the loss {{}}, is {last} (step {step})"
    if isinstance(err, LossExplosionError):
        return LossExplosionError(
            f"{err}; {kept.format('rose')}: start a new --out from it with model.init_from={last} and {remedy}, "
            f"or raise trainer.loss_explosion_factor (now {t.loss_explosion_factor:g}) and continue with --resume"
        )
    return NonFiniteLossError(f"{err}; {kept.format('became non-finite')}: start again with {remedy}")
