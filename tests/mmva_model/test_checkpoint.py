"""Checkpoint saves switch atomically: a crash at any step leaves the last good checkpoint loadable."""
from __future__ import annotations

import os
import shutil

import pytest
import torch

from mmva_model import checkpoint
from mmva_model.checkpoint import load_checkpoint, save_checkpoint
from mmva_model.config import load_config
from mmva_model.model import MMVA


class Crash(Exception):
    """Stands for the process dying at this point of the save."""


def model_with(value: float) -> MMVA:
    model = MMVA(load_config("tiny"))
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.fill_(value)
    return model


def marker(model: MMVA) -> float:
    return next(p for p in model.parameters() if p.requires_grad).flatten()[0].item()


@pytest.fixture
def crash_at(monkeypatch):
    """``crash_at(k)``: the k-th filesystem rename/link/removal from now on raises instead."""
    def arm(k: int) -> list[str]:
        calls: list[str] = []
        for module, name in ((os, "replace"), (os, "rename"), (os, "symlink"), (os, "unlink"), (os, "rmdir"),
                             (shutil, "rmtree")):
            real = getattr(module, name)

            def step(*args, _real=real, _name=name, **kwargs):
                calls.append(_name)
                if len(calls) == k:
                    raise Crash(f"killed at {_name}")
                return _real(*args, **kwargs)

            monkeypatch.setattr(module, name, step)
        return calls
    return arm


def test_a_crash_at_any_step_of_a_save_leaves_a_complete_checkpoint(tmp_path, crash_at, monkeypatch):
    path = tmp_path / "best"
    save_checkpoint(model_with(1.0), path, {"step": 1})
    saved = {1.0}  # values whose save completed
    k = 1
    while True:
        value = 1.0 + k
        calls = crash_at(k)
        try:
            save_checkpoint(model_with(value), path, {"step": value})
            finished = True
        except Crash:
            finished = False
        monkeypatch.undo()
        if finished:
            saved.add(value)
        loaded = load_checkpoint(path)  # never a missing or half-written folder
        assert marker(loaded.model) in saved | {value}
        assert loaded.meta["step"] == marker(loaded.model)
        if finished and len(calls) < k:  # the save had fewer steps than k: every step was tried
            break
        k += 1
    assert k > 2  # the save has several steps, and each was crashed once
    # The leftovers of all those crashes never break a later save, which tidies them away.
    save_checkpoint(model_with(99.0), path, {"step": 99.0})
    assert marker(load_checkpoint(path).model) == 99.0
    assert len([p for p in tmp_path.iterdir() if p.name != "best"]) <= 1  # at most the live version folder


def test_leftover_temporary_and_old_folders_do_not_break_saves(tmp_path):
    path = tmp_path / "last"
    save_checkpoint(model_with(1.0), path, {})
    for junk in (".last.old", ".last.tmp", ".last.123abc"):  # what crashed saves of any version leave
        (tmp_path / junk).mkdir()
        (tmp_path / junk / "model.safetensors").write_bytes(b"half")
    for value in (2.0, 3.0):
        save_checkpoint(model_with(value), path, {})
        assert marker(load_checkpoint(path).model) == value
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".last.")) == ["last"]
    assert len(list(tmp_path.iterdir())) <= 2


def test_a_checkpoint_folder_from_before_atomic_saves_is_replaced(tmp_path):
    path = tmp_path / "best"
    path.mkdir()
    for name in (checkpoint.WEIGHTS, checkpoint.CONFIG):
        (path / name).write_bytes(b"old")
    save_checkpoint(model_with(4.0), path, {})
    assert marker(load_checkpoint(path).model) == 4.0
    assert marker(load_checkpoint(tmp_path).model) == 4.0  # a training folder: its best/


def test_remove_deletes_a_checkpoint_with_its_versions(tmp_path):
    path = tmp_path / "best"
    save_checkpoint(model_with(1.0), path, {})
    save_checkpoint(model_with(2.0), path, {})
    (tmp_path / "other.txt").write_text("kept")
    checkpoint.remove(path)
    assert [p.name for p in tmp_path.iterdir()] == ["other.txt"]
    checkpoint.remove(tmp_path / "other.txt")  # a plain file or folder is removed too
    assert not list(tmp_path.iterdir())
