"""MMVA: one encoder per modality -> projection MLP -> shared L2-normalised embedding -> VA head."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mmva_model.config import MODALITIES, MMVAConfig
from mmva_model.encoders import Encoder, build_encoder
from mmva_model.encoders.base import Batch


@dataclass
class ModalityOutput:
    embedding: torch.Tensor  # (B, embed_dim), unit norm
    va: torch.Tensor  # (B, 2) valence, arousal in (0, 1)


def _mlp(d_in: int, d_hidden: int, d_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_hidden, d_out))


class VAHead(nn.Module):
    """Embedding -> (valence, arousal) through a small MLP and a sigmoid (VA lives in [0, 1])."""

    def __init__(self, d_in: int, d_hidden: int, dropout: float):
        super().__init__()
        self.mlp = _mlp(d_in, d_hidden, 2, dropout)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.mlp(z))


class MMVA(nn.Module):
    """The tri-modal model. ``encode(modality, frozen_out)`` works on encoders' frozen outputs,
    live or cached (see mmva_model.encoders.base)."""

    def __init__(self, cfg: MMVAConfig):
        super().__init__()
        self.cfg = cfg
        m = cfg.model
        self.encoders = nn.ModuleDict({k: build_encoder(m.encoder(k)) for k in MODALITIES})
        # LayerNorm first: frozen backbones' features come at very different scales (EfficientNet
        # activations vs unit-norm MiniLM sentences), and a plain MLP on them fits slowly.
        self.projections = nn.ModuleDict(
            {k: nn.Sequential(nn.LayerNorm(enc.out_dim), _mlp(enc.out_dim, m.proj_hidden, m.embed_dim, m.dropout))
             for k, enc in self.encoders.items()}
        )
        heads = [VAHead(m.embed_dim, m.head_hidden, m.dropout)]
        if not m.shared_va_head:
            heads = [VAHead(m.embed_dim, m.head_hidden, m.dropout) for _ in MODALITIES]
        self.va_heads = nn.ModuleList(heads)

    def encoder(self, modality: str) -> Encoder:
        return self.encoders[modality]

    def head(self, modality: str) -> VAHead:
        return self.va_heads[0 if len(self.va_heads) == 1 else MODALITIES.index(modality)]

    def encode(self, modality: str, frozen_out: Batch) -> ModalityOutput:
        feats = self.encoders[modality](frozen_out)
        z = nn.functional.normalize(self.projections[modality](feats.float()), dim=-1)
        return ModalityOutput(embedding=z, va=self.head(modality)(z))

    def forward(self, inputs: dict[str, Batch]) -> dict[str, ModalityOutput]:
        """Encode every modality present in ``inputs`` (modality -> frozen outputs)."""
        return {k: self.encode(k, v) for k, v in inputs.items()}

    def parameter_groups(self, lr: float, backbone_lr: float, weight_decay: float) -> list[dict]:
        """AdamW groups: fine-tuned pretrained backbones get ``backbone_lr``, the rest ``lr``."""
        backbone = [p for enc in self.encoders.values() for n, p in enc.named_parameters()
                    if n.startswith("backbone.") and p.requires_grad]
        ids = {id(p) for p in backbone}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        groups = [{"params": rest, "lr": lr, "weight_decay": weight_decay}]
        if backbone:
            groups.append({"params": backbone, "lr": backbone_lr, "weight_decay": weight_decay})
        return groups
