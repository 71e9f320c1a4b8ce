"""An exclusive lock on a run directory, so two ``contrastkit train`` processes never write the same run.

The lock is the file ``RUN_DIR/.contrastkit.lock`` holding one JSON line ``{"pid", "host", "started"}`` of its
owner, and an ``flock(LOCK_EX)`` on it that the owner holds while it runs. The kernel drops the ``flock`` when the
owner dies, however it dies (SIGKILL included), so a lock file whose ``flock`` can be taken is stale: its owner is
gone, and the new process takes it over and rewrites the file. A process that finds the ``flock`` held is refused
with one line naming the owner's pid and host (:class:`contrastkit.errors.RunLockedError`).

Where ``flock`` is unavailable (no ``fcntl``, or a file system without locks) the file's pid is checked instead:
on the same host a dead pid means stale; a lock written on another host is never taken over (the message says
how to remove it once that run is known to be over). The owner removes the file when it ends normally.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from contrastkit.errors import RunLockedError

__all__ = ["LOCK_FILE", "RunLock", "is_launching_process"]

LOCK_FILE = ".contrastkit.lock"
_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")


def is_launching_process() -> bool:
    """True unless the environment marks this process as a non-zero rank (``RANK``, ``LOCAL_RANK``,
    ``NODE_RANK``, ``GROUP_RANK`` or ``SLURM_PROCID`` set to something other than 0). The launching process takes
    the run's lock; the processes it starts for DDP write nothing of their own, so they do not."""
    return all(os.environ.get(name, "0") == "0" for name in _RANK_VARIABLES)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _read_holder(path: Path) -> dict[str, Any]:
    try:
        holder = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _describe(holder: dict[str, Any]) -> str:
    if "pid" not in holder:
        return "another process"
    return f"pid {holder['pid']} on host {holder.get('host', '?')} (since {holder.get('started', '?')})"


class RunLock:
    """``with RunLock(run_dir):`` holds ``run_dir/.contrastkit.lock`` (module docstring); ``acquire`` raises
    :class:`~contrastkit.errors.RunLockedError` when a live process holds it. ``stale`` is the holder found in a
    stale lock that was taken over (None when there was none)."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None
        self.stale: dict[str, Any] | None = None

    def _refuse(self, holder: dict[str, Any], extra: str = "") -> RunLockedError:
        return RunLockedError(
            f"run directory {self.path.parent} is in use by {_describe(holder)}{extra}: wait for that run to end "
            "or choose another --out"
        )

    def _try_flock(self) -> int | None:
        """An open descriptor holding the ``flock`` of the current lock file; None where ``flock`` is missing."""
        try:
            import fcntl
        except ImportError:
            return None
        for _ in range(5):  # the file may be replaced between open and flock; then lock the new one
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise self._refuse(_read_holder(self.path)) from None
            except OSError:  # the file system has no locks
                os.close(fd)
                return None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return fd
            os.close(fd)
        raise self._refuse(_read_holder(self.path))

    def _check_pid(self) -> None:
        """Without ``flock``: refuse a lock whose owner lives (or cannot be checked: another host)."""
        holder = _read_holder(self.path) if self.path.exists() else None
        if not holder:
            return
        if holder.get("host") != socket.gethostname():
            raise self._refuse(holder, f"; if no run is going on there, delete {self.path}")
        if isinstance(holder.get("pid"), int) and _pid_alive(holder["pid"]) and holder["pid"] != os.getpid():
            raise self._refuse(holder)

    def acquire(self) -> RunLock:
        fd = self._try_flock()
        if fd is None:
            self._check_pid()
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        holder = _read_holder(self.path)
        self.stale = holder or None
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file and drop the ``flock`` (nothing when not held)."""
        if self._fd is None:
            return
        try:
            if _read_holder(self.path).get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()
