"""Model checkpoints: ``config.yaml`` + ``model.safetensors`` + ``meta.json`` in one folder.

The weights file holds every trained parameter and buffer but not frozen pretrained backbones
(they come back from their packages or the Hub when the model is built, ~100 MB saved per
checkpoint); ``meta.json`` records each encoder's fingerprint, and loading refuses a checkpoint
whose frozen weights no longer match what the config builds.

Saves switch atomically: ``best`` (or any checkpoint name) is a relative symbolic link to a
hidden sibling folder ``.best.<stamp>`` holding the files. A save writes a new version folder
completely, then replaces the link in one ``os.replace``, so a crash at any point leaves ``best``
on the previous complete checkpoint (a first save leaves no ``best`` at all). Version folders of
crashed or superseded saves are removed by the next successful save. Readers see an ordinary
folder through the link; copy a run with ``cp -rL`` or ``shutil.copytree`` to get plain folders.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from mmva_model.config import MODALITIES, load_config
from mmva_model.encoders.weights import remote_code_allowed
from mmva_model.model import MMVA

WEIGHTS, CONFIG, META = "model.safetensors", "config.yaml", "meta.json"


class CheckpointError(RuntimeError):
    """A checkpoint folder that is missing files or does not match its config."""


@dataclass
class Checkpoint:
    model: MMVA
    path: Path
    meta: dict[str, Any] = field(default_factory=dict)


def _frozen_keys(model: MMVA) -> set[str]:
    """State-dict keys of frozen backbones (restored from their source, not saved)."""
    keys = set()
    for m in MODALITIES:
        enc = model.encoder(m)
        backbone = getattr(enc, "backbone", None)
        if enc.cfg.frozen and backbone is not None:
            keys |= {f"encoders.{m}.backbone.{k}" for k in backbone.state_dict()}
    return keys


def fingerprints(model: MMVA) -> dict[str, str]:
    return {m: model.encoder(m).fingerprint() for m in MODALITIES}


def save_checkpoint(model: MMVA, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write a new version folder, then switch ``path`` to it atomically (see the module doc)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    version = path.with_name(f"{_version_prefix(path)}{time.time_ns():x}-{os.getpid()}")
    version.mkdir()
    skip = _frozen_keys(model)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k not in skip}
    save_file(state, str(version / WEIGHTS))
    model.cfg.save(version / CONFIG)
    full_meta = {**(meta or {}), "fingerprints": fingerprints(model)}
    (version / META).write_text(json.dumps(full_meta, indent=2, sort_keys=True), encoding="utf-8")
    _fsync(version, WEIGHTS, CONFIG, META)
    _switch(path, version)
    _remove_versions(path, keep=version.name)
    return path


def remove(path: str | Path) -> None:
    """Delete a checkpoint link with all its version folders, or a plain file or folder."""
    path = Path(path)
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    _remove_versions(path, keep=None)


def _version_prefix(path: Path) -> str:
    return f".{path.name}."


def _switch(path: Path, version: Path) -> None:
    link = path.with_name(f"{version.name}.link")
    os.symlink(version.name, link)  # relative: the run folder can move
    if path.is_dir() and not path.is_symlink():
        # A plain folder from before saves were links: a link cannot replace a folder in one
        # step, so it is moved aside first (once; later saves switch the link atomically).
        os.replace(path, path.with_name(f"{_version_prefix(path)}plain-{time.time_ns():x}"))
    os.replace(link, path)
    _fsync_dir(path.parent)


def _remove_versions(path: Path, keep: str | None) -> None:
    """Every leftover of earlier saves of ``path`` (version folders, links, old ``.tmp``/``.old``)."""
    prefix = _version_prefix(path)
    for item in path.parent.iterdir():
        if item.name.startswith(prefix) and item.name != keep:
            if item.is_symlink() or not item.is_dir():
                item.unlink()
            else:
                shutil.rmtree(item)


def _fsync(folder: Path, *names: str) -> None:
    """Written files reach the disk before the link points at them (a power cut, not only a crash)."""
    for name in names:
        with open(folder / name, "rb") as fh:
            os.fsync(fh.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu", *,
                    trust_remote_code: bool = False) -> Checkpoint:
    """The model of a checkpoint folder (a training run's ``best``/``last``, or the run folder).

    The folder's own ``config.yaml`` rebuilds the model, so whatever it says about remote code is
    only a request: it runs only with ``trust_remote_code=True`` from the caller's own flag.
    """
    path = _checkpoint_dir(Path(path))
    files = path.resolve()  # one version throughout, even if a save switches the link meanwhile
    with remote_code_allowed(trust_remote_code):
        model = MMVA(load_config(files))
    meta = json.loads((files / META).read_text(encoding="utf-8")) if (files / META).is_file() else {}
    stale = {m: fp for m, fp in meta.get("fingerprints", {}).items()
             if model.encoder(m).fingerprint() != fp and model.encoder(m).cfg.frozen}
    if stale:
        raise CheckpointError(f"{path}: frozen encoder weights differ from training for {sorted(stale)} "
                              "(a different package version or model revision)")
    try:
        missing, unexpected = model.load_state_dict(load_file(str(files / WEIGHTS)), strict=False)
    except RuntimeError as e:  # shape mismatches are not covered by strict=False
        raise CheckpointError(f"{path}: weights do not fit the config: {str(e).splitlines()[0]}") from e
    missing = set(missing) - _frozen_keys(model)
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not fit the config: missing {sorted(missing)[:5]}, "
                              f"unexpected {sorted(unexpected)[:5]}")
    return Checkpoint(model.to(device).eval(), path, meta)


def _checkpoint_dir(path: Path) -> Path:
    """Accept the checkpoint folder itself, or a training folder (its ``best``, else ``last``)."""
    for candidate in (path, path / "best", path / "last", path / "train" / "best", path / "train" / "last"):
        if (candidate / WEIGHTS).is_file() and (candidate / CONFIG).is_file():
            return candidate
    raise CheckpointError(f"no MMVA checkpoint at {path} (expected {WEIGHTS} and {CONFIG}, "
                          "or a training folder with best/ or last/)")
