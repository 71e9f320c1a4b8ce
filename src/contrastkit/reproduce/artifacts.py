"""Where a reproduction's run function keeps what is not a scalar metric (spectra, per-class recalls, images).

Inside :func:`contrastkit.reproduce.run_experiment`, :func:`artifact_dir` is ``<out>/artifacts/``, so an
experiment's ``figures`` function (called after the claims) can read what each ``run(arm, seed, quick)`` saved
there and draw it. Outside a runner (a test, an interactive call) it is a temporary directory of this process,
removed when the process exits::

    def run(arm, seed, quick):
        ...
        save_artifact_json(f"{arm.name}-seed{seed}-spectrum", {"eigenvalues": eig.tolist()})
        return {"knn_top1": acc}

    def figures(results, directory, quick):
        data = load_artifact_json("mlp-seed0-spectrum")
        ...  # draw into directory / "plots" / "spectrum.png" and return [that path]
"""

from __future__ import annotations

import atexit
import contextlib
import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from contrastkit._io import atomic_write_text, check_writable_dir

__all__ = ["artifact_dir", "artifact_path", "artifacts_in", "save_artifact_json", "load_artifact_json"]

_CURRENT: ContextVar[Path | None] = ContextVar("contrastkit_artifact_dir", default=None)
_FALLBACK: list[Path] = []


def artifact_dir() -> Path:
    """The directory for the running reproduction's artifacts (created); outside one, a per-process temporary
    directory that is removed at exit."""
    current = _CURRENT.get()
    if current is not None:
        return check_writable_dir(current, what="artifact directory")
    if not _FALLBACK:
        _FALLBACK.append(Path(tempfile.mkdtemp(prefix="contrastkit-artifacts-")))
        atexit.register(shutil.rmtree, _FALLBACK[0], ignore_errors=True)
    return _FALLBACK[0]


def artifact_path(name: str) -> Path:
    """``artifact_dir() / name`` with every character outside ``[A-Za-z0-9_.-]`` replaced by ``_``."""
    if not isinstance(name, str) or not name.strip("._"):
        raise ValueError(f"an artifact needs a file name with letters or digits, got {name!r}")
    return artifact_dir() / re.sub(r"[^A-Za-z0-9_.-]", "_", name)


@contextlib.contextmanager
def artifacts_in(directory: str | Path) -> Iterator[Path]:
    """Make ``directory`` the artifact directory for the duration of the ``with`` block (the runner uses this)."""
    path = check_writable_dir(directory, what="artifact directory")
    token = _CURRENT.set(path)
    try:
        yield path
    finally:
        _CURRENT.reset(token)


def save_artifact_json(name: str, data: Any) -> Path:
    """Write ``data`` (JSON-able, finite numbers) atomically to ``artifact_path(name + '.json')``."""
    return atomic_write_text(artifact_path(f"{name}.json"), json.dumps(data, allow_nan=False) + "\n")


def load_artifact_json(name: str) -> Any:
    """Read what :func:`save_artifact_json` wrote under ``name``; FileNotFoundError naming the file when absent."""
    path = artifact_path(f"{name}.json")
    if not path.exists():
        raise FileNotFoundError(f"artifact {path} does not exist; did run() save {name!r} in this reproduction?")
    return json.loads(path.read_text())
