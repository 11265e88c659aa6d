"""Seeding a generate call touches only the model's own GPU, never GPU 0 by default."""
from __future__ import annotations

import pytest
import torch

from captioner.generation import seeded


@pytest.fixture
def touched(monkeypatch):
    """Records the CUDA devices whose RNG state ``fork_rng`` is asked to save (no GPU needed)."""
    calls: list[list[int]] = []
    real = torch.random.fork_rng

    def recording(devices=None, enabled=True, **kwargs):
        calls.append(list(devices) if devices is not None else None)
        return real(devices=[], enabled=enabled)  # the CPU part runs for real

    monkeypatch.setattr(torch.random, "fork_rng", recording)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)  # as Accelerate sets it on rank 3
    return calls


@pytest.mark.parametrize(("device", "expected"), [("cuda", [3]), ("cuda:2", [2]), ("cuda:0", [0]), ("cpu", [])])
def test_seeded_forks_only_the_models_device(touched, device, expected):
    with seeded(7, device):
        pass
    assert touched == [expected]


def test_seeded_is_reproducible_and_restores_the_callers_state():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    with seeded(5, "cpu"):
        a = torch.rand(3)
    with seeded(5, "cpu"):
        b = torch.rand(3)
    assert torch.equal(a, b) and torch.equal(torch.random.get_rng_state(), before)
