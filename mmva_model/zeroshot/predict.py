"""Running one modality of an MMVA model on raw rows (a caption, image bytes, audio + descriptors).

Rows go through the encoder's own ``prepare`` / ``collate`` / ``frozen`` steps and the model's
``encode``, exactly as in training, so zero-shot inputs are seen the way training rows were.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from mmva_model.checkpoint import Checkpoint, load_checkpoint
from mmva_model.encoders.base import Batch, hash_tensors
from mmva_model.model import MMVA
from mmva_model.progress import hf_progress
from mmva_model.zeroshot.errors import ZeroShotError

ModelLike = MMVA | Checkpoint | str | Path


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/"auto" -> CUDA when available, else CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ZeroShotError(f"bad --device {device!r}: {e}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ZeroShotError(f"--device {device}: CUDA is not available on this machine (use cpu or auto)")
    return dev


def resolve_model(model: ModelLike, device: str | torch.device | None = None, progress: bool = False,
                  trust_remote_code: bool = False) -> MMVA:
    """An MMVA in eval mode from a model, a Checkpoint or a checkpoint folder.

    ``device=None`` leaves a given model where it is and puts a loaded one on CUDA when available.
    ``trust_remote_code`` comes from the caller's flag (see :func:`load_checkpoint`).
    """
    if isinstance(model, (str, Path)):
        with hf_progress(progress):
            model = load_checkpoint(model, device=resolve_device(device), trust_remote_code=trust_remote_code)
    if isinstance(model, Checkpoint):
        model = model.model
    return (model if device is None else model.to(resolve_device(device))).eval()


def model_hash(model: MMVA) -> str:
    """Identifies what the model predicts: its architecture config and every weight (a cache key)."""
    h = hashlib.sha256(yaml.safe_dump(model.cfg.to_dict()["model"], sort_keys=True).encode())
    hash_tensors(h, model.state_dict())
    return h.hexdigest()[:24]


def model_device(model: MMVA) -> torch.device:
    return next(model.parameters()).device


def _batches(items: Iterable[Batch], size: int) -> Iterator[list[Batch]]:
    chunk: list[Batch] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def encode_prepared(model: MMVA, modality: str, prepared: Iterable[Batch], batch_size: int = 32
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(va (n, 2), embedding (n, d)) of items already ``prepare``d by the modality's encoder.

    ``prepared`` may be a generator: items are batched as they come (frames of a long video
    never sit in memory together).
    """
    encoder, device = model.encoder(modality), model_device(model)
    vas, embs = [], []
    for chunk in _batches(prepared, batch_size):
        batch = {k: v.to(device) for k, v in encoder.collate(chunk).items()}
        with torch.no_grad():
            out = model.encode(modality, encoder.frozen(batch))
        vas.append(out.va.float().cpu().numpy())
        embs.append(out.embedding.float().cpu().numpy())
    if not vas:
        return np.zeros((0, 2), np.float32), np.zeros((0, model.cfg.model.embed_dim), np.float32)
    return np.concatenate(vas), np.concatenate(embs)


def encode_rows(model: MMVA, modality: str, rows: Iterable[dict[str, Any]], batch_size: int = 32
                ) -> tuple[np.ndarray, np.ndarray]:
    """(va, embedding) of table-like rows; a row that cannot be prepared raises (MediaError...)."""
    encoder = model.encoder(modality)
    return encode_prepared(model, modality, (encoder.prepare(r) for r in rows), batch_size)
