"""Crash-safe file writes and safe checkpoint reads (torch + stdlib only; every floor may use it).

Atomic write protocol (POSIX ``rename(2)`` semantics, also ``MoveFileEx`` on Windows through ``os.replace``):

1. write the bytes to a temporary file *in the target's directory* (same file system, so the rename is atomic);
2. ``flush`` + ``os.fsync`` the temporary file (its data is on disk before the rename becomes visible);
3. ``os.replace(tmp, target)``: readers see either the complete old file or the complete new one, never a mix;
4. ``fsync`` the directory (where the OS allows it) so that the rename itself survives a power cut.

If anything fails (or the process is interrupted) before step 3, the temporary file is removed and the old target
is untouched; a process killed with SIGKILL may leave a ``.NAME.*.tmp`` file next to the target, never a torn
target. Every read goes through ``torch.load(..., weights_only=True)`` (no arbitrary code execution) and turns the
zoo of torch / pickle errors into one-line :class:`CheckpointError` messages.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

BACKBONE_FORMAT = "contrastkit-backbone"
"""``format`` tag of a file written by ``contrastkit.models.export_backbone``."""
TRAIN_FORMAT = "contrastkit-train"
"""``format`` tag of a file written by ``contrastkit.train.checkpoint.save_training_checkpoint``."""

PathLike = str | os.PathLike[str]


class CheckpointError(ValueError):
    """A checkpoint or exported-backbone file that cannot be used: missing, corrupt, of the wrong kind or for
    another architecture. The message is one line naming the file, the problem and the fix."""


def _not_writable(directory: Path, what: str, fix: str = "") -> ValueError:
    hint = fix or f"make it writable (chmod u+w {directory})"
    return ValueError(f"{what} {directory} is not writable: {hint}")


def check_writable_dir(path: PathLike, *, what: str = "run directory", fix: str = "pass another --out") -> Path:
    """Create the directory ``path`` (and its parents) if absent and check that files can be created in it.

    Returns the directory as a ``Path``. Raises a one-line ValueError when ``path`` (or one of its parents) is a
    regular file, or the directory cannot be created or written. ``what`` names the directory in the message and
    ``fix`` is the hint of the command that chose it (default: the ``--out`` flag of ``train`` / ``reproduce``).
    """
    directory = Path(path).expanduser()
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{what} {directory} is a file, not a directory: {fix}")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError as err:  # a parent is a regular file
        raise ValueError(f"{what} {directory} cannot be created ({err.filename} is a file): {fix}") from err
    except NotADirectoryError as err:
        raise ValueError(f"{what} {directory} cannot be created (a parent is a file): {fix}") from err
    except PermissionError as err:
        raise _not_writable(directory, what, f"make it writable (chmod u+w) or {fix}") from err
    except OSError as err:
        raise ValueError(f"{what} {directory} cannot be created ({err.strerror or err}): {fix}") from err
    if not os.access(directory, os.W_OK | os.X_OK):
        raise _not_writable(directory, what, f"make it writable (chmod u+w) or {fix}")
    return directory


def _current_umask() -> int:
    """The process umask, read without changing it where Linux exposes it (``/proc/self/status``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # not thread-safe, hence only the fallback
    os.umask(mask)
    return mask


def _fsync_directory(directory: Path) -> None:
    """Persist a rename in ``directory``; a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write(file)`` on a temporary file next to ``path``, then atomically move it onto ``path``.

    The new file gets the mode of the file it replaces, or ``0o666 & ~umask`` when there is none. The target's
    directory must exist (ValueError otherwise). On any exception the temporary file is deleted, ``path`` keeps
    its old content and the exception propagates (a ``PermissionError`` becomes a one-line ValueError).
    """
    target = Path(path).expanduser()
    directory = target.parent
    if target.is_dir():
        raise ValueError(f"cannot write {target}: a directory of that name is in the way; move or remove it")
    if not directory.is_dir():
        problem = "is a file" if directory.exists() else "does not exist"
        raise ValueError(f"cannot write {target}: directory {directory} {problem}; create it or pass another path")
    try:
        handle = tempfile.NamedTemporaryFile(dir=directory, prefix=f".{target.name}.", suffix=".tmp", delete=False)
    except PermissionError as err:
        raise _not_writable(directory, "directory") from err
    tmp = Path(handle.name)
    try:
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        mode = target.stat().st_mode & 0o7777 if target.exists() else 0o666 & ~_current_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, PermissionError):
            raise _not_writable(directory, "directory") from err
        raise
    _fsync_directory(directory)
    return target


