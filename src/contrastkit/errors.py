"""Typed errors for every anticipated failure; ``contrastkit.cli`` prints each as one line and exits with its code.

Every class subclasses the built-in that callers caught before (``ValueError`` for bad input, ``RuntimeError`` for
a failure of the run), so ``except ValueError`` keeps working. Only the standard library: every floor may import
this module.

=====================  ==========  ==========================================================================
error                  exit code   meaning
=====================  ==========  ==========================================================================
BadInputError          2           a config, data file, checkpoint or path that cannot be used (the fix is named)
ResumeMismatchError    2           ``--resume`` with a config that would change the run
RunLockedError         2           another live process holds the run directory
OverwriteRefusedError  2           an output path that would replace a checkpoint or a run's file
DiskFullError          2           no space left on the device (what was written before stays intact)
CollectiveTimeoutError 4           a DDP process stopped answering within ``trainer.collective_timeout``
TrainingInterrupted    130 / 143   SIGINT / SIGTERM: the run saved its step and stopped
=====================  ==========  ==========================================================================
"""

from __future__ import annotations

import signal

__all__ = [
    "BadInputError",
    "CollectiveTimeoutError",
    "ContrastkitError",
    "DiskFullError",
    "OverwriteRefusedError",
    "ResumeMismatchError",
    "RunLockedError",
    "TrainingInterrupted",
]

EXIT_BAD_INPUT = 2
EXIT_COLLECTIVE_TIMEOUT = 4


class ContrastkitError(Exception):
    """Base of the anticipated failures: ``str(err)`` is one line naming the problem and its fix."""

    exit_code = EXIT_BAD_INPUT


class BadInputError(ContrastkitError, ValueError):
    """Input (config, data, checkpoint, path) that cannot be used."""


class ResumeMismatchError(BadInputError):
    """``--resume`` asked for a run that differs from the one in the run directory."""


class RunLockedError(BadInputError):
    """The run directory is locked by another live process."""


class OverwriteRefusedError(BadInputError):
    """Writing the output would replace a checkpoint or a file inside a run directory (or another file without
    ``--force``)."""


class DiskFullError(ContrastkitError, RuntimeError):
    """No space left on the device while writing; the previous files are intact (atomic writes)."""


class CollectiveTimeoutError(ContrastkitError, RuntimeError):
    """A DDP collective did not complete within ``trainer.collective_timeout`` seconds."""

    exit_code = EXIT_COLLECTIVE_TIMEOUT


class TrainingInterrupted(ContrastkitError, RuntimeError):
    """SIGINT or SIGTERM arrived: the step in flight finished, the checkpoint and report were written.

    ``exit_code`` is ``128 + signal number`` (130 for SIGINT, 143 for SIGTERM), the shell's convention."""

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = int(signum)
        self.exit_code = 128 + self.signum
