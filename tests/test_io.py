"""contrastkit._io: atomic writes survive crashes, writable-dir checks, one-line errors for unreadable files."""

from __future__ import annotations

import os
import stat
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from contrastkit import _io
from contrastkit._io import (
    CheckpointError,
    atomic_torch_save,
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    check_weights_only_safe,
    check_writable_dir,
    load_torch_file,
)

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


class NotAllowed:
    """A picklable class that torch.load(weights_only=True) must refuse."""


def _one_line(err: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_atomic_write_text_and_bytes_round_trip(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    assert atomic_write_text(target, "héllo") == target
    assert target.read_text(encoding="utf-8") == "héllo"
    atomic_write_bytes(target, b"\x00\x01new")
    assert target.read_bytes() == b"\x00\x01new"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_new_file_mode_follows_umask_and_replacement_keeps_mode(tmp_path: Path) -> None:
    target = tmp_path / "m.txt"
    old_mask = os.umask(0o027)
    try:
        atomic_write_text(target, "x")
    finally:
        os.umask(old_mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # not the 0o600 of a raw temporary file
    os.chmod(target, 0o604)
    atomic_write_text(target, "y")
    assert stat.S_IMODE(target.stat().st_mode) == 0o604


def test_atomic_torch_save_loads_with_weights_only(tmp_path: Path) -> None:
    target = tmp_path / "t.pt"
    atomic_torch_save({"w": torch.arange(5.0)}, target)
    assert torch.equal(torch.load(target, weights_only=True)["w"], torch.arange(5.0))


@pytest.mark.parametrize("failure", ["torch.save", "os.replace", "interrupt"])
def test_crash_during_write_keeps_old_file_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    target = tmp_path / "ckpt.pt"
    atomic_torch_save({"step": 1}, target)
    before = target.read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt if failure == "interrupt" else OSError("disk on fire")

    if failure == "torch.save":
        monkeypatch.setattr(torch, "save", boom)
    elif failure == "os.replace":
        monkeypatch.setattr(os, "replace", boom)
    expected = KeyboardInterrupt if failure == "interrupt" else OSError
    with pytest.raises(expected):
        if failure == "interrupt":
            atomic_write(target, lambda f: (f.write(b"partial"), boom()))
        else:
            atomic_torch_save({"step": 2}, target)
    assert target.read_bytes() == before
    assert torch.load(target, weights_only=True) == {"step": 1}
    assert os.listdir(tmp_path) == ["ckpt.pt"]


def test_atomic_write_missing_directory_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as err:
        atomic_write_text(tmp_path / "nope" / "a.txt", "x")
    assert "does not exist" in _one_line(err)
    (tmp_path / "f").write_text("file")
    with pytest.raises(ValueError, match="is a file"):
        atomic_write_text(tmp_path / "f" / "a.txt", "x")
    with pytest.raises(ValueError, match="bytes"):
        atomic_write_bytes(tmp_path / "a.txt", "not bytes")  # type: ignore[arg-type]


def test_atomic_write_permission_error_becomes_not_writable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_io.tempfile, "NamedTemporaryFile", refuse)
    with pytest.raises(ValueError) as err:
        atomic_write_text(tmp_path / "a.txt", "x")
    assert "is not writable: make it writable (chmod u+w" in _one_line(err)


def test_check_writable_dir_creates_nested(tmp_path: Path) -> None:
    made = check_writable_dir(tmp_path / "a" / "b")
    assert made.is_dir() and made == tmp_path / "a" / "b"
    assert check_writable_dir(made) == made  # existing is fine


def test_check_writable_dir_under_a_regular_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError) as err:
        check_writable_dir(blocker)
    assert "is a file, not a directory" in _one_line(err)
    with pytest.raises(ValueError) as err:
        check_writable_dir(blocker / "run")
    assert "cannot be created" in _one_line(err) and "--out" in str(err.value)


@pytest.mark.skipif(IS_ROOT, reason="root ignores directory permissions")
def test_check_writable_dir_read_only_directory(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ValueError, match=f"run directory {locked} is not writable"):
            check_writable_dir(locked)
        with pytest.raises(ValueError, match="not writable"):
            check_writable_dir(locked / "sub")
        with pytest.raises(ValueError, match="not writable"):
            atomic_write_text(locked / "a.txt", "x")
    finally:
        locked.chmod(0o700)


def test_check_writable_dir_simulated_no_access(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_io.os, "access", lambda *args, **kwargs: False)
    with pytest.raises(ValueError) as err:
        check_writable_dir(tmp_path)
    assert (
        _one_line(err)
        == f"run directory {tmp_path} is not writable: make it writable (chmod u+w) or pass another --out"
    )


def test_check_writable_dir_simulated_mkdir_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(ValueError) as err:
        check_writable_dir(tmp_path / "new", what="output directory")
    assert (
        _one_line(err)
        == f"output directory {tmp_path / 'new'} is not writable: make it writable (chmod u+w) or pass another --out"
    )


def _saved_bytes(obj: object, path: Path) -> bytes:
    torch.save(obj, path)
    return path.read_bytes()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("truncated", "truncated or corrupt"),
        ("garbage", "not a torch file"),
        ("empty", "the file is empty"),
        ("custom_class", "weights_only=True refuses"),
    ],
)
def test_load_torch_file_unreadable_content(tmp_path: Path, content: str, reason: str) -> None:
    file = tmp_path / "bad.pt"
    if content == "truncated":
        data = _saved_bytes({"w": torch.randn(64)}, file)
        file.write_bytes(data[: len(data) // 2])
    elif content == "garbage":
        file.write_bytes(b"this is not a checkpoint at all" * 4)
    elif content == "empty":
        file.write_bytes(b"")
    else:
        _saved_bytes({"x": NotAllowed()}, file)  # a custom class: a GLOBAL that weights_only refuses
    with pytest.raises(CheckpointError) as err:
        load_torch_file(file)
    message = _one_line(err)
    assert message.startswith(f"{file} is not a readable checkpoint: ") and reason in message


@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.5, 0.9, 0.999])
def test_load_torch_file_truncated_anywhere(tmp_path: Path, fraction: float) -> None:
    file = tmp_path / "cut.pt"
    data = _saved_bytes({"w": torch.randn(256), "meta": {"step": 3}}, file)
    file.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(CheckpointError) as err:
        load_torch_file(file)
    assert (
        _one_line(err)
        == f"{file} is not a readable checkpoint: the file is truncated or corrupt (incomplete zip archive)"
    )


