"""``python -m mmva_model.cache``: fill the frozen-feature cache before training or evaluation.

    python -m mmva_model.cache --data runs/rehearsal/run            # offline config, every split

Computes what ``train.py`` and ``python -m mmva_model.evaluate`` would (same cache keys, so they
then start at once), split by split and table by table, with a progress bar per table (rate and
time left). Interrupted, it resumes where it stopped (:mod:`mmva_model.feature_cache`). Nothing is
read back into memory: peak memory is the batches in flight, whatever the dataset's size.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from dataset_card.schema import IMAGES, MUSIC, SPLITS
from mmva_model.config import ConfigError, load_config
from mmva_model.data import DEFAULT_DATA, DataError, load_split
from mmva_model.encoders.weights import remote_code_allowed
from mmva_model.features import DEFAULT_CACHE, build_cache, table_encoders, warm_up
from mmva_model.model import MMVA
from mmva_model.progress import hf_progress


@dataclass
class TableTiming:
    """One table split's caching pass: rows, wall seconds, CPU seconds of this process and its workers
    (``split`` "setup": building the model and the one-time set-ups every pass shares)."""

    split: str
    table: str
    rows: int
    seconds: float
    cpu_seconds: float


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mmva_model.cache", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DEFAULT_DATA,
                   help="IMEMNet-C: a pipeline run folder, a built dataset folder or a Hub id (default: runs/demo)")
    p.add_argument("--config", default="offline",
                   help="shipped config name, YAML file or checkpoint folder whose encoders to run (default: offline)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, as train.py does")
    p.add_argument("--splits", nargs="+", default=list(SPLITS), choices=list(SPLITS),
                   help="splits to cache (default: all)")
    p.add_argument("--tables", nargs="+", default=[MUSIC, IMAGES], choices=[MUSIC, IMAGES],
                   help="tables to cache (default: both; music includes the captions)")
    p.add_argument("--cache_dir", default=DEFAULT_CACHE, help=f"feature cache (default: {DEFAULT_CACHE})")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes computing features (default: every core this process may use; 0: this process)")
    p.add_argument("--device", default="cpu", help="torch device of the frozen backbones (default: cpu)")
    p.add_argument("--hf_cache_dir", default=None, help="datasets cache for a Hub dataset's Arrow copy")
    p.add_argument("--timings", default=None, metavar="FILE", help="write each table's timing here as JSON")
    p.add_argument("--no_progress", action="store_true", help="no progress bars")
    p.add_argument("--trust_remote_code", action="store_true",
                   help="run model code shipped with encoder weights when the config asks for it (as train.py)")
    return p


def _cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (the DataLoader workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run(argv: list[str] | None = None) -> list[TableTiming]:
    """Cache as the command line would; the set-up's timing, then each table split's."""
    args = build_parser().parse_args(argv)
    device = torch.device(args.device)
    t0, c0 = time.perf_counter(), _cpu_seconds()
    with remote_code_allowed(args.trust_remote_code), hf_progress(not args.no_progress):
        model = MMVA(load_config(args.config, args.overrides)).to(device)
    splits = {split: load_split(args.data, split, args.hf_cache_dir) for split in args.splits}
    first = splits[args.splits[0]]
    for table in args.tables:  # imports and set-ups once, so each pass's timing is its own work
        warm_up(first.music if table == MUSIC else first.images, table_encoders(model, table), device)
    timings = [TableTiming("setup", "+".join(args.tables), 0, time.perf_counter() - t0, _cpu_seconds() - c0)]
    for split, data in splits.items():
        for table in args.tables:
            rows = data.music if table == MUSIC else data.images
            t0, c0 = time.perf_counter(), _cpu_seconds()
            build_cache(rows, table_encoders(model, table), cache_dir=args.cache_dir, workers=args.workers,
                        device=device, progress=not args.no_progress, load=False)
            timings.append(TableTiming(split, table, len(rows), time.perf_counter() - t0, _cpu_seconds() - c0))
    if args.timings:
        Path(args.timings).write_text(json.dumps([asdict(t) for t in timings], indent=2) + "\n")
    return timings


def main(argv: list[str] | None = None) -> int:
    try:
        timings = run(argv)
    except (DataError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    setup, *passes = timings
    print(f"set-up (model, imports): {setup.seconds:.1f} s")
    for t in passes:
        print(f"{t.split}/{t.table}: {t.rows} rows in {t.seconds:.1f} s ({t.rows / max(t.seconds, 1e-9):.1f} rows/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
