"""The Beam graph: sources' items in, shard files and a failures file out."""
from __future__ import annotations

import json
from dataclasses import dataclass, replace

from pipeline.beam_import import beam  # Beam without its harmless apitools warning
from apache_beam.ml.inference.base import RunInference

from captioner.base import CaptionerConfig, needs_audio
from captioner.beam import CaptionModelHandler
from pipeline import splits, stages
from pipeline.download import DownloadOptions
from pipeline.song import CutOptions
from pipeline.sources.base import SourceItems
from pipeline.sources.pairs import score_pairs_from_va
from pipeline.types import Failure, PairTask
from pipeline.writer import WriteFailures, WriteTables, gather, join, split_by, write_atomic

MANIFEST = "_manifest.json"  # written last by the pipeline: which shards this run produced


@dataclass(frozen=True)
class GraphConfig:
    """Everything the workers need, picklable."""

    output: str
    cut: CutOptions
    download: DownloadOptions
    captioner: CaptionerConfig
    caption_batch_size: int
    caption_large_model: bool
    caption_model_copies: int | None
    pairs_per_clip: int
    seed: int
    max_shard_bytes: int
    progress_dir: str | None


def build(p: beam.Pipeline, items: SourceItems, cfg: GraphConfig) -> None:
    """Add the whole IMEMNet-C graph to ``p``."""
    placed = _placements(p | "GivenPairs" >> beam.Create(items.pairs)) if items.pairs else None
    songs = _with_split(p | "Songs" >> beam.Create(items.songs), placed, splits.SONG, "song_id", "Song")
    song_failures, clips = split_by(
        songs
        | "Cut" >> beam.ParDo(stages.SongsToClips(cfg.cut, cfg.download, cfg.progress_dir, cfg.output,
                                                 keep_audio=needs_audio(cfg.captioner))),
        is_failure, "CutOut")
    batches, given = split_by(
        clips | "CaptionBatches" >> beam.FlatMap(stages.caption_batches, cfg.caption_batch_size),
        lambda x: isinstance(x, list), "CaptionIn")
    handler = CaptionModelHandler(cfg.captioner, batch_size=cfg.caption_batch_size,
                                  large_model=cfg.caption_large_model, model_copies=cfg.caption_model_copies)
    # Batches are made per song above: RunInference's own BatchElements loses its last batch on
    # DaskRunner (finish_bundle output is dropped there).
    caption_failures, llm_captioned = split_by(
        batches
        | "Caption" >> RunInference(handler.with_no_batching())
        | "ApplyCaption" >> beam.ParDo(stages.ApplyCaption()),
        is_failure, "CaptionOut")
    captioned = (given, llm_captioned) | "Captioned" >> beam.Flatten()
    music = captioned | "MusicRow" >> beam.Map(stages.music_row, cfg.output)
    images = _with_split(p | "Images" >> beam.Create(items.images), placed, splits.IMAGE, "image_id", "Image")
    image_failures, image_rows = split_by(
        images
        | "Image" >> beam.ParDo(stages.ImagesToRows(cfg.download, cfg.output, cfg.progress_dir)),
        is_failure, "ImageOut")
    pairs, pair_failures, outcomes = _pairs(p, items.pairs, music, image_rows, cfg)
    rows = (music, image_rows, pairs) | "AllRows" >> beam.Flatten()
    shards = rows | "Write" >> WriteTables(cfg.output, cfg.max_shard_bytes)
    failures = (
        p | "SourceFailures" >> beam.Create(items.failures),
        song_failures, caption_failures, image_failures, pair_failures,
    ) | "AllFailures" >> beam.Flatten()
    n_failures = failures | "WriteFailures" >> WriteFailures(cfg.output)
    seconds = music | "ClipSeconds" >> beam.Map(lambda tr: float(tr[1]["end_s"] - tr[1]["start_s"]))
    facts = (
        shards | "TagShards" >> beam.Map(lambda s: ("shard", s)),
        seconds | "TagSeconds" >> beam.Map(lambda x: ("seconds", x)),
        n_failures | "TagFailures" >> beam.Map(lambda n: ("failures", n)),
        _policy_counts(placed, outcomes) | "TagPolicy" >> beam.Map(lambda kv: ("policy", kv)),
    ) | "AllFacts" >> beam.Flatten()
    gather(facts, "Facts") | "Manifest" >> beam.Map(_write_manifest, cfg.output)


def is_failure(x) -> bool:
    return isinstance(x, Failure)


