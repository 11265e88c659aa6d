"""A tiny IMEMNet-C whose VA labels follow from the inputs, so a model that learns must fit them.

Every clip's pitch, level, tempo, mode and brightness, every image's colour and brightness, and
every caption's words are functions of the item's VA (the relations the demo source uses, made
noise-free enough for a few hundred parameters and a few dozen steps). Rows are written straight
to shards (no pipeline run), in a second or two.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from captioner.backends.descriptor import describe
from dataset_card import schema
from tests.dataset_card.fakerun import write_run

SR = 8000
CLIP_SECONDS = 2.0
SPLITS = {"train": 20, "validation": 6}  # songs per split; 3 clips per song, 3 images per song


def _flac(valence: float, arousal: float, rng: np.random.Generator) -> bytes:
    """A tone whose pitch rises with valence and whose note rate and level rise with arousal."""
    t = np.arange(int(SR * CLIP_SECONDS)) / SR
    freq = 200.0 + 600.0 * valence
    rate = 1.0 + 7.0 * arousal  # notes per second
    envelope = 0.5 * (1 + np.sign(np.sin(2 * np.pi * rate * t)))
    x = (0.1 + 0.5 * arousal) * envelope * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)
    buf = io.BytesIO()
    sf.write(buf, x.astype("float32"), SR, format="FLAC")
    return buf.getvalue()


def _png(valence: float, arousal: float, rng: np.random.Generator) -> bytes:
    """Warm and bright with valence, saturated with arousal, plus pixel noise."""
    base = np.array([255 * valence, 255 * arousal, 255 * (1 - valence)], dtype=np.float64)
    pixels = np.clip(base + rng.normal(0, 12, (32, 32, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="PNG")
    return buf.getvalue()


def _descriptors(valence: float, arousal: float) -> dict:
    return {"tempo_bpm": 60.0 + 120.0 * arousal, "beat_strength": 1.0 + arousal, "key": "C",
            "mode": "major" if valence >= 0.5 else "minor", "key_strength": 0.5 + 0.4 * abs(valence - 0.5),
            "loudness_db": -35.0 + 25.0 * arousal, "dynamic_range_db": 6.0,
            "brightness": 800.0 + 2400.0 * valence, "onset_rate": 1.0 + 7.0 * arousal}


def write_learnable_run(root: Path, seed: int = 0) -> Path:
    """The run folder: music (3 clips per song), images and no pairs, in train and validation."""
    rng = np.random.default_rng(seed)
    music, images = [], []
    for split, n_songs in SPLITS.items():
        for s in range(n_songs):
            song = f"{split[:3]}{s:02d}"
            for c in range(3):
                v, a = (float(x) for x in rng.uniform(0.05, 0.95, 2))
                desc = _descriptors(v, a)
                music.append({
                    "clip_id": f"{song}-{c}", "song_id": song, "source": "demo", "start_s": 2.0 * c,
                    "end_s": 2.0 * c + CLIP_SECONDS, "audio": {"bytes": _flac(v, a, rng), "path": f"{song}-{c}.flac"},
                    "valence": v, "arousal": a, "valence_std": 0.0, "arousal_std": 0.0,
                    "caption": describe(desc, v, a), "captioner": "descriptor/none/template-v1",
                    "descriptors": desc, "license": "CC0-1.0 (synthetic)", "split": split})
                v, a = (float(x) for x in rng.uniform(0.05, 0.95, 2))
                images.append({"image_id": f"img-{song}-{c}", "image": {"bytes": _png(v, a, rng), "path": f"{song}-{c}.png"},
                               "source": "demo", "valence": v, "arousal": a, "split": split})
    return write_run(root, {schema.MUSIC: music, schema.IMAGES: images, schema.PAIRS: []})
