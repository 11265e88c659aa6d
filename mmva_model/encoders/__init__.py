"""Encoder registry: importing this package registers every encoder (see base.py)."""
from mmva_model.encoders import audio_cnn, hf_audio, musicnn, text, vision  # noqa: F401  (registration)
from mmva_model.encoders.base import ENCODERS, Encoder, build_encoder, register

__all__ = ["ENCODERS", "Encoder", "build_encoder", "register"]
