"""Benchmark: how fast the demo source renders its songs (the first thing `make run` waits for).

Run with ``make bench``. Prints the figure and writes ``runs/bench/demo.json``. A timing, so it
lives here rather than in ``make test``, where a loaded machine would make it flake. The songs are
composed and played through the TimGM6mb soundfont (``pipeline.sources.demo_soundfont``), once
per cache: later runs reuse the files.
"""
from __future__ import annotations

import statistics
import time

from pipeline.sources.demo import SYNTH_RATE, compose_song, demo_song_plan, synthesize_song
from tests.benchmarks.records import write_record

SONGS, SONG_S = 12, 30.0  # the pipeline's default demo (--demo_songs, --demo_song_seconds)
REPEATS = 3
# 12 x 30 s in under 15 s on one core: sampled rendering measured about 50x on this 2-core
# machine, shared (the additive synthesiser it replaced: about 90x); half of that leaves room for a
# busy machine while keeping the first `make run` quick.
MIN_X_REAL_TIME = 24.0


def test_demo_rendering_speed():
    plan = demo_song_plan(SONGS)

    def render_all():
        for song in plan:
            synthesize_song(song.song_id, 0, SONG_S, SYNTH_RATE, quadrant=song.quadrant, ensemble=song.ensemble)

    def compose_all():
        for song in plan:
            compose_song(song.song_id, 0, SONG_S, song.quadrant, song.ensemble)

    render_all()  # warm-up
    times, compose_times = [], []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        render_all()
        times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        compose_all()
        compose_times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    x_rt = SONGS * SONG_S / median
    record = {"benchmark": "demo_rendering", "songs": SONGS, "song_seconds": SONG_S, "sample_rate": SYNTH_RATE,
              "repeats": REPEATS, "seconds": times, "compose_seconds": compose_times, "x_real_time": x_rt,
              "min_x_real_time": MIN_X_REAL_TIME,
              "ensembles": sorted({song.ensemble for song in plan})}
    path = write_record("demo.json", record)
    print(f"\ndemo rendering: {SONGS} x {SONG_S:.0f} s songs in {median:.2f} s ({x_rt:.0f} x real time; "
          f"composing alone {statistics.median(compose_times):.2f} s) -> {path}")
    assert x_rt >= MIN_X_REAL_TIME
