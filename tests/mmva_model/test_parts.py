"""Unit tests of MMVA's parts: similarity targets, sampler, losses, configs, checkpoints."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dataset_card.schema import va_similarity
from mmva_model.checkpoint import load_checkpoint, save_checkpoint
from mmva_model.config import ConfigError, LossConfig, load_config, shipped_configs
from mmva_model.losses import mmva_loss, similarity_contrastive, similarity_mse
from mmva_model.model import MMVA, ModalityOutput
from mmva_model.sampler import StepSampler
from mmva_model.similarity import va_similarity_matrix


def test_similarity_matrix_is_the_documented_function():
    a = torch.tensor([[0.0, 0.0], [0.5, 0.5], [0.2, 0.9]])
    b = torch.tensor([[1.0, 1.0], [0.5, 0.5], [0.2, 0.5]])
    m = va_similarity_matrix(a, b)
    for i in range(3):
        for j in range(3):
            assert m[i, j].item() == pytest.approx(va_similarity(a[i].tolist(), b[j].tolist()), abs=1e-6)
    assert m[0, 0].item() == pytest.approx(0.0, abs=1e-6)  # opposite corners
    assert m[1, 1].item() == pytest.approx(1.0)  # identical VA
    assert m[2, 2].item() == pytest.approx(1 - 0.4 / math.sqrt(2), abs=1e-6)  # hand: distance 0.4


def test_sampler_is_a_pure_function_of_seed_step_and_rank():
    s = StepSampler(10, 4, seed=3, stream="music")
    first = [s.indices(t) for t in range(5)]
    assert first == [StepSampler(10, 4, seed=3, stream="music").indices(t) for t in range(5)]
    resumed = StepSampler(10, 4, seed=3, stream="music", start_step=3)
    assert next(iter(resumed)) == first[3]
    # Steps 0-1 and half of step 2 walk through one permutation: each row exactly once.
    flat = sum(first, [])[:10]
    assert sorted(flat) == list(range(10))


def test_ranks_split_each_step_without_overlap():
    ranks = [StepSampler(12, 3, seed=0, stream="images", rank=r, world_size=2) for r in range(2)]
    for step in range(2):  # 2 steps x 2 ranks x 3 = 12 = one epoch
        a, b = (r.indices(step) for r in ranks)
        assert not set(a) & set(b)
    seen = [i for step in range(2) for r in ranks for i in r.indices(step)]
    assert sorted(seen) == list(range(12))


def test_clips_and_images_are_drawn_independently():
    # Same table size, same seed: the two streams must still not pair clip i with a fixed image.
    music = StepSampler(8, 8, seed=0, stream="music")
    images = StepSampler(8, 8, seed=0, stream="images")
    partners = {}
    for step in range(6):
        for clip, image in zip(music.indices(step), images.indices(step)):
            partners.setdefault(clip, set()).add(image)
    assert all(len(p) > 1 for p in partners.values())  # every clip met several images
    assert set(music.indices(0)) == set(range(8)) == set(images.indices(0))  # both covered


def test_similarity_losses_by_hand():
    cfg = LossConfig(temperature=1.0, target_temperature=1.0)
    cos = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    target = torch.tensor([[1.0, 0.5], [0.0, 1.0]])
    # errors 0, -0.5, 0.5, -0.5 -> mean of squares (0 + 0.25 * 3) / 4
    assert similarity_mse(cos, target, cfg).item() == pytest.approx(0.1875)
    mask = torch.tensor([[True, False], [False, True]])
    assert similarity_mse(cos, target, cfg, mask).item() == pytest.approx((0 + 0.25) / 2)
    # Contrastive: cross-entropy of softmax(cos) against softmax(target), rows and columns.
    def ce(lg, tg):
        p = torch.softmax(tg, 1)
        return -(p * torch.log_softmax(lg, 1)).sum(1).mean()
    expected = 0.5 * (ce(cos, target) + ce(cos.T, target.T))
    assert similarity_contrastive(cos, target, cfg).item() == pytest.approx(expected.item(), rel=1e-6)
    aligned = similarity_contrastive(target * 5, target, cfg)
    shuffled = similarity_contrastive(target.flip(0) * 5, target, cfg)
    assert aligned < shuffled


def _outputs(va: torch.Tensor, emb: torch.Tensor) -> ModalityOutput:
    return ModalityOutput(embedding=torch.nn.functional.normalize(emb, dim=-1), va=va)


def test_mmva_loss_terms_and_weights():
    torch.manual_seed(0)
    va = {m: torch.rand(4, 2) for m in ("image", "music", "caption")}
    outs = {m: _outputs(torch.rand(4, 2), torch.randn(4, 8)) for m in va}
    full = mmva_loss(outs, va, LossConfig())
    assert set(full.va) == {"image", "music", "caption"}
    assert set(full.similarity) == {"image-music", "image-caption", "music-caption"}
    expected = sum(full.va.values()) + sum(full.similarity.values()) / 3
    assert full.total.item() == pytest.approx(expected.item(), rel=1e-6)
    off = mmva_loss(outs, va, LossConfig(similarity_weight=0.0, va_weights={"image": 2.0, "music": 1.0, "caption": 0.0}))
    assert not off.similarity and "caption" not in off.va
    assert off.total.item() == pytest.approx((2 * off.va["image"] + off.va["music"]).item(), rel=1e-6)
    # Fixed pairs: MSE only on the diagonal of image-music and image-caption, music-caption whole.
    eye = torch.eye(4, dtype=torch.bool)
    fixed = mmva_loss(outs, va, LossConfig(), pair_mask=eye)
    cos = outs["image"].embedding @ outs["music"].embedding.T
    tgt = va_similarity_matrix(va["image"], va["music"])
    assert fixed.similarity["image-music"].item() == pytest.approx(((cos - tgt)[eye] ** 2).mean().item(), rel=1e-6)
    assert fixed.similarity["music-caption"].item() == pytest.approx(full.similarity["music-caption"].item())


def test_configs_load_override_and_reject_unknown_keys(tmp_path):
    assert {"offline", "paper", "tiny"} <= set(shipped_configs())
    cfg = load_config("offline", ["loss.similarity=contrastive", "train.steps=7"])
    assert (cfg.loss.similarity, cfg.train.steps, cfg.model.image.name) == ("contrastive", 7, "efficientnet-lite0")
    cfg.save(tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg
    with pytest.raises(ConfigError, match="unknown keys"):
        load_config("tiny", ["train.stepz=3"])
    with pytest.raises(ConfigError, match="loss.similarity"):
        load_config("tiny", ["loss.similarity=cosine"])
    with pytest.raises(ConfigError, match="no config"):
        load_config("nonexistent")


def test_checkpoint_round_trip_keeps_predictions_and_skips_frozen_weights(tmp_path):
    torch.manual_seed(0)
    model = MMVA(load_config("tiny")).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))  # not the init any more
    save_checkpoint(model, tmp_path / "ckpt", {"step": 3})
    from safetensors.torch import load_file
    saved = load_file(str(tmp_path / "ckpt" / "model.safetensors"))
    assert not [k for k in saved if k.startswith("encoders.image.backbone.")]  # frozen: not saved
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded.meta["step"] == 3
    x = {"image": {"features": torch.randn(3, 16)},
         "caption": {"input_ids": torch.randint(0, 100, (3, 32))}}
    with torch.no_grad():
        a, b = model(x), loaded.model(x)
    for m in x:
        assert torch.allclose(a[m].va, b[m].va) and torch.allclose(a[m].embedding, b[m].embedding)
    assert np.isfinite(a["image"].va.numpy()).all()
    # A frozen backbone that no longer matches what training saw is refused, not silently used.
    with torch.no_grad():
        model.encoder("image").backbone[0].weight.add_(1.0)
    save_checkpoint(model, tmp_path / "changed", {})
    from mmva_model.checkpoint import CheckpointError
    with pytest.raises(CheckpointError, match="frozen encoder weights differ"):
        load_checkpoint(tmp_path / "changed")
