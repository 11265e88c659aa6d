"""Benchmark: Beam pipeline scaling (2 workers vs 1) and overhead (1 worker vs a plain loop).

Each variant is a fresh process, as a user runs it, over the same demo songs (synthesised and
in the download cache beforehand), doing the same per-song work: fetch from cache, decode, cut,
label, describe, caption, encode FLAC, write parquet. Variants are interleaved, each repeated;
medians are compared. Every process pays its own start-up (imports, librosa's JIT: ~5 s), so the
workload is sized for that to matter little; the songs-only scaling (from the workers' progress
markers) is reported too.

Run as a script for the loop variant: ``python -m tests.benchmarks.bench_pipeline loop ARGS``.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks.records import write_record

SONGS = int(os.environ.get("BENCH_SONGS", 200))
SONG_SECONDS, REPEATS = 45, int(os.environ.get("BENCH_REPEATS", 3))
ROOT = Path(__file__).resolve().parents[2]
MIN_SCALING, MIN_BEAM_VS_LOOP = 1.6, 0.8
ONE_THREAD = {v: "1" for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")}


def pipeline_args(base: str, *extra: str) -> list[str]:
    return ["--output", os.path.join(base, "out"), "--cache_dir", os.path.join(base, "cache"),
            "--demo_songs", str(SONGS), "--demo_song_seconds", str(SONG_SECONDS), "--demo_images", "0",
            "--pairs_per_clip", "0", "--no_progress", "--captioner", "descriptor", *extra]


def serial_loop(argv: list[str]) -> int:
    """The same per-song work as the pipeline, in a plain Python loop; returns rows written."""
    from captioner.base import build
    from pipeline import run as run_mod
    from pipeline.audio import encode_flac
    from pipeline.download import Downloader
    from pipeline.song import process_song
    from pipeline.stages import _with_caption, caption_batches, music_record
    from pipeline.types import Clip, Failure
    from pipeline.writer import write_parquet

    opts, _ = run_mod.build_parser().parse_known_args(argv)
    items = run_mod.collect_items(opts)
    cfg = run_mod.graph_config(opts, None)
    downloader, captioner = Downloader(cfg.download), build(cfg.captioner)
    rows: dict[str, list[dict]] = {}
    for task in items.songs:
        clips = [c for c in process_song(task, downloader, cfg.cut) if isinstance(c, Clip)]
        for batch in caption_batches(clips, cfg.caption_batch_size):
            done = [batch] if isinstance(batch, Clip) else [
                _with_caption(c, r) for c, r in zip(batch, captioner.caption(batch))]
            for c in done:
                if isinstance(c, Failure):
                    continue
                row = music_record(c)
                row["audio"]["bytes"] = encode_flac(c.samples, c.sample_rate)
                rows.setdefault(row["split"], []).append(row)
    for split, rs in rows.items():
        write_parquet(os.path.join(opts.output, "loop", f"{split}.parquet"), "music", rs)
    return sum(len(r) for r in rows.values())


def _timed(cmd: list[str], run_json: str | None = None) -> dict:
    t0 = time.time()
    subprocess.run(cmd, cwd=ROOT, env={**os.environ, **ONE_THREAD}, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = {"total_s": time.time() - t0}
    if run_json:  # first to last song finished: the parallel part, without start-up and writing
        out["songs_phase_s"] = json.loads(Path(run_json).read_text())["songs_phase_s"]
    return out


def test_pipeline_scaling_and_overhead():
    py = sys.executable
    with tempfile.TemporaryDirectory() as base:
        _timed([py, "-m", "pipeline.run", *pipeline_args(base)])  # synthesise, fill the cache
        variants = {
            "loop": [py, "-m", "tests.benchmarks.bench_pipeline", "loop", *pipeline_args(base)],
            "beam_1_worker": [py, "-m", "pipeline.run", *pipeline_args(base, "--direct_num_workers=1")],
            "beam_2_workers": [py, "-m", "pipeline.run", *pipeline_args(
                base, "--direct_num_workers=2", "--direct_running_mode=multi_processing")],
        }
        runs: dict[str, list[dict]] = {k: [] for k in variants}
        for _ in range(REPEATS):  # interleaved, so drift in machine load hits all variants alike
            for name, cmd in variants.items():
                run_json = None if name == "loop" else os.path.join(base, "out", "run.json")
                runs[name].append(_timed(cmd, run_json))
    med = {k: statistics.median(r["total_s"] for r in v) for k, v in runs.items()}
    songs_phase = {k: statistics.median(r["songs_phase_s"] for r in v) for k, v in runs.items() if k != "loop"}
    audio_s = SONGS * SONG_SECONDS
    record = {
        "songs": SONGS, "song_seconds": SONG_SECONDS, "repeats": REPEATS, "runs": runs, "median_total_s": med,
        "scaling_2_vs_1_workers": med["beam_1_worker"] / med["beam_2_workers"],
        "songs_phase_scaling_2_vs_1": songs_phase["beam_1_worker"] / songs_phase["beam_2_workers"],
        "beam_1_worker_vs_loop": med["loop"] / med["beam_1_worker"],
        "x_real_time": {k: audio_s / v for k, v in med.items()},
    }
    write_record("pipeline.json", record)
    print(f"\npipeline on {SONGS} x {SONG_SECONDS} s demo songs, fresh process each, median of {REPEATS}:")
    for k, v in med.items():
        print(f"  {k:15s} {v:7.2f} s  ({audio_s / v:6.1f}x real time)")
    print(f"  2 workers vs 1: {record['scaling_2_vs_1_workers']:.2f}x (need >= {MIN_SCALING}); "
          f"songs phase alone: {record['songs_phase_scaling_2_vs_1']:.2f}x")
    print(f"  1 worker vs plain loop: {record['beam_1_worker_vs_loop']:.2f}x (need >= {MIN_BEAM_VS_LOOP})")
    assert record["scaling_2_vs_1_workers"] >= MIN_SCALING
    assert record["beam_1_worker_vs_loop"] >= MIN_BEAM_VS_LOOP


if __name__ == "__main__" and sys.argv[1:2] == ["loop"]:
    print(serial_loop(sys.argv[2:]), "rows")