def test_load_torch_file_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_torch_file(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="is a directory"):
        load_torch_file(tmp_path)
    assert issubclass(CheckpointError, ValueError)


def test_check_weights_only_safe_accepts_what_loads_back(tmp_path: Path) -> None:
    value = {
        "t": torch.ones(2),
        "od": OrderedDict(a=1),
        "nested": [(1, 2.5, None, True, "s", b"b"), {3, 4}],
        "dtype": torch.float16,
        "device": torch.device("cpu"),
        "size": torch.Size([2, 3]),
        5: 1j,
    }
    check_weights_only_safe(value, "extra")
    atomic_torch_save(value, tmp_path / "ok.pt")
    assert torch.load(tmp_path / "ok.pt", weights_only=True)["size"] == torch.Size([2, 3])


@pytest.mark.parametrize(
    ("bad", "where"),
    [
        ({"a": [1, np.float64(2.0)]}, "extra['a'][1]"),
        ({"a": {"b": np.zeros(2)}}, "extra['a']['b']"),
        ({"a": object()}, "extra['a']"),
        ({"a": frozenset([1])}, "extra['a']"),
    ],
)
def test_check_weights_only_safe_rejects_with_location(tmp_path: Path, bad: object, where: str) -> None:
    with pytest.raises(ValueError) as err:
        check_weights_only_safe(bad, "extra")
    assert _one_line(err).startswith(where + " is a ")
    # and the check is right: weights_only really refuses that value
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(Exception):  # noqa: B017 - torch raises UnpicklingError
        torch.load(tmp_path / "bad.pt", weights_only=True)
