"""Benchmark: the pipeline over a reduced-size rehearsal of IMEMNet-C's real inputs.

``python -m pipeline.rehearsal`` writes a DEAM folder, images and matching files of the real shape
(``--fraction`` of DEAM's 1,802 songs and of image_va.csv's 24,744 ids); the pipeline then runs
the README's real-data command over it with the descriptor captioner and 2 worker processes.
Preparation is timed apart. Recorded: wall time, rows per table and split, pairs by split-policy
outcome, failures by reason, peak RSS summed over all processes, peak disk of the folder.

``make bench`` runs it at BENCH_REHEARSAL_FRACTION (default 0.05: a few minutes). The same code
measures any size from the command line (the full size is ``--fraction 1``)::

    python -m tests.benchmarks.bench_rehearsal --fraction 0.1 --out /tmp/rehearsal-10
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from tests.benchmarks.procmon import measure
from tests.benchmarks.records import write_record

ROOT = Path(__file__).resolve().parents[2]
FRACTION = float(os.environ.get("BENCH_REHEARSAL_FRACTION", 0.05))
WORKERS = ("--direct_num_workers=2", "--direct_running_mode=multi_processing")


def rehearse(out: Path, fraction: float, workers: tuple[str, ...] = WORKERS) -> dict:
    """Prepare the rehearsal in ``out``, run the pipeline over it, and return the record."""
    from pipeline.rehearsal.__main__ import pipeline_command

    prep = measure([sys.executable, "-m", "pipeline.rehearsal", "--out", str(out), "--fraction", str(fraction)],
                   cwd=ROOT, watch=[out], log=out.parent / f"{out.name}-prepare.log")
    assert prep.returncode == 0, (out.parent / f"{out.name}-prepare.log").read_text()[-2000:]
    rehearsal = json.loads((out / "rehearsal.json").read_text())
    cmd = pipeline_command(out, ("--no_progress", "--cache_dir", str(out / "cache"), *workers))
    log = out / "pipeline.log"
    run = measure(cmd, cwd=ROOT, watch=[out], log=log)
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.benchmarks.bench_rehearsal", description=__doc__.split("\n")[0])
    p.add_argument("--fraction", type=float, default=FRACTION, help="share of the full size (1 = full)")
    p.add_argument("--out", required=True, help="folder for the rehearsal and its run (replaced)")
    p.add_argument("--workers", type=int, default=2, help="DirectRunner worker processes (default 2)")
    p.add_argument("--record", default=None, help="also write runs/bench/<RECORD> (e.g. rehearsal-100.json)")
    a = p.parse_args(argv)
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    workers = (f"--direct_num_workers={a.workers}", "--direct_running_mode=multi_processing")
    record = rehearse(out, a.fraction, workers)
    (out / "bench.json").write_text(json.dumps(record, indent=2) + "\n")
    if a.record:
        write_record(a.record, record)
    _print(record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
