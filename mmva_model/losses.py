"""MMVA's loss: per-modality VA MSE + lambda x similarity loss over every cross-modal pair.

Similarity losses compare the cosine matrix of two modalities' embeddings with the VA target
matrix (mmva_model.similarity): ``mse`` regresses each cosine on its target; ``contrastive``
is InfoNCE with soft targets (softmax of target / target_temperature), both directions.
With ``pair_mask`` (fixed-pair training) only the given pairs count.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from mmva_model.config import LossConfig
from mmva_model.model import ModalityOutput
from mmva_model.similarity import cosine_matrix, va_similarity_matrix


def va_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over valence and arousal."""
    return F.mse_loss(pred.float(), target.float())


def similarity_mse(cos: torch.Tensor, target: torch.Tensor, cfg: LossConfig,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of (cosine - target)^2 over the pairs (all, or those in ``mask``)."""
    err = (cos - target) ** 2
    return err[mask].mean() if mask is not None else err.mean()


def similarity_contrastive(cos: torch.Tensor, target: torch.Tensor, cfg: LossConfig,
                           mask: torch.Tensor | None = None) -> torch.Tensor:
    """Soft-target InfoNCE, rows and columns averaged; ``mask`` restricts each softmax to its pairs."""
    logits = cos / cfg.temperature
    soft = target / cfg.target_temperature
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
        soft = soft.masked_fill(~mask, float("-inf"))

    def one_side(lg: torch.Tensor, tg: torch.Tensor) -> torch.Tensor:
        keep = torch.isfinite(tg).any(dim=1)
        p = F.softmax(tg[keep], dim=1)
        logp = F.log_softmax(lg[keep], dim=1).masked_fill(p == 0, 0.0)
        return -(p * logp).sum(dim=1).mean()

    return 0.5 * (one_side(logits, soft) + one_side(logits.T, soft.T))


SIMILARITY_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "mse": similarity_mse,
    "contrastive": similarity_contrastive,
}


@dataclass
class LossParts:
    total: torch.Tensor
    va: dict[str, torch.Tensor] = field(default_factory=dict)
    similarity: dict[str, torch.Tensor] = field(default_factory=dict)

    def scalars(self) -> dict[str, float]:
        """Every term as a float, for logs: loss, va/<modality>, sim/<pair>."""
        out = {"loss": float(self.total.detach())}
        out.update({f"va/{k}": float(v.detach()) for k, v in self.va.items()})
        out.update({f"sim/{k}": float(v.detach()) for k, v in self.similarity.items()})
        return out


def mmva_loss(outputs: dict[str, ModalityOutput], targets: dict[str, torch.Tensor], cfg: LossConfig,
              pair_mask: torch.Tensor | None = None) -> LossParts:
    """The full loss. ``targets`` maps modality -> (B, 2) VA.

    ``pair_mask`` (music x image, bool) is given for fixed-pair batches (the one-to-one
    baseline): ``mse`` then scores only the given clip-image pairs (captions follow their
    clips), and ``contrastive`` becomes CLIP's objective, the given pair the positive and the
    rest of the batch negatives.
    """
    parts = LossParts(total=torch.zeros((), device=next(iter(targets.values())).device))
    for k, out in outputs.items():
        w = cfg.va_weights.get(k, 1.0)
        if w:
            parts.va[k] = va_mse(out.va, targets[k])
            parts.total = parts.total + w * parts.va[k]
    if not cfg.similarity_weight:
        return parts
    sim_fn = SIMILARITY_LOSSES[cfg.similarity]
    for name in cfg.pairs:
        a, b = name.split("-")
        if a not in outputs or b not in outputs:
            continue
        target = va_similarity_matrix(targets[a], targets[b])
        mask = _pair_mask(a, b, pair_mask)
        if mask is not None and cfg.similarity == "contrastive":
            target, mask = mask.float(), None
        cos = cosine_matrix(outputs[a].embedding, outputs[b].embedding)
        parts.similarity[name] = sim_fn(cos, target, cfg, mask)
        parts.total = parts.total + cfg.similarity_weight * parts.similarity[name] / len(cfg.pairs)
    return parts


_ROLE = {"music": "clip", "caption": "clip", "image": "image"}


def _pair_mask(a: str, b: str, music_image: torch.Tensor | None) -> torch.Tensor | None:
    """Pair (a, b)'s mask from the music x image one; music-caption pairs are never masked."""
    if music_image is None or _ROLE[a] == _ROLE[b]:
        return None
    return music_image if _ROLE[a] == "clip" else music_image.T
