"""Benchmark: Beam pipeline scaling (2 workers vs 1) and overhead (1 worker vs a plain loop).

All three do the same per-song work on the same demo songs (already synthesised and in the
download cache): fetch from cache, decode, cut, label, describe, caption, encode FLAC, write
parquet. Measured side by side in one run, each repeated; medians are compared.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # per-core figures: parallelism comes from workers only

from captioner.base import CaptionerConfig, build  # noqa: E402
from pipeline import run as run_mod  # noqa: E402
from pipeline.download import Downloader  # noqa: E402
from pipeline.audio import encode_flac  # noqa: E402
from pipeline.stages import CaptionClips, music_record  # noqa: E402
from pipeline.song import process_song  # noqa: E402
from pipeline.types import Clip, Failure  # noqa: E402
from pipeline.writer import to_parquet_bytes  # noqa: E402

SONGS, SONG_SECONDS, REPEATS = int(os.environ.get("BENCH_SONGS", 64)), 45, int(os.environ.get("BENCH_REPEATS", 3))
OUT_DIR = Path(__file__).resolve().parents[2] / "runs" / "bench"
MIN_SCALING, MIN_BEAM_VS_LOOP = 1.6, 0.8


def _args(base: str, *extra: str) -> list[str]:
    return ["--output", os.path.join(base, "out"), "--cache_dir", os.path.join(base, "cache"),
            "--demo_songs", str(SONGS), "--demo_song_seconds", str(SONG_SECONDS), "--demo_images", "0",
            "--pairs_per_clip", "0", "--no_progress", *extra]


def _serial_loop(base: str) -> int:
    """The same per-song work as the pipeline, in a plain Python loop."""
    opts, _ = run_mod.build_parser().parse_known_args(_args(base))
    items = run_mod.collect_items(opts)
    cfg = run_mod.graph_config(opts, None)
    downloader, captioner = Downloader(cfg.download), build(CaptionerConfig(cfg.captioner.backend))
    captioning = CaptionClips(cfg.captioner, cfg.caption_batch_size)
    captioning.captioner = captioner
    rows: dict[str, list[dict]] = {}
    for task in items.songs:
        clips = [c for c in process_song(task, downloader, cfg.cut) if isinstance(c, Clip)]
        for c in captioning.process(clips):
            if not isinstance(c, Failure):
                row = music_record(c)
                row["audio"]["bytes"] = encode_flac(c.samples, c.sample_rate)
                rows.setdefault(row["split"], []).append(row)
    for split, rs in rows.items():
        Path(base, f"loop-{split}.parquet").write_bytes(to_parquet_bytes("music", rs))
    return sum(len(r) for r in rows.values())


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def test_pipeline_scaling_and_overhead():
    with tempfile.TemporaryDirectory() as base:
        run_mod.run(_args(base))  # synthesise the songs, fill the download cache, warm caches
        variants = {
            "loop": lambda: _serial_loop(base),
            "beam_1_worker": lambda: run_mod.run(_args(base, "--direct_num_workers=1")),
            "beam_2_workers": lambda: run_mod.run(_args(base, "--direct_num_workers=2",
                                                        "--direct_running_mode=multi_processing")),
        }
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(REPEATS):  # interleaved, so drift in machine load hits all variants alike
            for name, fn in variants.items():
                times[name].append(_timed(fn))
    med = {k: statistics.median(v) for k, v in times.items()}
    audio_s = SONGS * SONG_SECONDS
    record = {
        "songs": SONGS, "song_seconds": SONG_SECONDS, "repeats": REPEATS, "seconds": times, "median_s": med,
        "scaling_2_vs_1_workers": med["beam_1_worker"] / med["beam_2_workers"],
        "beam_1_worker_vs_loop": med["loop"] / med["beam_1_worker"],
        "x_real_time": {k: audio_s / v for k, v in med.items()},
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version()},
    }
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "pipeline.json").write_text(json.dumps(record, indent=2))
    print(f"\npipeline on {SONGS} x {SONG_SECONDS} s demo songs, median of {REPEATS}:")
    for k, v in med.items():
        print(f"  {k:15s} {v:7.2f} s  ({audio_s / v:6.1f}x real time)")
    print(f"  2 workers vs 1: {record['scaling_2_vs_1_workers']:.2f}x (need >= {MIN_SCALING})")
    print(f"  1 worker vs plain loop: {record['beam_1_worker_vs_loop']:.2f}x (need >= {MIN_BEAM_VS_LOOP})")
    assert record["scaling_2_vs_1_workers"] >= MIN_SCALING
    assert record["beam_1_worker_vs_loop"] >= MIN_BEAM_VS_LOOP
