"""A minimal pipeline-run folder of synthetic clips for the captioning job, with no pipeline import.

Only numpy, pyarrow and the standard library (WAV bytes via ``wave``), so the GPU benchmark can
build it on a machine that has neither soundfile nor the pipeline's dependencies.
"""
from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DESCRIPTORS = {"tempo_bpm": 96.0, "beat_strength": 2.0, "key": "A", "mode": "minor", "key_strength": 0.7,
               "loudness_db": -22.0, "dynamic_range_db": 6.0, "brightness": 900.0, "onset_rate": 2.0}


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """16-bit PCM mono WAV."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def music_clip(i: int, seconds: float, rate: int) -> np.ndarray:
    """A chord with a decaying pulse: not silent, different per clip."""
    t = np.arange(int(seconds * rate)) / rate
    f0 = 110.0 * 2 ** ((i % 12) / 12)
    tone = sum(np.sin(2 * np.pi * f0 * m * t) / m for m in (1, 1.5, 2))
    pulse = np.exp(-((t * 2.0) % 1.0) * 6)
    return (0.2 * tone * (0.4 + 0.6 * pulse)).astype(np.float32)


def write_music_run(folder: Path, n: int, seconds: float = 10.0, rate: int = 16000, corrupt: tuple[int, ...] = (),
                    row_group: int = 4, shards: int = 2, first_song: int = 1000) -> list[str]:
    """``folder/data/music/*.parquet`` with ``n`` clips (``corrupt`` indices get undecodable bytes)."""
    out = Path(folder) / "data" / "music"
    out.mkdir(parents=True, exist_ok=True)
    ids = [f"{first_song + i // 13}-{9 + i % 13}" for i in range(n)]
    rows = [{"clip_id": cid, "descriptors": DESCRIPTORS, "valence": 0.2 + 0.6 * (i % 2),
             "arousal": 0.3 + 0.4 * (i % 3 == 0),
             "audio": {"bytes": b"RIFF-not-audio" if i in corrupt else wav_bytes(music_clip(i, seconds, rate), rate),
                       "path": f"{cid}.wav"},
             "caption": "placeholder", "captioner": "source"} for i, cid in enumerate(ids)]
    for s in range(shards):
        part = rows[s::shards]
        if part:
            pq.write_table(pa.Table.from_pylist(part), out / f"train-{s:05d}.parquet", row_group_size=row_group)
    return ids
