"""Test-wide fixtures: no network (only loopback, for gloo process groups), fixed seeds, few threads."""

from __future__ import annotations

import socket

import pytest
import torch

_real_connect = socket.socket.connect


def _loopback_only_connect(self: socket.socket, address: object) -> object:
    if self.family == socket.AF_UNIX:
        return _real_connect(self, address)
    host = address[0] if isinstance(address, tuple) else address
    if host in ("127.0.0.1", "localhost", "::1", "0.0.0.0") or str(host).startswith("127."):
        return _real_connect(self, address)
    raise RuntimeError(f"tests must not use the network (tried to connect to {address!r})")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _loopback_only_connect)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
