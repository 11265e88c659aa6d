"""Benchmark: the shard writer's peak memory against its row-group bound.

Each measurement is a fresh process that writes one shard of staged music rows (random bytes of a
10 s clip's FLAC size: media are stored uncompressed, so their content does not matter) with
``write_parquet`` and reports its peak RSS above what it held before (Linux's VmHWM, reset
first). Bounds are interleaved and repeated; medians are compared. The writer should hold about
three times its row group, never the shard.

Run one measurement as a script: ``python -m tests.benchmarks.bench_writer ROW_GROUP_MB STAGING_DIR``.
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

from tests.benchmarks.procmon import reset_self_peak, self_status_mb
from tests.benchmarks.records import write_record

ROOT = Path(__file__).resolve().parents[2]
ROWS, MEDIA_BYTES = 600, 660_000  # a 396 MB shard: under the 500 MB shard bound, several row groups
BOUNDS_MB, REPEATS = (100, 32), int(os.environ.get("BENCH_REPEATS", 3))


def write_one(row_group_mb: int, staging: str) -> dict:
    """Write the staged rows as one shard with row groups bounded at ``row_group_mb``."""
    import numpy as np
    import pyarrow.parquet as pq

    from pipeline import writer

    writer.MAX_ROW_GROUP_BYTES = row_group_mb << 20
    rng = np.random.default_rng(0)
    rows = []
    for i in range(ROWS):
        uri = os.path.join(staging, f"{i:05d}.bin")
        if not os.path.exists(uri):
            Path(uri).write_bytes(rng.bytes(MEDIA_BYTES))
        rows.append({"clip_id": f"{i // 13}-{i % 13}", "song_id": str(i // 13), "source": "deam",
                     "start_s": 0.0, "end_s": 10.0, "audio": {"bytes": None, "path": f"{i}.flac"},
                     "valence": 0.1, "arousal": -0.2, "valence_std": 0.0, "arousal_std": 0.0,
                     "caption": "a calm piano piece " * 8, "captioner": "descriptor/v1", "descriptors": None,
                     "license": "CC BY-NC-SA 4.0", "split": "train",
                     writer.STAGED: {"audio": (uri, MEDIA_BYTES)}})
    reset_self_peak()
    before, t0 = self_status_mb("VmRSS"), time.perf_counter()
    out = os.path.join(staging, "shard.parquet")
    writer.write_parquet(out, "music", rows)
    return {"row_group_mb": row_group_mb, "added_peak_mb": round(self_status_mb("VmHWM") - before, 1),
            "seconds": round(time.perf_counter() - t0, 3), "row_groups": pq.ParquetFile(out).num_row_groups}


def test_writer_memory_follows_the_row_group():
    with tempfile.TemporaryDirectory() as staging:
        write_one(BOUNDS_MB[0], staging)  # stage the media once, outside the measured runs
        runs: dict[int, list[dict]] = {b: [] for b in BOUNDS_MB}
        for _ in range(REPEATS):
            for bound in BOUNDS_MB:
                out = subprocess.run([sys.executable, "-m", "tests.benchmarks.bench_writer", str(bound), staging],
                                     cwd=ROOT, check=True, capture_output=True, text=True).stdout
                runs[bound].append(json.loads(out.splitlines()[-1]))
    med = {b: {k: statistics.median(r[k] for r in rs) for k in ("added_peak_mb", "seconds", "row_groups")}
           for b, rs in runs.items()}
    record = {"rows": ROWS, "media_bytes_per_row": MEDIA_BYTES, "shard_mb": round(ROWS * MEDIA_BYTES / 2**20, 1),
              "repeats": REPEATS, "runs": {str(b): rs for b, rs in runs.items()},
              "median": {str(b): m for b, m in med.items()}}
    path = write_record("writer.json", record)
    big, small = med[BOUNDS_MB[0]], med[BOUNDS_MB[1]]
    print(f"\nshard writer, {record['shard_mb']} MB shard: row groups <= {BOUNDS_MB[0]} MB add "
          f"{big['added_peak_mb']:.0f} MB peak ({big['seconds']:.2f} s), <= {BOUNDS_MB[1]} MB add "
          f"{small['added_peak_mb']:.0f} MB ({small['seconds']:.2f} s); record: {path}")
    for m, bound in ((big, BOUNDS_MB[0]), (small, BOUNDS_MB[1])):
        assert m["added_peak_mb"] < 4 * bound, "the writer holds more than a few row groups"
    assert small["added_peak_mb"] < big["added_peak_mb"]


if __name__ == "__main__":
    print(json.dumps(write_one(int(sys.argv[1]), sys.argv[2])))
