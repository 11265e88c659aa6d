"""Shared pytest fixtures."""
from __future__ import annotations

import pytest

from tests.e2e_helpers import offline
from tests.httpserver import LoopbackServer


@pytest.fixture
def http_server():
    """A fresh loopback HTTP server (127.0.0.1, ephemeral port) with scripted routes; see tests/httpserver.py."""
    with LoopbackServer() as server:
        yield server


@pytest.fixture(autouse=True)
def no_internet():
    """Fail any test whose process tries to connect beyond loopback (tests are offline by rule)."""
    with offline() as attempts:
        yield attempts
