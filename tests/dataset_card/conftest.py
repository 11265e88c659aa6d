"""Fixtures: a synthetic run folder and a built dataset folder (built once per module)."""
from __future__ import annotations

import pytest

from dataset_card.build import build
from tests.dataset_card.fakerun import write_run


@pytest.fixture
def run_dir(tmp_path):
    return write_run(tmp_path / "run")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(run folder, BuildResult) of a clean build, shared by read-only tests."""
    root = tmp_path_factory.mktemp("built")
    run = write_run(root / "run")
    return run, build(run)


@pytest.fixture
def no_saved_token(monkeypatch, tmp_path):
    """No HF token anywhere: env cleared and the token file pointed at an empty place."""
    from huggingface_hub import constants

    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
