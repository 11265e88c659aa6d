"""Pretrained music features that ship offline: the musicnn taggers' embeddings, beside the
measured descriptors.

The pipeline runs both musicnn taggers (MagnaTagATune, Million Song Dataset) once per song and
stores, per clip, the mean over its 3 s patches of each tagger's penultimate layer
(``tag_embeddings``, 200 values per tagger) next to the tag probabilities (``tag_probs``, 50).
This encoder reads those columns, so its frozen features cost nothing to compute at training
time: one forward pass per song in the pipeline instead of one per overlapping clip here. A row
without them (a run made with ``--tagger none``, or older data) is tagged from its own audio by
the same rule, the clip's patches on a grid from its start (the pipeline's grid starts at the
song's, so the two differ by where the patches fall, not by method).

Options: ``layer`` (``penultimate``: ``tag_embeddings``; ``tags``: ``tag_probs``), ``models``
(which taggers, default both), ``descriptors`` / ``descriptor_dim`` as in ``logmel-cnn``,
``dropout`` on the embeddings.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from captioner.content import MSD, MTT, ROW_KEYS
from mmva_model.config import EncoderConfig
from mmva_model.encoders.audio_cnn import DescriptorInputs
from mmva_model.encoders.base import Batch, Encoder, register
from mmva_model.media import decode_audio, media_bytes
from pipeline.tagging import tag_song

# layer option -> (row column, values per tagger)
LAYERS = {"penultimate": ("tag_embeddings", 200), "tags": ("tag_probs", 50)}
TAGGER_RATE = 16000


@register("musicnn")
class MusicnnFeatures(DescriptorInputs, Encoder):
    """Frozen musicnn embeddings (from the row, else from the clip's audio) + descriptor MLP."""

    modality = "music"

    def __init__(self, cfg: EncoderConfig):
        super().__init__(cfg)
        o = {"layer": "penultimate", "models": [MTT, MSD], "descriptors": True, "descriptor_dim": 32,
             "dropout": 0.0, **cfg.options}
        unknown = sorted(set(o) - {"layer", "models", "descriptors", "descriptor_dim", "dropout"})
        if unknown:
            raise ValueError(f"musicnn encoder: unknown options {unknown}")
        if o["layer"] not in LAYERS:
            raise ValueError(f"musicnn encoder: layer must be one of {sorted(LAYERS)}, got {o['layer']!r}")
        self.models = self.row_taggers = tuple(o["models"])
        if not self.models or set(self.models) - set(ROW_KEYS):
            raise ValueError(f"musicnn encoder: models must be among {sorted(ROW_KEYS)}, got {list(self.models)}")
        self.column, width = LAYERS[o["layer"]]
        self.use_descriptors = bool(o["descriptors"])
        self.dropout = nn.Dropout(float(o["dropout"]))
        d = self.init_descriptors(int(o["descriptor_dim"]) if self.use_descriptors else 0)
        self.out_dim = width * len(self.models) + d

    def prepare(self, row: dict[str, Any]) -> Batch:
        vectors = self.stored(row.get(self.column)) or self.tag_audio(row["audio"])
        x = np.concatenate([vectors[m] for m in self.models]).astype(np.float32)
        return {"musicnn": torch.from_numpy(x), **self.prepare_descriptors(row)}

    def stored(self, struct: dict[str, Any] | None) -> dict[str, np.ndarray] | None:
        """The row's vectors by model, or None when the row lacks one this encoder reads."""
        if not struct or any(struct.get(ROW_KEYS[m]) is None for m in self.models):
            return None
        return {m: np.asarray(struct[ROW_KEYS[m]], dtype=np.float32) for m in self.models}

    def tag_audio(self, cell: Any) -> dict[str, np.ndarray]:
        """Tag the clip's own audio the way the pipeline tags a clip (mean of its patches)."""
        audio = decode_audio(media_bytes(cell), TAGGER_RATE)
        song = tag_song(audio, TAGGER_RATE, self.models)
        window = (0.0, len(audio) / TAGGER_RATE)
        return song.clip_embeddings(*window) if self.column == "tag_embeddings" else song.clip(*window)

    def forward(self, frozen_out: Batch) -> torch.Tensor:
        feats = [self.dropout(frozen_out["musicnn"])]
        if self.desc_mlp is not None:
            feats.append(self.descriptor_features(frozen_out))
        return torch.cat(feats, dim=1)
