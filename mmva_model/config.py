"""MMVA configuration: small commented dataclasses, read from and written to YAML.

A config names the encoders (one per modality, from :mod:`mmva_model.encoders`), the heads, the
loss and the training schedule. ``mmva_model/configs/<name>.yaml`` holds the shipped ones
(``offline``, ``tiny``, ``paper``); every checkpoint folder gets a ``config.yaml`` beside its
weights, and :func:`load_config` restores it from there, so a checkpoint always says how it was
made.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).parent / "configs"
MODALITIES = ("image", "music", "caption")
CROSS_PAIRS = (("image", "music"), ("image", "caption"), ("music", "caption"))


@dataclass
class EncoderConfig:
    name: str  # key in mmva_model.encoders.ENCODERS
    model: str = ""  # Hugging Face id or local folder, for encoders that load weights
    frozen: bool = True  # frozen backbones can be cached once (see TrainConfig.cache_features)
    options: dict[str, Any] = field(default_factory=dict)  # encoder-specific settings


@dataclass
class ModelConfig:
    image: EncoderConfig = field(default_factory=lambda: EncoderConfig("tiny-image"))
    music: EncoderConfig = field(default_factory=lambda: EncoderConfig("tiny-music"))
    caption: EncoderConfig = field(default_factory=lambda: EncoderConfig("tiny-text"))
    embed_dim: int = 256  # shared, L2-normalised embedding
    proj_hidden: int = 512  # hidden width of each projection MLP
    head_hidden: int = 64  # hidden width of the VA head
    dropout: float = 0.1
    # One VA head on the shared embedding (True) keeps VA readable the same way from every
    # modality, which is what zero-shot VA transfer relies on; False gives one head per modality.
    shared_va_head: bool = True

    def encoder(self, modality: str) -> EncoderConfig:
        return getattr(self, modality)


@dataclass
class LossConfig:
    # Per-modality weights of the VA MSE terms.
    va_weights: dict[str, float] = field(
        default_factory=lambda: {"image": 1.0, "music": 1.0, "caption": 1.0}
    )
    similarity_weight: float = 1.0  # lambda; 0 turns the matching objective off
    similarity: str = "mse"  # "mse" (cosine vs target) or "contrastive" (soft-target InfoNCE)
    temperature: float = 0.1  # contrastive: logits = cosine / temperature
    target_temperature: float = 0.1  # contrastive: soft targets = softmax(target / this)
    # Which cross-modal pairs carry the similarity loss (all three by default).
    pairs: list[str] = field(default_factory=lambda: ["image-music", "image-caption", "music-caption"])


@dataclass
class TrainConfig:
    steps: int = 600
    music_batch: int = 32  # clips (with their captions) per step and process
    image_batch: int = 32  # images per step and process, drawn independently of the clips
    # "random": clips and images drawn independently, every cross-modal pair of the batch scored
    # from VA (MMVA's random VA matching); "fixed": batches of the pairs table's (clip, image)
    # pairs, similarity loss on those pairs only (the one-to-one baseline).
    matching: str = "random"
    lr: float = 1e-3  # heads and from-scratch encoders
    backbone_lr: float = 1e-5  # pretrained backbones when not frozen
    weight_decay: float = 0.01
    warmup_steps: int = 30
    grad_accum: int = 1
    max_grad_norm: float = 1.0
    mixed_precision: str = "auto"  # "auto": bf16 on CUDA when supported, else no
    seed: int = 0
    eval_every: int = 50
    checkpoint_every: int = 200
    keep_checkpoints: int = 2  # step checkpoints kept (best and last are always kept)
    patience: int = 6  # evaluations without improvement before early stopping; 0 = never
    cache_features: bool = True  # run frozen backbones once and train on their cached outputs
    num_workers: int = 0  # DataLoader workers for live (uncached) batches
    eval_batch: int = 64


@dataclass
class MMVAConfig:
    name: str = "tiny"
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        """Write the config as YAML (what a checkpoint folder's ``config.yaml`` holds)."""
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")


class ConfigError(ValueError):
    """A config file or override that does not fit the dataclasses."""


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    """``cls(**data)`` with nested dataclasses built too; unknown keys raise ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; known: {sorted(fields)}")
    kwargs = {}
    for key, value in data.items():
        sub = _NESTED.get((cls, key))
        kwargs[key] = _build(sub, value, f"{where}.{key}") if sub else value
    return cls(**kwargs)


_NESTED = {
    (MMVAConfig, "model"): ModelConfig,
    (MMVAConfig, "loss"): LossConfig,
    (MMVAConfig, "train"): TrainConfig,
    **{(ModelConfig, m): EncoderConfig for m in MODALITIES},
}


def config_from_dict(data: dict[str, Any], where: str = "config") -> MMVAConfig:
    """An MMVAConfig from plain data, validated."""
    cfg = _build(MMVAConfig, data, where)
    validate(cfg)
    return cfg


def validate(cfg: MMVAConfig) -> None:
    """Raise ConfigError for values the trainer cannot use."""
    allowed = {"similarity": ("mse", "contrastive"), "matching": ("random", "fixed")}
    checks = [
        (cfg.loss.similarity in allowed["similarity"], f"loss.similarity must be one of {allowed['similarity']}"),
        (cfg.train.matching in allowed["matching"], f"train.matching must be one of {allowed['matching']}"),
        (cfg.train.steps > 0 and cfg.train.grad_accum > 0, "train.steps and train.grad_accum must be > 0"),
        (cfg.train.music_batch > 0 and cfg.train.image_batch > 0, "batch sizes must be > 0"),
        (cfg.loss.temperature > 0 and cfg.loss.target_temperature > 0, "temperatures must be > 0"),
        (set(cfg.loss.va_weights) <= set(MODALITIES), f"loss.va_weights keys must be in {MODALITIES}"),
        (set(cfg.loss.pairs) <= {f"{a}-{b}" for a, b in CROSS_PAIRS},
         f"loss.pairs must be among {[f'{a}-{b}' for a, b in CROSS_PAIRS]}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def load_config(name_or_path: str | Path, overrides: list[str] | None = None) -> MMVAConfig:
    """A shipped config by name (``offline``), a YAML file, or a checkpoint folder's config.yaml.

    ``overrides`` are ``dotted.key=value`` strings (values parsed as YAML), e.g.
    ``loss.similarity=contrastive`` or ``train.steps=100``.
    """
    path = _resolve(name_or_path)
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for item in overrides or []:
        _apply_override(data, item)
    return config_from_dict(data, where=str(path))


def shipped_configs() -> list[str]:
    """Names of the configs in mmva_model/configs/."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def _resolve(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.is_dir() and (p / "config.yaml").is_file():
        return p / "config.yaml"
    if p.is_file():
        return p
    shipped = CONFIG_DIR / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    raise ConfigError(
        f"no config {str(name_or_path)!r}: give a YAML file, a checkpoint folder or one of {shipped_configs()}"
    )


def _apply_override(data: dict[str, Any], item: str) -> None:
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not key=value (e.g. loss.similarity=contrastive)")
    key, raw = item.split("=", 1)
    node = data
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {part!r} is not a section")
    node[parts[-1]] = yaml.safe_load(raw)
