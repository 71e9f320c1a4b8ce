"""Which optional packages import here (the ``cluster`` and ``graph`` extras), asked once for every floor."""

from __future__ import annotations

__all__ = ["faiss_available"]


def faiss_available() -> bool:
    """True when ``import faiss`` works (faiss-cpu, the ``cluster`` extra)."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True
