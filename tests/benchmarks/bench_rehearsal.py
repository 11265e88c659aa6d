"""Benchmark: the pipeline over a reduced-size rehearsal of IMEMNet-C's real inputs.

``python -m pipeline.rehearsal`` writes a DEAM folder, images and matching files of the real shape
(``--fraction`` of DEAM's 1,802 songs and of image_va.csv's 24,744 ids); the pipeline then runs
the README's real-data command over it with the descriptor captioner and 2 worker processes.
Preparation is timed apart. Recorded: wall time, rows per table and split, pairs by split-policy
outcome, failures by reason, peak RSS summed over all processes, peak disk of the folder.

``make bench`` runs it at BENCH_REHEARSAL_FRACTION (default 0.05: a few minutes). The same code
measures any size from the command line (the full size is ``--fraction 1``)::

    python -m tests.benchmarks.bench_rehearsal --fraction 0.1 --out /tmp/rehearsal-10

Two ``--workers`` values run one size with each, back to back, and compare the wall times (target:
2 workers at least 1.9x faster than 1, at a size where start-up is small: ``make bench`` runs it at
BENCH_SCALING_FRACTION, default 0.3, about 45 minutes on 2 cores; 0 skips it)::

    python -m tests.benchmarks.bench_rehearsal --fraction 0.3 --workers 2 --workers 1 --out /tmp/reh30 \
        --record rehearsal-scaling.json

Several ``--fraction`` flags compare peak memory across sizes (target: the largest at most 1.3x the
smallest, all under 8 GB)::

    python -m tests.benchmarks.bench_rehearsal --fraction 0.1 --fraction 0.3 --fraction 1 --out /tmp/rehearsal \\
        --record rehearsal-memory.json
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from tests.benchmarks.procmon import measure
from tests.benchmarks.records import write_record

ROOT = Path(__file__).resolve().parents[2]
FRACTION = float(os.environ.get("BENCH_REHEARSAL_FRACTION", 0.05))
SCALING_FRACTION = float(os.environ.get("BENCH_SCALING_FRACTION", 0.3))
SCALING_TARGET = {"two_vs_one": (">=", 1.9)}
WORKERS = ("--direct_num_workers=2", "--direct_running_mode=multi_processing")


def one_thread_env() -> dict[str, str]:
    """The environment with one thread per numerical library: 2 vs 1 workers compares processes,
    not a lone worker's extra library threads (as ``make bench`` sets it, whoever runs this)."""
    from tests.benchmarks.bench_pipeline import ONE_THREAD

    return {**os.environ, **ONE_THREAD}


def rehearse(out: Path, fraction: float, workers: tuple[str, ...] = WORKERS, env: dict | None = None) -> dict:
    """Prepare the rehearsal in ``out``, run the pipeline over it (in ``env``), and return the record."""
    from pipeline.rehearsal.__main__ import pipeline_command

    prep = measure([sys.executable, "-m", "pipeline.rehearsal", "--out", str(out), "--fraction", str(fraction)],
                   cwd=ROOT, watch=[out], log=out.parent / f"{out.name}-prepare.log")
    assert prep.returncode == 0, (out.parent / f"{out.name}-prepare.log").read_text()[-2000:]
    rehearsal = json.loads((out / "rehearsal.json").read_text())
    cmd = pipeline_command(out, ("--no_progress", "--cache_dir", str(out / "cache"), *workers))
    log = out / "pipeline.log"
    run = measure(cmd, cwd=ROOT, env=env, watch=[out], log=log)
    assert run.returncode == 0, log.read_text()[-3000:]
    summary = json.loads((out / "run" / "run.json").read_text())
    policy = summary.get("split_policy", {})
    return {
        "fraction": fraction, "origin": rehearsal["origin"], "inputs": rehearsal["counts"],
        "prepare": {"seconds": rehearsal["prepare_seconds"], **prep.as_dict()},
        "pipeline": run.as_dict(), "pipeline_flags": list(workers) + ["--captioner", "descriptor"],
        "listed": summary["listed"], "rows": summary["rows"],
        "pairs_by_policy": policy.get("pairs", {}), "songs_by_policy": policy.get("songs", {}),
        "images_by_policy": policy.get("images", {}),
        "failures_by_reason": summary["failures_by_reason"], "songs_phase_s": summary.get("songs_phase_s"),
        "library_threads": (env or os.environ).get("OMP_NUM_THREADS"),  # None: the workers' own share of the cores
    }


def _print(record: dict) -> None:
    p, q = record["pipeline"], record["prepare"]
    print(f"\nrehearsal at {100 * record['fraction']:g}% ({record['origin']}): prepared in {q['wall_s']} s; "
          f"pipeline {p['wall_s']} s, peak RSS {p['peak_rss_gb']} GB over up to {p['peak_processes']} processes, "
          f"peak disk {p['peak_disk_gb']} GB")
    for table, splits in sorted(record["rows"].items()):
        print(f"  {table:7s} " + ", ".join(f"{k} {v}" for k, v in sorted(splits.items())))
    print("  pairs by policy: " + json.dumps(record["pairs_by_policy"]))
    print("  failures: " + json.dumps(record["failures_by_reason"]))


def test_rehearsal_reduced_size():
    with tempfile.TemporaryDirectory() as base:
        record = rehearse(Path(base) / "rehearsal", FRACTION)
    write_record("rehearsal.json", record)
    _print(record)
    assert sum(record["rows"]["music"].values()) > 0 and sum(record["rows"]["pairs"].values()) > 0
    assert not {"train"} & set(record["rows"]["pairs"])  # IMEMNet's files hold test and validation pairs only


def workers_flags(n: int) -> tuple[str, ...]:
    return (f"--direct_num_workers={n}", "--direct_running_mode=multi_processing")