def atomic_link(source: PathLike, target: PathLike) -> Path:
    """Make ``target`` a second name of the file ``source`` (a hard link; a copy where the file system has no
    links), atomically: a temporary name next to ``target``, ``os.replace`` onto it, then the directory fsynced.

    A later :func:`atomic_write` of ``source`` replaces its directory entry, not the shared file, so ``target``
    keeps the old content. Both paths must lie in one directory (the rename stays on one file system)."""
    source, target = Path(source).expanduser(), Path(target).expanduser()
    directory = target.parent
    tmp = directory / f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    try:
        try:
            os.link(source, tmp)
        except OSError:  # no hard links here (some network and FAT file systems): copy and fsync instead
            with open(source, "rb") as reader, open(tmp, "wb") as writer:
                while chunk := reader.read(1 << 22):
                    writer.write(chunk)
                writer.flush()
                os.fsync(writer.fileno())
            os.chmod(tmp, source.stat().st_mode & 0o7777)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(directory)
    return target


def remove_files(paths: list[Path]) -> None:
    """Delete ``paths`` (each ``unlink`` is atomic; a missing file is fine), then fsync their directories."""
    for path in paths:
        path.unlink(missing_ok=True)
    for directory in {path.parent for path in paths}:
        _fsync_directory(directory)


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Atomically replace ``path`` by ``data`` (see :func:`atomic_write`). Returns the path."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"data must be bytes, got {type(data).__name__}; use atomic_write_text for str")
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Atomically replace ``path`` by ``text`` encoded with ``encoding`` (see :func:`atomic_write`)."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}; use atomic_write_bytes for bytes")
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_torch_save(obj: Any, path: PathLike) -> Path:
    """``torch.save(obj, path)`` that never leaves a torn file (see :func:`atomic_write`)."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def _load_failure_reason(err: BaseException) -> str:
    """A short reason for a failed ``torch.load``, without torch's multi-paragraph advice."""
    text = str(err)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return f"it holds Python objects that weights_only=True refuses ({found.group(1)})"
    if "Unsupported operand" in text:
        return "not a torch file, or corrupt (unreadable pickle data)"
    if isinstance(err, EOFError):
        return "the file is empty or truncated"
    if "central directory" in text or "zip archive" in text:
        return "the file is truncated or corrupt (incomplete zip archive)"
    first = text.strip().splitlines()[0][:160] if text.strip() else ""
    return f"not a torch file, or corrupt ({type(err).__name__}{': ' + first if first else ''})"


def _diagnose_unreadable(file: Path) -> str | None:
    """Reason read from the bytes themselves: empty, or a zip archive (torch's format) cut short."""
    try:
        size = file.stat().st_size
        if size == 0:
            return "the file is empty"
        with open(file, "rb") as handle:
            head = handle.read(4)
            handle.seek(max(0, size - 65_557))  # the end-of-central-directory record lies in the last 64 KiB + 22 B
            tail = handle.read()
    except OSError:
        return None
    if head == b"PK\x03\x04" and b"PK\x05\x06" not in tail:
        return "the file is truncated or corrupt (incomplete zip archive)"
    return None


def load_torch_file(path: PathLike, *, map_location: Any = "cpu", what: str = "checkpoint") -> Any:
    """``torch.load(path, map_location, weights_only=True)`` with one-line :class:`CheckpointError` messages
    for a missing file, a directory, and corrupt / truncated / non-torch content."""
    file = Path(path).expanduser()
    if not file.exists():
        raise CheckpointError(f"{what} {file} does not exist: check the path")
    if file.is_dir():
        raise CheckpointError(f"{what} {file} is a directory, not a file: pass the checkpoint file itself")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*pickle protocol.*")
            return torch.load(file, map_location=map_location, weights_only=True)
    except PermissionError as err:
        raise CheckpointError(f"{what} {file} is not readable: check its permissions") from err
    except Exception as err:  # torch/pickle/zip raise many types; all mean "unusable file"
        reason = _diagnose_unreadable(file) or _load_failure_reason(err)
        raise CheckpointError(f"{file} is not a readable checkpoint: {reason}") from err


_WEIGHTS_ONLY_LEAVES = (str, bytes, int, float, bool, complex, type(None), torch.dtype, torch.device, torch.Size)


def check_weights_only_safe(value: Any, name: str) -> None:
    """Raise a one-line ValueError naming the first entry of ``value`` that ``torch.load(weights_only=True)``
    cannot read back (numpy scalars/arrays, custom classes, ...), so a bad checkpoint fails when saved, not
    when a run is resumed. Allowed: tensors, str/bytes/numbers/bool/None, dtype/device/Size, and
    dict / OrderedDict / list / tuple / set of those."""
    stack: list[tuple[str, Any]] = [(name, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, torch.Tensor) or type(item) in _WEIGHTS_ONLY_LEAVES:
            continue
        if (
            isinstance(item, dict)
            and type(item).__module__ in ("builtins", "collections")
            and not hasattr(item, "default_factory")
        ):
            stack.extend((f"{where}[{k!r}]", v) for k, v in item.items())
            stack.extend((f"{where} key {k!r}", k) for k in item)
        elif type(item) in (list, tuple, set):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(item))
        else:
            raise ValueError(
                f"{where} is a {type(item).__module__}.{type(item).__name__}, which torch.load(weights_only=True) "
                "cannot read back: store tensors, numbers, strings, lists and dicts (e.g. float(x), torch.as_tensor)"
            )
