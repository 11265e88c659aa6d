"""Music encoder trained from scratch: a log-mel CNN joined with the measured descriptors.

No pretrained music encoder ships in a PyPI package (see DESIGN.md), so the ``offline`` set
learns its music features from IMEMNet-C itself; the pipeline's measured descriptors (tempo,
mode, loudness, brightness, onset rate...) give it musical facts a small CNN would need much
more data to learn. ``tiny-music`` is the same class with small settings.
"""
from __future__ import annotations

import math
from typing import Any

import librosa
import numpy as np
import torch
from threadpoolctl import ThreadpoolController
from torch import nn

from mmva_model.config import EncoderConfig
from mmva_model.encoders.base import Batch, Encoder, register
from mmva_model.media import decode_audio, media_bytes

# Descriptor inputs: name -> transform of the raw value (logs for rate-like quantities).
DESCRIPTOR_INPUTS = {
    "tempo_bpm": lambda v: math.log(max(v, 1.0)),
    "beat_strength": float,
    "key_strength": float,
    "loudness_db": float,
    "dynamic_range_db": float,
    "brightness": lambda v: math.log(max(v, 1.0)),
    "onset_rate": lambda v: math.log1p(max(v, 0.0)),
}
MODES = {"major": 1.0, "minor": 0.0}
_BLAS: ThreadpoolController | None = None


def one_blas_thread():
    """A context with BLAS on one thread. The log-mel's filter-bank product is a BLAS call whose
    result changes in the last bits with OpenBLAS's thread count (seen: 1 vs 2 threads differ), and
    cached inputs must be the same bytes on any machine; one thread is also the cheapest in CPU time
    (OpenBLAS's extra threads spin: 4x the CPU seconds for this small product)."""
    global _BLAS
    if _BLAS is None:  # finds the BLAS libraries loaded by now (numpy's)
        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


def descriptor_vector(desc: dict[str, Any] | None) -> np.ndarray:
    """The descriptor struct as numbers (missing or non-finite values become 0 after scaling)."""
    desc = desc or {}
    values = []
    for name, fn in DESCRIPTOR_INPUTS.items():
        v = desc.get(name)
        values.append(fn(float(v)) if v is not None and math.isfinite(float(v)) else math.nan)
    values.append(MODES.get(desc.get("mode"), 0.5))  # unknown mode sits between the two
    return np.asarray(values, dtype=np.float32)


