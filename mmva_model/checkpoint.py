"""Model checkpoints: ``config.yaml`` + ``model.safetensors`` + ``meta.json`` in one folder.

The weights file holds every trained parameter and buffer but not frozen pretrained backbones
(they come back from their packages or the Hub when the model is built, ~100 MB saved per
checkpoint); ``meta.json`` records each encoder's fingerprint, and loading refuses a checkpoint
whose frozen weights no longer match what the config builds.
"""
from __future__ import annotations

import json
import os
import shutil
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
    """Write the folder atomically (a temporary sibling renamed into place)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    skip = _frozen_keys(model)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k not in skip}
    save_file(state, str(tmp / WEIGHTS))
    model.cfg.save(tmp / CONFIG)
    full_meta = {**(meta or {}), "fingerprints": fingerprints(model)}
    (tmp / META).write_text(json.dumps(full_meta, indent=2, sort_keys=True), encoding="utf-8")
    if path.exists():
        old = path.with_name(f".{path.name}.old")
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old)
    else:
        os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu", *,
                    trust_remote_code: bool = False) -> Checkpoint:
    """The model of a checkpoint folder (a training run's ``best``/``last``, or the run folder).

    The folder's own ``config.yaml`` rebuilds the model, so whatever it says about remote code is
    only a request: it runs only with ``trust_remote_code=True`` from the caller's own flag.
    """
    path = _checkpoint_dir(Path(path))
    with remote_code_allowed(trust_remote_code):
        model = MMVA(load_config(path))
    meta = json.loads((path / META).read_text(encoding="utf-8")) if (path / META).is_file() else {}
    stale = {m: fp for m, fp in meta.get("fingerprints", {}).items()
             if model.encoder(m).fingerprint() != fp and model.encoder(m).cfg.frozen}
    if stale:
        raise CheckpointError(f"{path}: frozen encoder weights differ from training for {sorted(stale)} "
                              "(a different package version or model revision)")
    try:
        missing, unexpected = model.load_state_dict(load_file(str(path / WEIGHTS)), strict=False)
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
