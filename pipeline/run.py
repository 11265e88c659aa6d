"""``python -m pipeline.run``: build IMEMNet-C with Apache Beam and print what happened."""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from contextlib import nullcontext
from dataclasses import asdict

from pipeline.beam_import import beam  # Beam without its harmless apitools warning
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from captioner.base import CaptionerConfig
from captioner.cores import usable_cores
from captioner.generation import extra_from_args
from pipeline import graph, inputs, progress, summary
from pipeline.beam_options import beam_options, static_workers
from pipeline.download import DownloadOptions
from pipeline.inputs import InputSpec, Listed, input_specs
from pipeline.local_runner import local_runner, uses_worker_processes
from pipeline.memory import keep_returning_freed_memory
from pipeline.options import audio_format, build_parser
from pipeline.progress import ProgressBars
from pipeline.song import CutOptions
from pipeline.tagging import tagger_models
from pipeline.sources.base import SourceItems
from pipeline.writer import STAGING_DIR, dataset_readme, join, write_atomic

log = logging.getLogger("pipeline")


class InputError(ValueError):
    """An input file or flag that cannot be used at all (as opposed to a bad row or item)."""


def check_inputs(opts: argparse.Namespace) -> tuple[list[InputSpec], Listed]:
    """The run's input specs, each listed once here: an unusable input stops the run (InputError)."""
    specs = input_specs(opts)
    try:
        return specs, inputs.check_inputs(specs)
    except (ValueError, OSError) as e:
        raise InputError(str(e)) from e


def collect_items(opts: argparse.Namespace) -> SourceItems:
    """Every item of every input, in this process (for scripts and tools; the pipeline's workers
    read the inputs themselves)."""
    items = SourceItems()
    try:
        for spec in input_specs(opts):
            items.extend(spec.read())
    except (ValueError, OSError) as e:
        raise InputError(str(e)) from e
    return items


def _caption_piles(opts: argparse.Namespace, po: PipelineOptions | None) -> int | None:
    """GraphConfig.caption_piles: 0 (no balancing) when told so or when one worker does everything."""
    if not opts.caption_balance:
        return 0
    workers = static_workers(po) if po is not None else None
    return 0 if workers == 1 else workers


def graph_config(opts: argparse.Namespace, progress_dir: str | None,
                 po: PipelineOptions | None = None) -> graph.GraphConfig:
    """The picklable settings the workers need, from the parsed flags (InputError for flags that
    do not fit together); ``po``, the run's Beam options, tells how caption batches are balanced."""
    try:
        audio = audio_format(opts).resolved(opts.sample_rate)
        taggers = tagger_models(opts.tagger)
    except ValueError as e:
        raise InputError(str(e)) from e
    return graph.GraphConfig(
        output=opts.output,
        cut=CutOptions(opts.sample_rate, opts.clip_seconds, opts.hop_seconds, opts.annotated_only,
                       opts.max_song_seconds, taggers=taggers),
        download=DownloadOptions(
            cache_dir=os.path.abspath(os.path.join(opts.cache_dir, "downloads")),
            timeout_s=opts.download_timeout, retries=opts.download_retries, backoff_s=opts.retry_backoff,
            max_per_host=opts.max_per_host, min_interval_per_host_s=opts.min_interval_per_host,
            cookies_file=opts.cookies,
        ),
        captioner=CaptionerConfig(backend=opts.captioner, model=opts.caption_model,
                                  extra=extra_from_args(opts, prefix="caption_")),
        caption_batch_size=opts.caption_batch_size,
        caption_large_model=opts.caption_large_model,
        caption_model_copies=opts.caption_model_copies,
        caption_piles=_caption_piles(opts, po),
        pairs_per_clip=opts.pairs_per_clip,
        seed=opts.seed,
        max_shard_bytes=opts.max_shard_mb << 20,
        progress_dir=progress_dir,
        audio=audio,
    )


