"""Locate the files of a Debian data package by name (datasets.md section 1): never a hard-coded path.

A package is either installed system-wide (``apt-get install``; its file list comes from ``dpkg -L``) or
extracted without root (``apt-get download`` + ``dpkg-deb -x``) into ``$CONTRASTKIT_DATA/deb/<package>``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

__all__ = ["data_root", "deb_files", "extracted_root", "files_named"]


def data_root() -> Path:
    """The project data folder: ``$CONTRASTKIT_DATA``, default ``~/.cache/contrastkit``."""
    env = os.environ.get("CONTRASTKIT_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "contrastkit"


def extracted_root(package: str) -> Path:
    """Where ``dpkg-deb -x`` puts ``package`` when it cannot be installed: ``<data_root>/deb/<package>``."""
    return data_root() / "deb" / package


def dpkg_listed_files(package: str) -> list[Path]:
    """Regular files of an installed Debian package (``dpkg -L``); [] when dpkg or the package is absent."""
    try:
        out = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    return [Path(line) for line in out.stdout.splitlines() if line.strip() and Path(line).is_file()]


def files_named(root: Path, names: set[str], skip: Path | None = None) -> list[Path]:
    """Files under ``root`` (any depth, symlinks followed) named one of ``names``; ``skip`` is not entered."""
    if not root.is_dir():
        return []
    hits: list[Path] = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        if skip is not None:
            dirs[:] = [d for d in dirs if Path(folder, d) != skip]
        hits.extend(Path(folder, f) for f in files if f in names)
    return sorted(hits)


def deb_files(package: str) -> list[Path]:
    """Files of ``package``: from ``dpkg -L`` if installed, else from its extracted tree ([] if neither)."""
    listed = dpkg_listed_files(package)
    if listed:
        return listed
    root = extracted_root(package)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
