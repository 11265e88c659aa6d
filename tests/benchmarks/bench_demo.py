"""Benchmark: how fast the demo source synthesises its songs (the first thing `make run` waits for).

Run with ``make bench``. Prints the figure and writes ``runs/bench/demo.json``. A timing, so it
lives here rather than in ``make test``, where a loaded machine would make it flake.
"""
from __future__ import annotations

import statistics
import time

from pipeline.sources.demo import SYNTH_RATE, demo_song_plan, synthesize_song
from tests.benchmarks.records import write_record

SONGS, SONG_S = 12, 30.0  # the pipeline's default demo (--demo_songs, --demo_song_seconds)
REPEATS = 3
MIN_X_REAL_TIME = 48.0  # 8 songs x 30 s in 5 s, the bound the unit test used to assert


def test_demo_synthesis_speed():
    plan = demo_song_plan(SONGS)

    def synthesise_all():
        for number, _split, quadrant in plan:
            synthesize_song(f"demo{number:03d}", 0, SONG_S, SYNTH_RATE, quadrant=quadrant)

    synthesise_all()  # warm-up
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        synthesise_all()
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    x_rt = SONGS * SONG_S / median
    record = {"benchmark": "demo_synthesis", "songs": SONGS, "song_seconds": SONG_S, "sample_rate": SYNTH_RATE,
              "repeats": REPEATS, "seconds": times, "x_real_time": x_rt, "min_x_real_time": MIN_X_REAL_TIME}
    path = write_record("demo.json", record)
    print(f"\ndemo synthesis: {SONGS} x {SONG_S:.0f} s songs in {median:.2f} s ({x_rt:.0f} x real time) -> {path}")
    assert x_rt >= MIN_X_REAL_TIME
