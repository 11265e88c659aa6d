"""A small synthetic pipeline run folder (shards with HF features, run.json, failures) for tests.

Rows are made in Python so each test can break exactly one thing before the shards are written.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf
from PIL import Image

from dataset_card import schema

SR = 8000
SONG_SPLITS = {"s1": "train", "s2": "train", "s3": "validation", "s4": "test"}
IMAGE_SPLITS = {"img0": "train", "img1": "train", "img2": "validation", "img3": "test"}


def flac(seconds: float, freq: float = 440.0) -> bytes:
    t = np.arange(int(round(seconds * SR))) / SR
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * freq * t)).astype("float32"), SR, format="FLAC")
    return buf.getvalue()


def png(value: float) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (int(255 * value), 64, 128)).save(buf, format="PNG")
    return buf.getvalue()


def make_rows() -> dict[str, list[dict]]:
    """Two 1 s clips per song, one image per id, one pair per clip."""
    music = []
    for n, (song, split) in enumerate(SONG_SPLITS.items()):
        for i in range(2):
            va = 0.2 + 0.15 * n + 0.05 * i
            music.append({
                "clip_id": f"{song}-{i}", "song_id": song, "source": "demo", "start_s": float(i),
                "end_s": float(i + 1), "audio": {"bytes": flac(1.0, 220.0 * (n + 1)), "path": f"{song}-{i}.flac"},
                "valence": va, "arousal": 1 - va, "valence_std": 0.01, "arousal_std": 0.02,
                "caption": f"A calm piece number {n} with a soft timbre.", "captioner": "descriptor/none/template-v1",
                "descriptors": {"tempo_bpm": 90.0 + n, "beat_strength": 2.0, "key": "C", "mode": "major" if n % 2 else "minor",
                                "key_strength": 0.7, "loudness_db": -20.0, "dynamic_range_db": 6.0,
                                "brightness": 1500.0, "onset_rate": 2.0},
                "license": "CC0-1.0 (synthetic)", "split": split})
    images = [{"image_id": i, "image": {"bytes": png(0.2 * k), "path": f"{i}.png"}, "source": "demo",
               "valence": 0.2 * k + 0.1, "arousal": 0.5, "split": s} for k, (i, s) in enumerate(IMAGE_SPLITS.items())]
    image_of = {split: i for i, split in reversed(IMAGE_SPLITS.items())}  # first image of each split
    pairs = [{"music_clip_id": m["clip_id"], "image_id": image_of[m["split"]], "score": 0.5, "split": m["split"]}
             for m in music]
    return {schema.MUSIC: music, schema.IMAGES: images, schema.PAIRS: pairs}


def write_run(root: Path, rows: dict[str, list[dict]] | None = None,
              features: dict[str, "object"] | None = None) -> Path:
    """Write ``rows`` as a run folder. A row's ``_file_split`` puts it in another split's file."""
    rows = make_rows() if rows is None else rows
    for table, table_rows in rows.items():
        by_split: dict[str, list[dict]] = {}
        for r in table_rows:
            by_split.setdefault(r.pop("_file_split", r["split"]), []).append(r)
        feats = (features or {}).get(table, schema.FEATURES[table])
        for split, rs in by_split.items():
            path = root / "data" / table / f"{split}-00000-of-00001.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pylist(rs, schema=feats.arrow_schema), path)
    (root / "failures").mkdir(parents=True, exist_ok=True)
    fail = [{"item_id": "s9", "kind": "song", "stage": "download", "error_type": "http_404",
             "message": "not found", "attempts": 1}]
    pq.write_table(pa.Table.from_pylist(fail, schema=schema.FAILURE_SCHEMA), root / "failures" / "failures.parquet")
    run = {"runner": "DirectRunner", "wall_s": 1.0, "python": "3.11", "options": {"source": "demo", "output": str(root)},
           "versions": {"datasets": "5.2.0"}}
    (root / "run.json").write_text(json.dumps(run))
    return root
