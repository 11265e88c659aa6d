"""Pretrained music encoder from the Hub (``m-a-p/MERT-v1-95M`` in the paper set).

Any ``AutoModel`` audio encoder with a feature extractor works (HuBERT/wav2vec2 shapes, which
is what MERT is); MERT ships its own modelling code, so it needs
``options: {trust_remote_code: true, revision: <commit>}`` in the config and ``--trust_remote_code``
on the command line (see :mod:`mmva_model.encoders.weights`).
Features: the mean over time of the last hidden state.
"""
from __future__ import annotations

from typing import Any

import torch

from mmva_model.config import EncoderConfig
from mmva_model.encoders.base import BackboneEncoder, Batch, freeze, register
from mmva_model.encoders.weights import load_pretrained
from mmva_model.media import decode_audio, media_bytes


@register("hf-audio")
class HFAudio(BackboneEncoder):
    """Waveform at the feature extractor's rate -> AutoModel -> time-averaged last hidden state."""

    modality = "music"

    def __init__(self, cfg: EncoderConfig):
        super().__init__(cfg)
        from transformers import AutoFeatureExtractor, AutoModel

        model = cfg.model or "m-a-p/MERT-v1-95M"
        self.extractor = load_pretrained(AutoFeatureExtractor, model, cfg)
        self.backbone = load_pretrained(AutoModel, model, cfg)
        self.sample_rate = int(self.extractor.sampling_rate)
        self.clip_seconds = float(cfg.options.get("clip_seconds", 10.0))
        self.out_dim = int(self.backbone.config.hidden_size)
        if cfg.frozen:
            freeze(self.backbone)

    def prepare(self, row: dict[str, Any]) -> Batch:
        audio = decode_audio(media_bytes(row["audio"]), self.sample_rate, self.clip_seconds)
        values = self.extractor(audio, sampling_rate=self.sample_rate, return_tensors="pt")["input_values"][0]
        return {"input_values": values}

    def features(self, batch: Batch) -> torch.Tensor:
        return self.backbone(input_values=batch["input_values"]).last_hidden_state.mean(dim=1)
