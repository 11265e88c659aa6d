"""Benchmark: the Beam pipeline's scaling, its overhead, and what a user would write instead.

Each variant is a fresh process, as a user runs it, over the same demo songs (synthesised and in
the download cache beforehand), doing the same per-song work: fetch from cache, decode, cut,
label, describe, caption, encode FLAC, write parquet. Variants are interleaved, each repeated;
medians are compared. Every process pays its own start-up (imports, librosa's JIT: ~5 s), so the
workload is sized for that to matter little; the songs-only scaling (from the workers' progress
markers) is reported too.

- ``beam_1_worker`` / ``beam_2_workers`` / ``loop``: one library thread per process (BLAS, OpenMP,
  numba capped), so the ratio measures the pipeline's own parallelism;
- ``default``: ``python -m pipeline.run`` exactly as a user types it (no worker flags, no thread
  caps), against ``pool``, a ``multiprocessing.Pool`` script over the same per-song functions (one
  process per core, also uncapped), and ``beam_1_worker_uncapped``, whose CPU seconds / cores is
  the best wall time the default run could reach.

CPU seconds are those of the whole process tree (``RUSAGE_CHILDREN``); peak memory is the
largest sum of RSS over the process tree (``procmon``, sampled every 0.2 s).

Run as a script for the loop and pool variants: ``python -m tests.benchmarks.bench_pipeline loop|pool ARGS``.
"""
from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pipeline.beam_worker import THREAD_VARIABLES
from tests.benchmarks.procmon import measure
from tests.benchmarks.records import write_record

SONGS = int(os.environ.get("BENCH_SONGS", 200))
SONG_SECONDS, REPEATS = 45, int(os.environ.get("BENCH_REPEATS", 3))
ROOT = Path(__file__).resolve().parents[2]
# Floors every run on an uncontended machine must clear (a regression fails the benchmark) ...
MIN_SCALING, MIN_BEAM_VS_LOOP, MIN_CPU_SHARE = 1.0, 0.8, 0.8
# ... and the targets, recorded and printed as met or not: on a shared 2-core machine the wall
# clock of one run depends on what else runs, so they are figures to read, not asserts.
TARGETS = {"scaling_2_vs_1_workers": (">=", 1.9), "default_vs_cpu_bound": ("<=", 1.15), "default_vs_pool": (">=", 1.0)}
ONE_THREAD = {v: "1" for v in THREAD_VARIABLES}  # the libraries a pipeline worker caps


def pipeline_args(base: str, *extra: str, songs: int = SONGS) -> list[str]:
    return ["--output", os.path.join(base, "out"), "--cache_dir", os.path.join(base, "cache"),
            "--demo_songs", str(songs), "--demo_song_seconds", str(SONG_SECONDS), "--demo_images", "0",
            "--pairs_per_clip", "0", "--no_progress", "--captioner", "descriptor", *extra]


# -- what a user would write instead of the pipeline -------------------------------------------

_WORKER: dict = {}


def _setup_song_worker(cfg) -> None:
    """Per process: the downloader and the captioner, built once (as the pipeline's DoFn.setup does)."""
    from captioner.base import build
    from pipeline.download import Downloader

    _WORKER.update(cfg=cfg, downloader=Downloader(cfg.download), captioner=build(cfg.captioner))


def _song_rows(task) -> list[dict]:
    """One song's `music` rows, FLAC bytes included: the pipeline's per-song work, with its functions."""
    from pipeline.audio import encode_flac
    from pipeline.song import process_song
    from pipeline.stages import _with_caption, caption_batches, music_record
    from pipeline.types import Clip, Failure

    cfg, captioner = _WORKER["cfg"], _WORKER["captioner"]
    clips = [c for c in process_song(task, _WORKER["downloader"], cfg.cut) if isinstance(c, Clip)]
    rows = []
    for batch in caption_batches(clips, cfg.caption_batch_size):
        done = [batch] if isinstance(batch, Clip) else [
            _with_caption(c, r) for c, r in zip(batch, captioner.caption(batch))]
        for c in done:
            if isinstance(c, Failure):
                continue
            row = music_record(c)
            row["audio"]["bytes"] = encode_flac(c.samples, c.sample_rate)
            rows.append(row)
    return rows