def _block(c_in: int, c_out: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class DescriptorInputs:
    """The measured descriptors as a music encoder's second input: standardised with the training
    split's statistics (buffers ``desc_mean`` / ``desc_std``, saved with the weights, so a
    checkpoint predicts the way it was trained), then a one-layer MLP ``desc_mlp``."""

    use_descriptors: bool

    def init_descriptors(self, dim: int) -> int:
        """Create the buffers and the MLP (none when ``dim`` is 0); returns the features' width."""
        n_desc = len(DESCRIPTOR_INPUTS) + 1
        self.register_buffer("desc_mean", torch.zeros(n_desc))
        self.register_buffer("desc_std", torch.ones(n_desc))
        self.desc_mlp = nn.Sequential(nn.Linear(n_desc, dim), nn.ReLU()) if dim else None
        return dim

    def prepare_descriptors(self, row: dict[str, Any]) -> Batch:
        if not self.use_descriptors:
            return {}
        return {"descriptors": torch.from_numpy(descriptor_vector(row.get("descriptors")))}

    def fit_normalisation(self, rows: list[dict[str, Any]]) -> None:
        if not self.use_descriptors or not rows:
            return
        x = np.stack([descriptor_vector(r.get("descriptors")) for r in rows])
        mean, std = np.nanmean(x, axis=0), np.nanstd(x, axis=0)
        self.desc_mean.copy_(torch.from_numpy(np.nan_to_num(mean)))
        self.desc_std.copy_(torch.from_numpy(np.where(np.nan_to_num(std) > 1e-6, std, 1.0)))

    def descriptor_features(self, frozen_out: Batch) -> torch.Tensor:
        z = (frozen_out["descriptors"] - self.desc_mean) / self.desc_std
        return self.desc_mlp(torch.nan_to_num(z, nan=0.0))


@register("logmel-cnn")
class LogMelCNN(DescriptorInputs, Encoder):
    """Log-mel patch -> conv blocks -> mean+max pooling, concatenated with a descriptor MLP."""

    modality = "music"

    def __init__(self, cfg: EncoderConfig):
        super().__init__(cfg)
        o = {"sample_rate": 16000, "clip_seconds": 10.0, "n_mels": 32, "hop": 1024,
             "channels": [8, 16, 32], "descriptors": True, "descriptor_dim": 32, "cnn": True, "cnn_dropout": 0.0,
             **cfg.options}
        self.sample_rate, self.clip_seconds = int(o["sample_rate"]), float(o["clip_seconds"])
        self.n_mels, self.hop = int(o["n_mels"]), int(o["hop"])
        self.use_descriptors = bool(o["descriptors"])
        chans = [1, *o["channels"]] if o["cnn"] else []
        self.cnn = nn.Sequential(*(_block(a, b) for a, b in zip(chans[:-1], chans[1:]))) if chans else None
        # Dropout on the CNN's pooled features keeps the head from leaning on song-specific
        # spectrogram details when the descriptors already say what generalises across songs.
        self.cnn_dropout = nn.Dropout(float(o["cnn_dropout"]))
        d = self.init_descriptors(int(o["descriptor_dim"]) if self.use_descriptors else 0)
        self.out_dim = (2 * chans[-1] if chans else 0) + d
        if not self.out_dim:
            raise ValueError("logmel-cnn needs the CNN (options.cnn) or the descriptors (options.descriptors)")

    def prepare(self, row: dict[str, Any]) -> Batch:
        audio = decode_audio(media_bytes(row["audio"]), self.sample_rate, self.clip_seconds)
        with one_blas_thread():
            # librosa.feature.melspectrogram's own steps, with the filter bank built once
            power = np.abs(librosa.stft(audio, n_fft=4 * self.hop, hop_length=self.hop)) ** 2
            mel = np.einsum("...ft,mf->...mt", power, self._mel_basis(), optimize=True)
        logmel = np.log(mel + 1e-6).astype(np.float32)
        return {"logmel": torch.from_numpy(logmel).unsqueeze(0), **self.prepare_descriptors(row)}

    def _mel_basis(self) -> np.ndarray:
        if getattr(self, "_basis", None) is None:
            self._basis = librosa.filters.mel(sr=self.sample_rate, n_fft=4 * self.hop, n_mels=self.n_mels)
        return self._basis

    def forward(self, frozen_out: Batch) -> torch.Tensor:
        feats = []
        if self.cnn is not None:
            x = frozen_out["logmel"]
            # Per-clip standardisation of the log-mel keeps loudness out of the CNN: level comes
            # from the descriptors, timbre and rhythm from the spectrogram's shape.
            x = (x - x.mean(dim=(2, 3), keepdim=True)) / (x.std(dim=(2, 3), keepdim=True) + 1e-5)
            h = self.cnn(x)
            feats.append(self.cnn_dropout(torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)))
        if self.desc_mlp is not None:
            feats.append(self.descriptor_features(frozen_out))
        return torch.cat(feats, dim=1)


@register("tiny-music")
class TinyMusic(LogMelCNN):
    """``logmel-cnn`` at toy size (8 kHz, 16 mel bands, 4/8 channels) for tests."""

    def __init__(self, cfg: EncoderConfig):
        small = {"sample_rate": 8000, "n_mels": 16, "hop": 256, "channels": [4, 8], "descriptor_dim": 8}
        super().__init__(EncoderConfig(cfg.name, cfg.model, cfg.frozen, {**small, **cfg.options}))
        self.cfg = cfg
