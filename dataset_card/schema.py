"""The IMEMNet-C data contract: one place for table names, columns and Hugging Face features.

Used by the pipeline writer, the dataset publisher and the MMVA trainer (column names only).
"""
from __future__ import annotations

import math

import datasets
import pyarrow as pa

from captioner.content import ROW_KEYS
from captioner.tagger.vocab import VOCABULARIES

MUSIC, IMAGES, PAIRS = "music", "images", "pairs"
TABLES = (MUSIC, IMAGES, PAIRS)
SPLITS = ("train", "validation", "test")

# Musical descriptors measured per clip (pipeline.descriptors); one struct column in `music`.
DESCRIPTOR_FIELDS: dict[str, str] = {
    "tempo_bpm": "float32",  # global tempo estimate over the clip, beats per minute
    "beat_strength": "float32",  # mean onset strength on beats / mean onset strength (>1: clear pulse)
    "key": "string",  # tonic pitch class, e.g. "C#"
    "mode": "string",  # "major" | "minor"
    "key_strength": "float32",  # correlation of the chroma with the best key profile, [-1, 1]
    "loudness_db": "float32",  # mean RMS level, dBFS
    "dynamic_range_db": "float32",  # 95th - 5th percentile of frame RMS level, dB
    "brightness": "float32",  # mean spectral centroid, Hz
    "onset_rate": "float32",  # detected onsets per second
    "percussive_ratio": "float32",  # percussive share of the energy (HPSS of the mel spectrum), [0, 1]
    "loudness_trend_db": "float32",  # level change across the clip from a line fit to frame levels, dB
    "harmonic_change_rate": "float32",  # chord (chroma) changes per second
    "noisiness": "float32",  # energy-weighted spectral flatness of the mel spectrum, [0, 1]
}

_DESCRIPTORS = {k: datasets.Value(v) for k, v in DESCRIPTOR_FIELDS.items()}

# Content tags (pipeline.tagging): `tag_probs` holds each tagger's probabilities in its vocabulary's
# order, named once here (and in the card), not per row; `tags` the caption words they pass
# (captioner.content). `tag_embeddings` holds each tagger's penultimate layer (200 values, the
# mean over the clip's patches, like tag_probs): pretrained music features (MMVA's `musicnn`
# encoder). A run with --tagger none leaves tag_probs and tag_embeddings null and tags empty.
TAG_VOCABULARIES: dict[str, tuple[str, ...]] = {key: VOCABULARIES[model] for model, key in ROW_KEYS.items()}
# Variable-length lists: parquet has no fixed-size list, and pyarrow cannot read a null row of one back.
_TAG_PROBS = {k: datasets.List(datasets.Value("float32")) for k in TAG_VOCABULARIES}

FEATURES: dict[str, datasets.Features] = {
    MUSIC: datasets.Features(
        {
            "clip_id": datasets.Value("string"),
            "song_id": datasets.Value("string"),
            "source": datasets.Value("string"),
            "start_s": datasets.Value("float32"),
            "end_s": datasets.Value("float32"),
            "audio": datasets.Audio(),
            "valence": datasets.Value("float32"),
            "arousal": datasets.Value("float32"),
            "valence_std": datasets.Value("float32"),
            "arousal_std": datasets.Value("float32"),
            "caption": datasets.Value("string"),
            "captioner": datasets.Value("string"),
            "descriptors": _DESCRIPTORS,
            "tags": datasets.List(datasets.Value("string")),
            "tag_probs": _TAG_PROBS,
            "tag_embeddings": _TAG_PROBS,
            "license": datasets.Value("string"),
            "split": datasets.Value("string"),
        }
    ),
    IMAGES: datasets.Features(
        {
            "image_id": datasets.Value("string"),
            "image": datasets.Image(),
            "source": datasets.Value("string"),
            "valence": datasets.Value("float32"),
            "arousal": datasets.Value("float32"),
            "split": datasets.Value("string"),
        }
    ),
    PAIRS: datasets.Features(
        {
            "music_clip_id": datasets.Value("string"),
            "image_id": datasets.Value("string"),
            "score": datasets.Value("float32"),
            "split": datasets.Value("string"),
        }
    ),
}

ID_COLUMN = {MUSIC: "clip_id", IMAGES: "image_id", PAIRS: ("music_clip_id", "image_id")}

FAILURE_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("kind", pa.string()),
        ("stage", pa.string()),
        ("error_type", pa.string()),
        ("message", pa.string()),
        ("attempts", pa.int32()),
    ]
)


def arrow_schema(table: str) -> pa.Schema:
    """Arrow schema of ``table`` carrying the Hugging Face features in its metadata."""
    return FEATURES[table].arrow_schema


# Similarity between two items from their VA labels, the target of MMVA's matching objective and
# the score of pairs scored from VA. VA lives in [0, 1]^2, so the distance is in [0, sqrt(2)];
# f maps it linearly to [1, 0]: identical VA -> 1, opposite corners -> 0.
MAX_VA_DISTANCE = math.sqrt(2.0)


def va_similarity(va_a: tuple[float, float], va_b: tuple[float, float]) -> float:
    """Target similarity s(a, b) = 1 - ||va_a - va_b||_2 / sqrt(2), in [0, 1]."""
    d = math.hypot(va_a[0] - va_b[0], va_a[1] - va_b[1])
    return max(0.0, 1.0 - d / MAX_VA_DISTANCE)


# Media columns per table: dropped by a metadata-only build (`python -m dataset_card build
# --metadata-only`) for sources whose licences forbid redistributing the audio or images.
MEDIA_COLUMN: dict[str, str] = {MUSIC: "audio", IMAGES: "image"}


def metadata_only_features(table: str) -> datasets.Features:
    """The table's features without its media column (ids, VA, captions, descriptors only)."""
    media = MEDIA_COLUMN.get(table)
    return datasets.Features({k: v for k, v in FEATURES[table].items() if k != media})
