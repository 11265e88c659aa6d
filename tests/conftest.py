"""Shared pytest fixtures."""
from __future__ import annotations

import pytest

from tests.httpserver import LoopbackServer


@pytest.fixture
def http_server():
    """A fresh loopback HTTP server (127.0.0.1, ephemeral port) with scripted routes; see tests/httpserver.py."""
    with LoopbackServer() as server:
        yield server


_LOOPBACK_PREFIXES = ("127.", "::1", "localhost")


@pytest.fixture(autouse=True)
def no_internet(monkeypatch):
    """Fail any test whose process tries to connect beyond loopback (tests are offline by rule)."""
    import socket

    attempts: list[object] = []
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and not str(host).startswith(_LOOPBACK_PREFIXES):
            attempts.append(address)
            raise ConnectionRefusedError(f"tests may not reach {address!r}: only 127.0.0.1 is allowed")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    yield attempts
    assert not attempts, f"the test tried to reach beyond loopback: {attempts}"