def execute(po: PipelineOptions, specs: list[InputSpec], listed: Listed, cfg: graph.GraphConfig,
            show_progress: bool):
    """Run the graph to completion; returns the Beam result."""
    runner = local_runner(po) if uses_worker_processes(po) else None
    p = beam.Pipeline(runner=runner, options=po)
    graph.build(p, specs, cfg)
    totals = {"songs": listed.songs, "images": listed.images}
    bars = ProgressBars(cfg.progress_dir, totals) if show_progress and cfg.progress_dir else nullcontext()
    with bars:
        result = p.run()
        try:
            result.wait_until_finish()
        finally:
            _close_client(result)
    return result


def _close_client(result) -> None:
    """Close the ``distributed.Client`` DaskRunner opens and never closes (other runners have none).

    Left open, it keeps reconnecting once its cluster is gone and logs a ``CancelledError``
    traceback at interpreter exit, which reads like a failed run.
    """
    if type(result).__module__.startswith("apache_beam.runners.dask"):
        result.client.close()


def finalize(output: str) -> dict:
    """Drop what earlier or killed runs left (stale shards, temp files, staged media); write the README."""
    with FileSystems.open(join(output, graph.MANIFEST)) as fh:
        manifest = json.loads(fh.read())
    keep = {join(output, s["path"]) for s in manifest["shards"]}
    found = FileSystems.match([join(output, "data/*/*.parquet")])[0].metadata_list
    debris = [m.path for m in found if m.path not in keep]
    for pattern in ("*.tmp-*", "data/*/*.tmp-*", "failures/*.tmp-*"):
        debris += [m.path for m in FileSystems.match([join(output, pattern)])[0].metadata_list]
    # Staged media are matched file by file: on object stores (gs://, s3://) a prefix is not an
    # object, so "exists" is False for it and deleting it deletes nothing.
    debris += [m.path for m in FileSystems.match([join(output, f"{STAGING_DIR}/*/*")])[0].metadata_list]
    if debris:
        FileSystems.delete(debris)
    staging = join(output, STAGING_DIR)
    if FileSystems.exists(staging):  # the emptied folder, where there are folders
        FileSystems.delete([staging])
    shards = [summary.shard_from_dict(s) for s in manifest["shards"]]
    write_atomic(join(output, "README.md"), dataset_readme(shards).encode())
    return manifest


def run(argv: list[str] | None = None) -> summary.RunSummary:
    """Parse flags, run the pipeline, write README.md and run.json, return the summary."""
    opts, beam_args = build_parser().parse_known_args(argv)
    t0 = time.time()
    keep_returning_freed_memory()  # DirectRunner's launcher holds and frees every shuffled element
    specs, listed = check_inputs(opts)
    log.info("listed %d songs, %d images, %d pairs, %d rejected rows",
             listed.songs, listed.images, listed.pairs, listed.rejected_rows)
    po = beam_options(beam_args, all_cores=True)
    local = FileSystems.get_scheme(opts.output) is None
    progress_dir = os.path.join(tempfile.gettempdir(), f"imemnet-progress-{uuid.uuid4().hex}") if local else None
    cfg = graph_config(opts, progress_dir, po)
    try:
        with progress.library_bars_off() if opts.no_progress else nullcontext():  # the caption model's too
            result = execute(po, specs, listed, cfg, show_progress=not opts.no_progress and local)
        songs_phase = progress.span_s(progress_dir, "songs")
    finally:
        if progress_dir:
            shutil.rmtree(progress_dir, ignore_errors=True)  # markers only; nothing else lives there
    manifest = finalize(opts.output)
    s = summary.build_summary(opts, po, listed, manifest, result, time.time() - t0, songs_phase)
    write_atomic(join(opts.output, "run.json"), json.dumps(asdict(s), indent=2, default=str).encode())
    if local:
        write_caption_audit(opts.output, static_workers(po) or usable_cores())
    return s


def write_caption_audit(output: str, processes: int = 1) -> None:
    """caption_audit.json/.md beside run.json (the dataset card shows it), over as many processes
    as the run had workers; a run without music shards has nothing to audit, which is logged, not
    raised."""
    from captioner import audit

    try:
        audit.write(audit.audit(output, processes), output)
    except FileNotFoundError as e:
        log.warning("no caption audit: %s", e)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run and print the summary."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("apache_beam", "root"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        s = run(argv)
    except InputError as e:  # a whole input unusable: say what, without a traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summary.render(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