def worker_scaling(two: dict, one: dict) -> dict:
    """2 vs 1 worker processes on the same rehearsal: wall and songs-phase ratios, and the target."""
    from tests.benchmarks.bench_pipeline import targets

    out = {"fraction": two["fraction"], "music_rows": sum(two["rows"]["music"].values()),
           "wall_s": {"2": two["pipeline"]["wall_s"], "1": one["pipeline"]["wall_s"]},
           "songs_phase_s": {"2": two["songs_phase_s"], "1": one["songs_phase_s"]},
           "peak_rss_gb": {"2": two["pipeline"]["peak_rss_gb"], "1": one["pipeline"]["peak_rss_gb"]},
           "two_vs_one": round(one["pipeline"]["wall_s"] / two["pipeline"]["wall_s"], 3),
           "library_threads": {"2": two.get("library_threads"), "1": one.get("library_threads")}}
    if two["songs_phase_s"] and one["songs_phase_s"]:
        out["songs_phase_two_vs_one"] = round(one["songs_phase_s"] / two["songs_phase_s"], 3)
    out["targets"] = targets(out, SCALING_TARGET)
    return out


def _print_scaling(s: dict) -> None:
    t = s["targets"]["two_vs_one"]
    print(f"\n2 vs 1 workers at {_size(s['fraction'])}: {s['wall_s']['1']} / {s['wall_s']['2']} s = "
          f"{s['two_vs_one']}x (songs phase {s.get('songs_phase_two_vs_one')}x); target >= {t['target']}: "
          f"{'met' if t['met'] else 'NOT met'}")


@pytest.mark.skipif(SCALING_FRACTION <= 0, reason="BENCH_SCALING_FRACTION=0")
def test_rehearsal_two_vs_one_workers():
    with tempfile.TemporaryDirectory() as base:
        runs = [rehearse(Path(base) / f"w{n}", SCALING_FRACTION, workers_flags(n), one_thread_env()) for n in (2, 1)]
    record = worker_scaling(*runs)
    write_record("rehearsal-scaling.json", record)
    _print_scaling(record)
    assert record["two_vs_one"] > 1.0, record  # a floor; the 1.9 target is recorded as met or not


MEMORY_TARGET = {"largest_vs_smallest": ("<=", 1.3), "largest_peak_gb": ("<=", 8.0)}


def _size(fraction: float) -> str:
    return f"{100 * fraction:g}%"


def memory_scaling(records: dict[float, dict]) -> dict:
    """Peak RSS (all processes) at each size, the largest over the smallest, and the targets."""
    from tests.benchmarks.bench_pipeline import targets

    def per_size(value) -> dict:
        return {_size(f): value(r) for f, r in records.items()}

    peaks = per_size(lambda r: r["pipeline"]["peak_rss_gb"])
    out = {"peak_rss_gb": peaks, "rss_at_peak_gb": per_size(lambda r: r["pipeline"].get("rss_at_peak_gb")),
           "wall_s": per_size(lambda r: r["pipeline"]["wall_s"]), "songs": per_size(lambda r: r["listed"]["songs"]),
           "largest_vs_smallest": max(peaks.values()) / min(peaks.values()), "largest_peak_gb": max(peaks.values())}
    out["targets"] = targets(out, MEMORY_TARGET)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.benchmarks.bench_rehearsal", description=__doc__.split("\n")[0])
    p.add_argument("--fraction", type=float, action="append", default=None,
                   help=f"share of the full size (1 = full; default {FRACTION}); repeat it to compare the "
                        "peak memory of several sizes (each its own folder OUT-<percent>)")
    p.add_argument("--out", required=True, help="folder for the rehearsal and its run (replaced)")
    p.add_argument("--workers", type=int, action="append", default=None,
                   help="DirectRunner worker processes (default 2); give 2 and 1 to compare them on one size")
    p.add_argument("--record", default=None, help="also write runs/bench/<RECORD> (e.g. rehearsal-100.json)")
    a = p.parse_args(argv)
    fractions = a.fraction or [FRACTION]
    if a.workers and len(a.workers) == 2:
        if len(fractions) != 1:
            p.error("compare worker counts on one --fraction")
        runs = []
        for n in a.workers:
            out = Path(f"{a.out}-w{n}")
            shutil.rmtree(out, ignore_errors=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            runs.append(rehearse(out, fractions[0], workers_flags(n), one_thread_env()))
            (out / "bench.json").write_text(json.dumps(runs[-1], indent=2) + "\n")
            _print(runs[-1])
        by_count = dict(zip(a.workers, runs))
        record = worker_scaling(by_count[max(a.workers)], by_count[min(a.workers)])
        _print_scaling(record)
        if a.record:
            write_record(a.record, record)
        return 0
    workers = workers_flags((a.workers or [2])[0])
    records = {}
    for fraction in fractions:
        out = Path(a.out if len(fractions) == 1 else f"{a.out}-{100 * fraction:g}")  # OUT-<percent>
        shutil.rmtree(out, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        records[fraction] = rehearse(out, fraction, workers)
        (out / "bench.json").write_text(json.dumps(records[fraction], indent=2) + "\n")
        _print(records[fraction])
    if len(fractions) == 1:
        record = records[fractions[0]]
    else:
        record = {"runs": {_size(f): r for f, r in records.items()}, "memory": memory_scaling(records)}
        m = record["memory"]
        print("\npeak RSS over all processes: " + ", ".join(f"{k} {v} GB" for k, v in m["peak_rss_gb"].items()))
        for name, t in m["targets"].items():
            print(f"  target {name} {t['op']} {t['target']}: {t['value']:.2f} -> {'met' if t['met'] else 'NOT met'}")
    if a.record:
        write_record(a.record, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
