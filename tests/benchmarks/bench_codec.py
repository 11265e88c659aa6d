"""Benchmark: what each clip codec costs on real recordings (``--audio_codec``'s figures).

Run with ``make bench``. Real recordings come from Debian's game-music packages (OGG files;
``apt-get install planetblupi-music-ogg drascula-music hyperrogue-music``) or any folder named by
``BENCH_CODEC_AUDIO``; without any the benchmark skips and says how to get them. Each recording
gives a 45 s excerpt (from 30 s in when it is long enough), cut as the pipeline cuts DEAM's: 10 s
clips every 5/3 s over [15, 45) s, 13 clips, decoded at 44.1 kHz mono. For every candidate format
the figures are: bytes per hour of clips (and the full-size rehearsal's 72 h of clips in GB),
CPU milliseconds to encode a clip (beside the descriptor analysis the pipeline already does per
clip, measured in the same run), and what the round trip (encode, then decode back to 44.1 kHz
the way a user would) changes in the clip's descriptors: the median and 95th percentile change of
each numeric descriptor, in units of that descriptor's spread over the clips (its standard
deviation), and how often key, mode and tempo stay the same. One library thread throughout.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from dataset_card import schema  # noqa: E402
from dataset_card.codecs import AudioFormat, encode  # noqa: E402
from pipeline import audio, descriptors  # noqa: E402
from tests.benchmarks.records import write_record  # noqa: E402

DEBIAN_MUSIC = ("/usr/share/planetblupi/music", "/usr/share/scummvm/drascula/audio", "/usr/share/hyperrogue/music",
                "/usr/share/games/warzone2100/music")
SR, CLIP_S, HOP_S, SPAN = 44100, 10.0, 5 / 3, (15.0, 45.0)
SONGS = int(os.environ.get("BENCH_CODEC_SONGS", "8"))
FULL_SIZE_HOURS = 72.0  # the full-size rehearsal's music table (docs/performance.md)
CANDIDATES = (AudioFormat("flac"), AudioFormat("opus", kbps=64), AudioFormat("opus", kbps=96),
              AudioFormat("opus", kbps=128), AudioFormat("mp3", kbps=128), AudioFormat("mp3", kbps=192))
NUMERIC = [k for k, t in schema.DESCRIPTOR_FIELDS.items() if t != "string"]


def recordings() -> list[Path]:
    """Up to SONGS real recordings, spread over the folders found (sorted, so the same every run)."""
    folders = [Path(p) for p in os.environ.get("BENCH_CODEC_AUDIO", "").split(os.pathsep) if p] or \
        [Path(p) for p in DEBIAN_MUSIC]
    per_folder = [sorted(p for p in f.glob("*") if p.suffix.lower() in (".ogg", ".mp3", ".flac", ".wav"))
                  for f in folders if f.is_dir()]
    picked, i = [], 0
    while len(picked) < SONGS and any(i < len(f) for f in per_folder):
        picked += [f[i] for f in per_folder if i < len(f)]
        i += 1
    return picked[:SONGS]


def excerpt(path: Path) -> np.ndarray | None:
    """45 s of the recording (from 30 s in when it is long enough), None when it is shorter."""
    info = audio.probe(str(path))
    start = 30.0 if (info.duration_s or 0) >= 75.0 else 0.0
    if (info.duration_s or 0) < start + 45.0:
        return None
    return audio.decode(str(path), SR, start_s=start, end_s=start + 45.0)


def describe(x: np.ndarray, rate: int) -> dict:
    return descriptors.clip_descriptors(descriptors.analyze(x, rate), 0.0, CLIP_S)


def cpu_ms(fn) -> tuple[float, object]:
    t0 = time.process_time()
    out = fn()
    return (time.process_time() - t0) * 1000, out


def changes(ref: list[dict], got: list[dict]) -> dict:
    """Per numeric descriptor: median and p95 of |change| / spread; key, mode, tempo kept."""
    out = {}
    for k in NUMERIC:
        a, b = np.array([r[k] for r in ref]), np.array([g[k] for g in got])
        spread = float(np.std(a)) or 1.0
        d = np.abs(b - a) / spread
        out[k] = {"median": round(float(np.median(d)), 4), "p95": round(float(np.percentile(d, 95)), 4)}
    same = lambda f: round(float(np.mean([f(r, g) for r, g in zip(ref, got)])), 3)  # noqa: E731
    out["key_same"] = same(lambda r, g: r["key"] == g["key"])
    out["mode_same"] = same(lambda r, g: r["mode"] == g["mode"])
    out["tempo_within_2pct"] = same(
        lambda r, g: abs(g["tempo_bpm"] - r["tempo_bpm"]) <= 0.02 * max(r["tempo_bpm"], 1.0))
    return out


@pytest.mark.skipif(not recordings(), reason="no real recordings: apt-get install planetblupi-music-ogg "
                    "drascula-music hyperrogue-music, or set BENCH_CODEC_AUDIO to a folder of songs")
def test_codec_costs_on_real_recordings():
    with threadpool_limits(limits=1):
        record = measure(recordings())
    write_record("codec.json", record)
    for name, c in record["codecs"].items():
        print(f"{name:>10}: {c['mb_per_hour']:7.1f} MB/h ({c['size_vs_flac']:.3f} of FLAC), "
              f"{c['full_size_gb']:5.2f} GB at full size, encode {c['encode_ms_per_clip']:6.1f} ms/clip "
              f"({c['encode_vs_descriptors']:.2f}x the descriptors), key same {c['descriptors']['key_same']}, "
              f"mode same {c['descriptors']['mode_same']}, tempo kept {c['descriptors']['tempo_within_2pct']}")
    print(json.dumps({k: v["descriptors"] for k, v in record["codecs"].items()}, indent=1))
    flac = record["codecs"]["flac"]["descriptors"]
    # lossless: only 16-bit rounding (-96 dBFS noise) changes, far below any descriptor's spread
    assert all(flac[k]["p95"] < 0.01 for k in NUMERIC), flac


def measure(paths: list[Path]) -> dict:
    grid = audio.clip_grid(45.0, CLIP_S, HOP_S, SPAN)
    clips, names, descriptor_ms = [], [], []
    for p in paths:
        x = excerpt(p)
        if x is None:
            continue
        names.append(p.name)
        ms, a = cpu_ms(lambda: descriptors.analyze(x, SR))  # the pipeline's per-song work ...
        ms2, _ = cpu_ms(lambda: [descriptors.clip_descriptors(a, s, e) for _, s, e in grid])  # ... and per clip
        descriptor_ms.append((ms + ms2) / len(grid))
        clips += [x[int(round(s * SR)):int(round(s * SR)) + int(CLIP_S * SR)] for _, s, _ in grid]
    reference = [describe(c, SR) for c in clips]
    per_clip_descriptors = statistics.median(descriptor_ms)
    record = {"recordings": names, "clips": len(clips), "descriptor_ms_per_clip": round(per_clip_descriptors, 2),
              "codecs": {}}
    for fmt in CANDIDATES:
        sizes, times, got = [], [], []
        for c in clips:
            ms, data = cpu_ms(lambda: encode(c, SR, fmt))
            assert encode(c, SR, fmt) == data, f"{fmt}: encoding is not byte-stable"
            sizes.append(len(data))
            times.append(ms)
            y = audio.decode(data, SR)
            assert len(y) == len(c), f"{fmt}: {len(y)} samples back, {len(c)} encoded"
            got.append(describe(y, SR))
        per_hour = statistics.mean(sizes) * 3600 / CLIP_S
        name = fmt.codec + (f"-{fmt.kbps}" if fmt.kbps else "")
        record["codecs"][name] = {
            "format": fmt.resolved(SR).describe(), "bytes_per_clip": round(statistics.mean(sizes)),
            "mb_per_hour": round(per_hour / 1e6, 1), "full_size_gb": round(per_hour * FULL_SIZE_HOURS / 1e9, 2),
            "encode_ms_per_clip": round(statistics.median(times), 1),
            "encode_vs_descriptors": round(statistics.median(times) / per_clip_descriptors, 2),
            "descriptors": changes(reference, got)}
    flac = record["codecs"]["flac"]["bytes_per_clip"]
    for c in record["codecs"].values():
        c["size_vs_flac"] = round(c["bytes_per_clip"] / flac, 3)
    return record
