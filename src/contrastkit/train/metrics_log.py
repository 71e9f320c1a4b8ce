"""The metrics log of a run directory: ``metrics.csv`` (+ TensorBoard events in ``tb/``).

``metrics.csv`` holds one row per logged step: step, epoch, then every metric ever logged (blank = not logged).
Rows are appended; a process killed mid-append leaves at most a torn last line, which the next
:class:`MetricsLogger` on the same directory drops. Only one process (rank 0) may log into a run directory.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from contrastkit._io import atomic_write_text, check_writable_dir

__all__ = ["FIXED_COLUMNS", "METRICS_FILE", "MetricsLogger", "read_metrics"]

METRICS_FILE = "metrics.csv"
FIXED_COLUMNS = ("step", "epoch")


def _number(name: str, value: object) -> int | float:
    """A logged value as a Python int/float (0-d tensors and numpy scalars unwrapped); ValueError otherwise."""
    if isinstance(value, (Tensor, np.ndarray, np.generic)) and np.prod(value.shape) == 1:
        value = value.item()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    raise ValueError(f"metric {name!r} must be a number or a 1-element tensor, got {type(value).__name__}")


def _parse(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def _read_table(path: Path) -> tuple[list[str], list[dict[str, int | float]], bool]:
    """Header, rows and ``torn`` of a metrics.csv; a torn last line (no trailing newline) is dropped."""
    if not path.exists():
        return [], [], False
    text = path.read_text(encoding="utf-8")
    torn = bool(text) and not text.endswith("\n")
    if torn:
        text = text[: text.rfind("\n") + 1]
    lines = list(csv.reader(io.StringIO(text)))
    if not lines:
        return [], [], torn
    header, rows = lines[0], []
    if tuple(header[:2]) != FIXED_COLUMNS:
        raise ValueError(f"{path} is not a contrastkit metrics.csv (header {header[:3]}); pass another run directory")
    for number, cells in enumerate(lines[1:], start=2):
        if len(cells) != len(header):
            raise ValueError(f"{path} line {number} has {len(cells)} cells, header has {len(header)}; file is corrupt")
        rows.append({key: _parse(cell) for key, cell in zip(header, cells, strict=True) if cell != ""})
    return header, rows, torn


def _csv_text(header: Sequence[str], rows: Sequence[Mapping[str, int | float]], with_header: bool = True) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if with_header:
        writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(row.get(key)) for key in header])
    return buffer.getvalue()


def _cell(value: int | float | None) -> str:
    return "" if value is None else repr(value)  # repr of a float round-trips exactly


def read_metrics(run_dir: str | Path) -> list[dict[str, int | float]]:
    """Rows of ``run_dir/metrics.csv`` as dicts holding only the logged keys (ints stay ints); ``[]`` if absent."""
    return _read_table(Path(run_dir) / METRICS_FILE)[1]


class MetricsLogger:
    """Append-only metrics log of one run: ``run_dir/metrics.csv`` and, optionally, TensorBoard in ``run_dir/tb``.

    Columns are ``step, epoch`` then every metric in order of first appearance; a row leaves the metrics it does
    not log blank. Appending a row with a new metric rewrites the file atomically with the wider header (rare: the
    first row of each monitor); otherwise the row is appended and flushed. Opening an existing directory continues
    the file (after dropping a torn last line); on ``--resume`` call :meth:`truncate_after` with the checkpoint's
    step so rows logged after the checkpoint (and TensorBoard events, through ``purge_step``) are discarded.

    Args:
        run_dir: the run directory (created if absent).
        tensorboard: also write TensorBoard scalars when ``torch.utils.tensorboard`` imports.
    """

    def __init__(self, run_dir: str | Path, tensorboard: bool = True) -> None:
        self.run_dir = check_writable_dir(run_dir)
        self.path = self.run_dir / METRICS_FILE
        header, rows, torn = _read_table(self.path)
        self.columns: list[str] = header or list(FIXED_COLUMNS)
        if torn or not header:
            atomic_write_text(self.path, _csv_text(self.columns, rows))  # new file, or drop a torn last line
        self._tensorboard = tensorboard
        self._writer: Any = None
        self._purge_step: int | None = None

    def log(self, row: Mapping[str, object]) -> None:
        """Append ``row`` = ``{"step": int, "epoch": int|float, name: number, ...}`` (tensors are unwrapped)."""
        if "step" not in row or "epoch" not in row:
            raise ValueError(f"a metrics row needs 'step' and 'epoch', got keys {sorted(row)}; add them")
        step = _number("step", row["step"])
        if not isinstance(step, int) or step < 0:
            raise ValueError(f"step must be an int >= 0, got {row['step']!r}")
        values = {str(key): _number(str(key), value) for key, value in row.items()}
        new = [key for key in values if key not in self.columns]
        if new:
            rows = _read_table(self.path)[1]
            self.columns += new
            atomic_write_text(self.path, _csv_text(self.columns, [*rows, values]))
        else:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(_csv_text(self.columns, [values], with_header=False))
                handle.flush()
        self._log_tensorboard(step, values)

    def truncate_after(self, step: int) -> None:
        """Drop every row with ``step > step`` (resume from a checkpoint taken at ``step``)."""
        if not isinstance(step, int) or step < 0:
            raise ValueError(f"step must be an int >= 0, got {step!r}")
        rows = _read_table(self.path)[1]
        atomic_write_text(self.path, _csv_text(self.columns, [r for r in rows if r["step"] <= step]))
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._purge_step = step + 1

    def rows(self) -> list[dict[str, int | float]]:
        """The rows logged so far (read back from disk)."""
        return read_metrics(self.run_dir)

    def _log_tensorboard(self, step: int, values: Mapping[str, int | float]) -> None:
        if not self._tensorboard:
            return
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard not installed: CSV only
                self._tensorboard = False
                return
            self._writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=self._purge_step)
            self._purge_step = None
        for key, value in values.items():
            if key not in FIXED_COLUMNS:
                self._writer.add_scalar(key, value, global_step=step)

    def close(self) -> None:
        """Flush and close the TensorBoard writer (the CSV is always flushed)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
