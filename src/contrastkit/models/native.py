"""contrastkit's native CPU kernels (``models/csrc``), compiled once on first use with ``torch.utils.cpp_extension``.

The kernels register PyTorch operators under ``torch.ops.contrastkit_bf16`` (no Python module, so the build needs
only a C++ compiler and the torch headers that ship with every torch wheel). The first call that needs them
compiles them into torch's extension cache (``$TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``;
``make setup`` does it ahead of time with :func:`build_native_kernels`); later processes load the cached library.
Without a compiler or AVX-512, or with ``CONTRASTKIT_NATIVE=0`` in the environment, :func:`native_kernels` returns
``False`` and every caller keeps its pure-torch path: the kernels are an optional speed-up, never a requirement.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from pathlib import Path

import torch

__all__ = ["NATIVE_SOURCES", "build_native_kernels", "native_kernels"]

NATIVE_SOURCES: tuple[Path, ...] = (Path(__file__).with_name("csrc") / "batch_norm_bf16.cpp",)
_EXTENSION_NAME = "contrastkit_bf16"
_lock = threading.Lock()
_loaded: bool | None = None  # None: not tried yet


def _disabled_by_environment() -> bool:
    return os.environ.get("CONTRASTKIT_NATIVE", "1").strip().lower() in {"0", "false", "no", "off"}


def native_kernels(verbose: bool = False) -> bool:
    """Load (compiling on first use) the native kernels; ``True`` when ``torch.ops.contrastkit_bf16`` is usable.

    The result is cached for the process. A failed build warns once (with the compiler's reason) and returns
    ``False``; set ``CONTRASTKIT_NATIVE=0`` to skip the attempt.
    """
    global _loaded
    if _loaded is not None:
        return _loaded
    with _lock:
        if _loaded is not None:
            return _loaded
        if _disabled_by_environment():
            _loaded = False
            return _loaded
        try:
            from torch.utils.cpp_extension import load

            load(
                name=_EXTENSION_NAME,
                sources=[str(p) for p in NATIVE_SOURCES],
                extra_cflags=["-O3", "-march=native", "-fopenmp"],
                extra_ldflags=["-fopenmp"],
                is_python_module=False,
                verbose=verbose,
            )
            _loaded = bool(torch.ops.contrastkit_bf16.available())
        except Exception as error:  # no compiler, no headers, a read-only cache: fall back, say why once
            reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
            warnings.warn(
                f"contrastkit: the native bfloat16 kernels could not be built ({reason}); using the pure-torch "
                "path (same results, slower). Install a C++ compiler, or set CONTRASTKIT_NATIVE=0 to silence this.",
                RuntimeWarning,
                stacklevel=2,
            )
            _loaded = False
        return _loaded


def build_native_kernels() -> bool:
    """Build (or load) the kernels now and say so in one line; what ``make setup`` runs (``-v``: compiler log)."""
    ok = native_kernels(verbose="-v" in sys.argv[1:])
    print("contrastkit native kernels: " + ("ready" if ok else "not available (pure-torch fallback)"))
    return ok