def song_script(mode: str, argv: list[str]) -> int:
    """``loop``: the songs one after another; ``pool``: a multiprocessing.Pool, one process per core.
    Writes one parquet file per split; returns the rows written."""
    import multiprocessing

    from pipeline import run as run_mod
    from pipeline.beam_options import usable_cores
    from pipeline.writer import write_parquet

    opts, _ = run_mod.build_parser().parse_known_args(argv)
    songs = run_mod.collect_items(opts).songs
    cfg = run_mod.graph_config(opts, None)
    rows: dict[str, list[dict]] = {}
    if mode == "loop":
        _setup_song_worker(cfg)
        results = map(_song_rows, songs)
    else:
        pool = multiprocessing.Pool(usable_cores(), initializer=_setup_song_worker, initargs=(cfg,))
        results = pool.imap_unordered(_song_rows, songs)
    for song in results:
        for row in song:
            rows.setdefault(row["split"], []).append(row)
    for split, rs in rows.items():
        write_parquet(os.path.join(opts.output, mode, f"{split}.parquet"), "music", rs)
    return sum(len(r) for r in rows.values())


# -- measuring ------------------------------------------------------------------------------------

def timed(cmd: list[str], env: dict[str, str], run_json: str | None = None) -> dict:
    """Wall, CPU seconds of the whole process tree, peak summed RSS (and the songs phase of a pipeline run)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    usage = measure(cmd, cwd=ROOT, env=env, interval_s=0.2)
    if usage.returncode:
        raise subprocess.CalledProcessError(usage.returncode, cmd)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the tree was reaped: its CPU time is in
    out = {"total_s": round(usage.wall_s, 3),
           "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 3),
           "peak_rss_gb": usage.as_dict()["peak_rss_gb"]}
    if run_json:  # first to last song finished: the parallel part, without start-up and writing
        out["songs_phase_s"] = json.loads(Path(run_json).read_text())["songs_phase_s"]
    return out


def fill_cache(base: str, songs: int) -> None:
    """Synthesise the demo songs into the cache (listing them does), outside any measured run."""
    subprocess.run([sys.executable, "-m", "tests.benchmarks.bench_pipeline", "cache", *pipeline_args(base, songs=songs)],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _variants(py: str, base: str) -> dict[str, tuple[list[str], dict[str, str]]]:
    uncapped = {k: v for k, v in os.environ.items() if k not in ONE_THREAD}  # `make bench` sets the caps
    capped = {**uncapped, **ONE_THREAD}
    script = [py, "-m", "tests.benchmarks.bench_pipeline"]
    return {
        "loop": ([*script, "loop", *pipeline_args(base)], capped),
        "beam_1_worker": ([py, "-m", "pipeline.run", *pipeline_args(base, "--direct_num_workers=1")], capped),
        "beam_2_workers": ([py, "-m", "pipeline.run", *pipeline_args(
            base, "--direct_num_workers=2", "--direct_running_mode=multi_processing")], capped),
        "beam_1_worker_uncapped": ([py, "-m", "pipeline.run", *pipeline_args(base, "--direct_num_workers=1")],
                                   uncapped),
        "default": ([py, "-m", "pipeline.run", *pipeline_args(base)], uncapped),
        "pool": ([*script, "pool", *pipeline_args(base)], uncapped),
    }


def test_pipeline_scaling_and_overhead():
    from pipeline.beam_options import usable_cores

    py, cores = sys.executable, usable_cores()
    with tempfile.TemporaryDirectory() as base:
        fill_cache(base, SONGS)
        variants = _variants(py, base)
        runs: dict[str, list[dict]] = {k: [] for k in variants}
        for _ in range(REPEATS):  # interleaved, so drift in machine load hits all variants alike
            for name, (cmd, env) in variants.items():
                beam_run = cmd[2] == "pipeline.run"
                runs[name].append(timed(cmd, env, os.path.join(base, "out", "run.json") if beam_run else None))
    med = {k: statistics.median(r["total_s"] for r in v) for k, v in runs.items()}
    cpu = {k: statistics.median(r["cpu_s"] for r in v) for k, v in runs.items()}
    songs_phase = {k: statistics.median(r["songs_phase_s"] for r in v) for k, v in runs.items() if "songs_phase_s" in v[0]}
    cpu_bound = cpu["beam_1_worker_uncapped"] / cores
    audio_s = SONGS * SONG_SECONDS
    record = {
        "songs": SONGS, "song_seconds": SONG_SECONDS, "repeats": REPEATS, "cores": cores, "runs": runs,
        "median_total_s": med, "median_cpu_s": cpu,
        "scaling_2_vs_1_workers": med["beam_1_worker"] / med["beam_2_workers"],
        "songs_phase_scaling_2_vs_1": songs_phase["beam_1_worker"] / songs_phase["beam_2_workers"],
        "beam_1_worker_vs_loop": med["loop"] / med["beam_1_worker"],
        "default_vs_cpu_bound": med["default"] / cpu_bound,
        "default_vs_pool": med["pool"] / med["default"],
        "x_real_time": {k: audio_s / v for k, v in med.items()},
    }
    record["targets"] = targets(record, TARGETS)
    # The share of a core the one-worker run got: near 1 on a machine the benchmark has to itself,
    # far below when others compete for the cores, and then wall-clock ratios mean nothing.
    record["cpu_share_1_worker"] = cpu["beam_1_worker"] / med["beam_1_worker"]
    record["contended"] = record["cpu_share_1_worker"] < MIN_CPU_SHARE
    write_record("pipeline.json", record)
    print(f"\npipeline on {SONGS} x {SONG_SECONDS} s demo songs, {cores} cores, fresh process each, median of {REPEATS}:")
    for k, v in med.items():
        print(f"  {k:23s} {v:7.2f} s wall {cpu[k]:7.2f} s CPU  ({audio_s / v:6.1f}x real time)")
    print(f"  2 workers vs 1 (one thread each): {record['scaling_2_vs_1_workers']:.2f}x (floor {MIN_SCALING}); "
          f"songs phase alone: {record['songs_phase_scaling_2_vs_1']:.2f}x")
    print(f"  1 worker vs plain loop: {record['beam_1_worker_vs_loop']:.2f}x (floor {MIN_BEAM_VS_LOOP})")
    print(f"  default command: {record['default_vs_cpu_bound']:.2f} x (one-worker CPU s / {cores} cores); "
          f"{record['default_vs_pool']:.2f}x the speed of the multiprocessing.Pool script")
    for name, t in record["targets"].items():
        print(f"  target {name} {t['op']} {t['target']}: {t['value']:.2f} -> {'met' if t['met'] else 'NOT met'}")
    if record["contended"]:
        pytest.skip(f"the machine was contended (the one-worker run got {record['cpu_share_1_worker']:.0%} of a "
                    f"core, < {MIN_CPU_SHARE:.0%}): wall-clock floors not checked; figures recorded")
    assert record["scaling_2_vs_1_workers"] >= MIN_SCALING
    assert record["beam_1_worker_vs_loop"] >= MIN_BEAM_VS_LOOP


def targets(record: dict, wanted: dict[str, tuple[str, float]]) -> dict:
    """Each target with the measured value and whether it was met."""
    ok = {">=": lambda v, t: v >= t, "<=": lambda v, t: v <= t}
    return {k: {"op": op, "target": t, "value": record[k], "met": ok[op](record[k], t)} for k, (op, t) in wanted.items()}


MEMORY_SONGS = tuple(int(n) for n in os.environ.get("BENCH_MEMORY_SONGS", "25,100").split(","))
MAX_PEAK_GB, MEMORY_TARGET = 8.0, {"largest_vs_smallest": ("<=", 1.3)}


def test_pipeline_memory_does_not_grow_with_songs():
    """Peak RSS summed over all processes of the default command, at a few song counts."""
    py = sys.executable
    uncapped = {k: v for k, v in os.environ.items() if k not in ONE_THREAD}
    peaks = {}
    with tempfile.TemporaryDirectory() as base:
        for n in MEMORY_SONGS:
            fill_cache(base, n)
            peaks[n] = timed([py, "-m", "pipeline.run", *pipeline_args(base, songs=n)], uncapped)
    growth = max(p["peak_rss_gb"] for p in peaks.values()) / min(p["peak_rss_gb"] for p in peaks.values())
    record = {"song_seconds": SONG_SECONDS, "runs": {str(k): v for k, v in peaks.items()}, "largest_vs_smallest": growth}
    record["targets"] = targets(record, MEMORY_TARGET)
    write_record("pipeline_memory.json", record)
    print("\npeak RSS summed over all processes, default command:")
    for n, p in peaks.items():
        print(f"  {n:4d} songs: {p['peak_rss_gb']:.2f} GiB ({p['total_s']:.1f} s)")
    print(f"  largest / smallest: {growth:.2f} (target <= 1.3: {'met' if record['targets']['largest_vs_smallest']['met'] else 'NOT met'}); "
          f"each must stay < {MAX_PEAK_GB} GiB")
    assert all(p["peak_rss_gb"] < MAX_PEAK_GB for p in peaks.values())


if __name__ == "__main__" and sys.argv[1:2] in (["loop"], ["pool"]):
    print(song_script(sys.argv[1], sys.argv[2:]), "rows")
elif __name__ == "__main__" and sys.argv[1:2] == ["cache"]:
    from pipeline import run as _run

    print(len(_run.collect_items(_run.build_parser().parse_known_args(sys.argv[2:])[0]).songs), "songs listed")
