"""The encoder contract and registry.

An encoder turns one table row into a fixed-size feature vector in three steps, split where
caching can cut:

1. ``prepare(row)`` (CPU, DataLoader workers): decode and preprocess one row into tensors of a
   fixed shape (a resized image, a log-mel patch, padded token ids). Deterministic.
2. ``frozen(batch)``: the part that never trains (a frozen pretrained backbone; the identity
   when the backbone is fine-tuned). Run without gradients, possibly in a faster form of the
   same computation (``inference_form`` names it: folded batch norms, another memory layout);
   its per-item outputs are what :mod:`mmva_model.features` caches, keyed by
   :meth:`feature_fingerprint` and the data.
3. ``forward(frozen_out)``: the trained part, returning ``(batch, out_dim)`` features.

Encoders register a builder under a name with :func:`register`; configs name them.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from mmva_model.config import EncoderConfig

Batch = dict[str, torch.Tensor]

ENCODERS: dict[str, Callable[[EncoderConfig], Encoder]] = {}


def register(name: str) -> Callable:
    """Class decorator: make ``cls(cfg)`` buildable from configs as ``name``."""

    def deco(cls):
        ENCODERS[name] = cls
        cls.registry_name = name
        return cls

    return deco


def build_encoder(cfg: EncoderConfig) -> Encoder:
    """The encoder a config names; ValueError listing the known names otherwise."""
    try:
        builder = ENCODERS[cfg.name]
    except KeyError:
        raise ValueError(f"unknown encoder {cfg.name!r}; known: {sorted(ENCODERS)}") from None
    return builder(cfg)


class Encoder(nn.Module):
    """Base class: see the module docstring for the three steps."""

    modality: str = ""
    registry_name: str = ""
    out_dim: int = 0
    # How ``frozen`` computes when it differs from the trained path's arithmetic (rounding-level
    # differences): part of the feature-cache key, not of the checkpoint's fingerprint.
    inference_form: str = ""
    # Tagger models whose per-clip outputs (``tag_probs`` / ``tag_embeddings``) this encoder reads from
    # a row: whoever makes rows from audio (zero-shot libraries) tags the audio for it.
    row_taggers: tuple[str, ...] = ()

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg

    # -- 1. per row, CPU
    def prepare(self, row: dict[str, Any]) -> Batch:
        raise NotImplementedError

    def collate(self, items: list[Batch]) -> Batch:
        """Stack per-item tensors (every encoder's ``prepare`` gives fixed shapes)."""
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}

    # -- 2. never trained
    def frozen(self, batch: Batch) -> Batch:
        return batch

    # -- 3. trained
    def forward(self, frozen_out: Batch) -> torch.Tensor:
        raise NotImplementedError

    def fit_normalisation(self, rows: list[dict[str, Any]]) -> None:
        """Learn input statistics from training rows (before training); a no-op by default."""

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimiser updates (none of a frozen backbone's)."""
        return [p for p in self.parameters() if p.requires_grad]

    def fingerprint(self) -> str:
        """Identifies what ``frozen`` computes: name, options, model, and frozen weights.

        Part of the feature-cache key, so changing any of them never reuses stale features.
        """
        h = hashlib.sha256(repr((self.registry_name, self.cfg.model, self.cfg.frozen,
                                 sorted(self.cfg.options.items()))).encode())
        hash_tensors(h, self.frozen_state())
        return h.hexdigest()[:16]

    def frozen_state(self) -> dict[str, torch.Tensor]:
        """Tensors that ``frozen`` depends on (a frozen backbone's weights); empty by default."""
        return {}

    def feature_fingerprint(self) -> str:
        """:meth:`fingerprint` plus the inference form: the key of this encoder's cached features."""
        if not self.inference_form:
            return self.fingerprint()
        return hashlib.sha256(f"{self.fingerprint()}/{self.inference_form}".encode()).hexdigest()[:16]

    def train(self, mode: bool = True):
        super().train(mode)
        backbone = getattr(self, "backbone", None)
        if self.cfg.frozen and backbone is not None:
            backbone.eval()  # frozen BatchNorm/dropout stay in inference mode
        return self


class BackboneEncoder(Encoder):
    """A pretrained ``self.backbone`` behind ``features(batch)``: with ``frozen: true`` it runs in
    the frozen step (cacheable ``{"features": ...}``), otherwise it trains in ``forward``."""

    def features(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def frozen(self, batch: Batch) -> Batch:
        if not self.cfg.frozen:
            return batch
        with torch.no_grad():
            return {"features": self.frozen_features(batch)}

    def frozen_features(self, batch: Batch) -> torch.Tensor:
        """``features`` of the frozen backbone; encoders override it with a faster equivalent form."""
        return self.features(batch)

    def forward(self, frozen_out: Batch) -> torch.Tensor:
        return frozen_out["features"] if self.cfg.frozen else self.features(frozen_out)

    def frozen_state(self) -> dict[str, torch.Tensor]:
        return dict(self.backbone.state_dict()) if self.cfg.frozen else {}


def hash_tensors(h: "hashlib._Hash", tensors: dict[str, torch.Tensor]) -> None:
    """Feed every named tensor's exact bytes into ``h``, in name order (weights as cache keys)."""
    for name, tensor in sorted(tensors.items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())


def freeze(module: nn.Module) -> nn.Module:
    """Turn off gradients of ``module`` and put it in eval mode."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()
