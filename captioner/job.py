"""The standalone captioning job: (re)caption the `music` table of a finished pipeline run.

    python -m captioner --input RUN_DIR --backend tags-llm [--model PATH_OR_ID]
    accelerate launch -m captioner --input RUN_DIR --backend audio-llm   # one process per GPU

Clips are split across processes with Accelerate's ``split_between_processes``; each rank
appends its results to its own ``RUN_DIR/captions/rank-NNNNN.jsonl`` (see :mod:`captioner.records`),
so a rerun skips what any earlier run, of any world size, already recorded with the same captioner
id (backend/model/prompt version; see :mod:`captioner.records`); ``--retry_rejected`` also redoes
that captioner's rejected clips. When every rank is done the main process merges that captioner's
accepted captions into the music shards, and the fallback template's for the clips it rejected
(see :mod:`captioner.merge`, :mod:`captioner.fallback`): no clip is left with an earlier
captioner's text. Its rejections replace the caption rows of the run's failures table, and
``captions/summary.json`` counts both.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import pyarrow.parquet as pq

from captioner import audit, loader
from captioner.base import CaptionerConfig, build
from captioner.fallback import Fallback
from captioner.generation import add_generation_flags, extra_from_args
from captioner.merge import merge, music_shards, record_rejections
from captioner.records import CAPTIONS_DIR, RankWriter, rank_file, read_all


@dataclass(frozen=True)
class JobResult:
    """What one process saw and did (the merge fields are filled on the main process only)."""

    world_size: int
    rank: int
    total_clips: int
    skipped: int  # already recorded by an earlier run
    captioned: int  # accepted by this process in this run
    rejected: int
    merged: bool


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m captioner", description=__doc__.split("\n\n")[0])
    p.add_argument("--input", required=True, type=Path, help="a pipeline run folder (RUN_DIR/data/music/*.parquet)")
    p.add_argument("--backend", default="tags-llm", help="captioner backend: descriptor, tags-llm, audio-llm")
    p.add_argument("--model", help="model folder, .gguf file or Hugging Face id (default: the backend's)")
    p.add_argument("--batch_size", type=int, default=8, help="clips per generate call and per fsync")
    p.add_argument("--loader_workers", type=int,
                   help="processes per rank that decode, resample and featurise clips ahead of the model "
                        "(default 2 when a GPU runs the model, 0 on a CPU-only machine)")
    add_generation_flags(p)
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.add_argument("--retry_rejected", action="store_true",
                   help="caption again the clips this backend/model rejected in an earlier run (default: keep the rejects)")
    p.add_argument("--no_merge", action="store_true", help="only record captions; leave the music shards as they are")
    p.add_argument("--stop_after", type=int, help=argparse.SUPPRESS)  # tests: a rank 'dies' after N clips
    return p.parse_args(argv)


def config_from(args: argparse.Namespace) -> CaptionerConfig:
    return CaptionerConfig(backend=args.backend, model=args.model, extra=extra_from_args(args))


def run(argv: Sequence[str] | None = None) -> JobResult:
    """Caption this process's share of the clips not yet recorded, then merge on the main process."""
    import torch
    from accelerate import PartialState
    from tqdm.auto import tqdm

    args = parse_args(argv)
    run_dir: Path = args.input
    if not music_shards(run_dir):
        raise SystemExit(f"--input {run_dir}: no music shards under data/music/ (is it a pipeline run folder?)")
    # cpu=True (gloo) on GPU-less machines, and when processes share GPUs (two per H200): else
    # Accelerate would bind rank r to cuda:r; the model still goes to the current CUDA device.
    world = int(os.environ.get("WORLD_SIZE", "1"))
    state = PartialState(cpu=torch.cuda.device_count() < world or not torch.cuda.is_available())
    captioner = build(config_from(args))  # its id keys the records
    done = read_all(run_dir, captioner.id)
    all_ids = sorted(_clip_ids(run_dir))
    todo = [c for c in all_ids if c not in done or (args.retry_rejected and done[c].text is None)]
    state.wait_for_everyone()  # every rank has read the same `done` before anyone appends
    workers = args.loader_workers if args.loader_workers is not None else 2 * torch.cuda.is_available()
    captioned = rejected = 0
    started = time.perf_counter()
    with state.split_between_processes(todo) as mine:
        writer = RankWriter(rank_file(run_dir, state.process_index))
        bar = tqdm(total=len(mine), desc=f"captions (rank 0 of {state.num_processes})",
                   disable=args.no_progress or not state.is_main_process)
        try:
            budget = args.stop_after if args.stop_after is not None else len(mine)
            for batch in loader.batches(music_shards(run_dir), set(mine[:budget]), captioner, args.batch_size,
                                        workers):
                results = batch.failed + (captioner.caption(batch.clips) if batch.clips else [])
                writer.write(results)
                captioned += sum(r.text is not None for r in results)
                rejected += sum(r.text is None for r in results)
                bar.update(len(batch))
        finally:
            writer.close()
            bar.close()
    if args.stop_after is not None:  # simulate a crash: no barrier, no merge
        return JobResult(state.num_processes, state.process_index, len(all_ids), len(all_ids) - len(todo),
                         captioned, rejected, False)
    from accelerate.utils import gather_object

    # The slowest rank's captioning time (model loading excluded): what throughput figures divide by.
    seconds = max(gather_object([time.perf_counter() - started]))
    merged = False
    if state.is_main_process:
        merged = _finish(run_dir, all_ids, args, state.num_processes, captioner.id, seconds)
    state.wait_for_everyone()
    return JobResult(state.num_processes, state.process_index, len(all_ids), len(all_ids) - len(todo),
                     captioned, rejected, merged)


def _finish(run_dir: Path, all_ids: list[str], args: argparse.Namespace, world_size: int, captioner_id: str,
            seconds: float) -> bool:
    records = read_all(run_dir, captioner_id)
    missing = sorted(set(all_ids) - set(records))
    if missing:  # a rank failed without raising; never merge a partial set
        raise RuntimeError(f"{len(missing)} clips have no caption record, e.g. {missing[:5]}; rerun to finish")
    stats = merge(run_dir, records, Fallback(config_from(args))) if not args.no_merge else None
    failure_rows = record_rejections(run_dir, records) if stats is not None else None
    rejects = {k: {"error_type": r.error_type, "message": r.message, "attempts": r.attempts}
               for k, r in sorted(records.items()) if r.text is None}
    summary = {"world_size": world_size, "clips": len(all_ids), "accepted": len(all_ids) - len(rejects),
               "rejected": len(rejects), "rejects": rejects, "backend": args.backend,
               "captioner": captioner_id, "caption_seconds": round(seconds, 3),
               "merged_rows": stats.replaced if stats else 0, "shards": stats.shards if stats else 0,
               # rejected clips captioned by the template; the rest keep the caption they had
               "fallback": stats.fallback if stats else 0,
               "fallback_by_reason": stats.fallback_by_reason if stats else {},
               "kept_previous_caption": len(rejects) - stats.fallback if stats else len(rejects),
               "failure_rows_written": failure_rows}  # None: not merged, or the run has no failures table
    (run_dir / CAPTIONS_DIR / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    if stats is not None:  # the captions changed: the card's caption audit must follow
        audit.write(audit.audit(run_dir), run_dir)
    return stats is not None


def _clip_ids(run_dir: Path) -> Iterator[str]:
    for path in music_shards(run_dir):
        yield from pq.read_table(path, columns=["clip_id"]).column("clip_id").to_pylist()