def _write_manifest(facts, output):
    """The run's own record of what it wrote; the launcher reads it to clean up and summarise."""
    shards = [v for k, v in facts if k == "shard"]
    body = {
        "shards": sorted((s.__dict__ for s in shards), key=lambda d: d["path"]),
        "clip_audio_seconds": round(sum(v for k, v in facts if k == "seconds"), 3),
        "failures": sum(v for k, v in facts if k == "failures"),
        "split_policy": dict(sorted(v for k, v in facts if k == "policy")),
    }
    write_atomic(join(output, MANIFEST), json.dumps(body, indent=1).encode())


def _placements(given):
    """Rule 1 of :mod:`pipeline.splits`: the split of every song and image a matching file names."""
    return (given
            | "PairRefs" >> beam.FlatMap(splits.references)
            | "GroupRefs" >> beam.GroupByKey()
            | "Place" >> beam.MapTuple(splits.place))


def _with_split(tasks, placed, kind: str, id_attr: str, label: str):
    """Song or image tasks with the split the policy placed them in (unchanged without matching files).

    A join by key (not a side input: side inputs behave differently on DaskRunner).
    """
    if placed is None:
        return tasks
    keyed = tasks | f"{label}Key" >> beam.Map(lambda t: (splits.ref_key(kind, getattr(t, id_attr)), t))
    refs = placed | f"{label}Refs" >> beam.Filter(lambda pl: pl.key.startswith(kind + ":")) \
        | f"{label}RefKey" >> beam.Map(lambda pl: (pl.key, pl.split))
    return ({"task": keyed, "split": refs}
            | f"{label}Join" >> beam.CoGroupByKey()
            | f"{label}Placed" >> beam.FlatMap(_placed_tasks))


def _placed_tasks(kv):
    _, joined = kv
    split = next(iter(joined["split"]), None)
    for task in joined["task"]:
        yield replace(task, split=split) if split else task


def _policy_counts(placed, outcomes):
    """``(label, n)`` per split-policy outcome: placements of songs/images and pair outcomes."""
    labels = [outcomes | "OutcomeLabel" >> beam.Map(lambda o: o.label)]
    if placed is not None:
        labels.append(placed | "PlacedLabel" >> beam.Map(lambda pl: pl.label))
    return (tuple(labels)
            | "PolicyLabels" >> beam.Flatten()
            | "PolicyKey" >> beam.Map(lambda label: (label, 1))
            | "PolicyGroup" >> beam.GroupByKey()
            | "PolicyCount" >> beam.MapTuple(lambda label, ones: (label, sum(ones))))


def _pairs(p, given: list[PairTask], music, image_rows, cfg: GraphConfig):
    """Pairs from matching files (split policy applied, checked against the written ids), else scored
    from VA. Returns (pair rows, pair failures, every pair's :class:`~pipeline.splits.PairOutcome`).

    Only ids, splits and VA meet in one place: small even for the full IMEMNet-C.
    """
    info = lambda kind, key: lambda tr: (kind, tr[1][key], tr[1]["split"], tr[1]["valence"], tr[1]["arousal"])  # noqa: E731
    known = (
        music | "ClipInfo" >> beam.Map(info("clip", "clip_id")),
        image_rows | "ImageInfo" >> beam.Map(info("image", "image_id")),
    ) | "AllInfo" >> beam.Flatten()
    if given:
        outcomes = gather(known, "Known") | "CheckPairs" >> beam.FlatMap(_check_pairs, given)
    elif cfg.pairs_per_clip > 0:
        per_clip, seed = cfg.pairs_per_clip, cfg.seed
        outcomes = gather(known, "Known") | "ScorePairs" >> beam.FlatMap(
            lambda xs: [splits.PairOutcome(f"pairs/scored/{pair.split}", pair) for pair in score_pairs_from_va(
                [x[1:] for x in xs if x[0] == "clip"], [x[1:] for x in xs if x[0] == "image"], per_clip, seed)])
    else:
        outcomes = p | "NoPairs" >> beam.Create([])
    failures = outcomes | "PairFailures" >> beam.FlatMap(lambda o: [o.failure] if o.failure else [])
    kept = outcomes | "PairKept" >> beam.FlatMap(lambda o: [o.pair] if o.pair else [])
    return kept | "PairRow" >> beam.Map(stages.pair_row), failures, outcomes


def _check_pairs(known, given: list[PairTask]):
    clip_split = {x[1]: x[2] for x in known if x[0] == "clip"}
    image_split = {x[1]: x[2] for x in known if x[0] == "image"}
    yield from splits.resolve_pairs(given, clip_split, image_split)
