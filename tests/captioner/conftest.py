"""Fixtures for captioner tests: tiny models built once per session, offline hub."""
from __future__ import annotations

import pytest

from tests.captioner.tiny_models import tiny_causal_lm


@pytest.fixture(autouse=True)
def hub_offline(monkeypatch):
    """Model-loading tests must never try the hub (the network guard would also catch it)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads the variable once at import; without this an unknown id is retried
    # against the (guarded) network for ~45 s before failing.
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="session", params=["llama", "qwen2"])
def tiny_lm_dir(request, tmp_path_factory):
    return tiny_causal_lm(tmp_path_factory.mktemp(f"tiny-{request.param}"), request.param)
