"""The Beam graph: sources' items in, shard files and a failures file out."""
from __future__ import annotations

import json
from dataclasses import dataclass, replace

from pipeline.beam_import import beam  # Beam without its harmless apitools warning

from captioner.base import CaptionerConfig, needs_audio, needs_model
from dataset_card.codecs import AudioFormat
from pipeline import splits, stages
from pipeline.download import DownloadOptions
from pipeline.inputs import InputSpec, read_inputs
from pipeline.song import CutOptions
from pipeline.sources.pairs import check_pair, score_pairs_from_va
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
    # Caption batches dealt out evenly: into this many piles (DirectRunner: one per worker process,
    # since it splits a stage's input statically), or None: one key per batch for runners that
    # balance by themselves; 0: not at all (captioned where the song was cut).
    caption_piles: int | None
    pairs_per_clip: int
    seed: int
    max_shard_bytes: int
    progress_dir: str | None
    audio: AudioFormat  # how clip audio is stored (--audio_codec, resolved)


def build(p: beam.Pipeline, specs: list[InputSpec], cfg: GraphConfig) -> None:
    """Add the whole IMEMNet-C graph to ``p``; workers read the inputs that ``specs`` name."""
    items = read_inputs(p, specs)
    given = items.pairs if any(s.reader == "matching" for s in specs) else None
    placed = _placements(given) if given is not None else None
    songs = _with_split(items.songs, placed, splits.SONG, "song_id", "Song")
    song_failures, clips = split_by(
        songs
        | "Cut" >> beam.ParDo(stages.SongsToClips(cfg.cut, cfg.download, cfg.progress_dir, cfg.output,
                                                 keep_audio=needs_audio(cfg.captioner), audio=cfg.audio)),
        is_failure, "CutOut")
    batches = clips | "CaptionBatches" >> beam.FlatMap(stages.caption_batches, cfg.caption_batch_size)
    caption_failures, captioned = split_by(_caption(batches, cfg), is_failure, "CaptionOut")
    music = captioned | "MusicRow" >> beam.Map(stages.music_row, cfg.output, cfg.audio)
    images = _with_split(items.images, placed, splits.IMAGE, "image_id", "Image")
    image_failures, image_rows = split_by(
        images
        | "Image" >> beam.ParDo(stages.ImagesToRows(cfg.download, cfg.output, cfg.progress_dir)),
        is_failure, "ImageOut")
    pairs, pair_failures, outcomes = _pairs(p, given, music, image_rows, cfg)
    shards = (music, image_rows, pairs) | "Write" >> WriteTables(cfg.output, cfg.max_shard_bytes)
    failures = (
        items.failures,
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


def _caption(batches, cfg: GraphConfig):
    """Batches of clips (and clips the source captioned) → captioned clips and failures: through
    RunInference for backends with a model (loaded once per worker, or shared), in place for a
    template.

    In place, one ParDo takes both kinds: a Flatten of the two would end the songs' fused stage, and
    DirectRunner would then hold every captioned clip between stages.
    """
    if not needs_model(cfg.captioner):
        return batches | "Caption" >> beam.ParDo(stages.CaptionInPlace(cfg.captioner))
    batches, given = split_by(batches, lambda x: isinstance(x, list), "CaptionIn")
    if cfg.caption_piles != 0 and not needs_audio(cfg.captioner):
        batches = batches | "BalanceCaptions" >> BalanceBatches(cfg.caption_piles)
    return (given, _caption_with_model(batches, cfg)) | "Captioned" >> beam.Flatten()


class BalanceBatches(beam.PTransform):
    """Caption batches spread evenly over the workers, whatever the songs' lengths.

    Fused with the songs, a song's clips are captioned by the worker that cut it; songs that differ
    in length (seconds to minutes) then leave one worker captioning alone at the end. DirectRunner
    splits each stage's input over its workers once, by key: so the batches are gathered (one key;
    a batch is descriptors and tags, no float audio), dealt into ``piles`` of equal clip counts
    (longest batch first, onto the lightest pile) and regrouped by pile, one pile per worker.
    ``piles=None``: one key per batch, for runners that rebalance work themselves (Dataflow).
    """

    def __init__(self, piles: int | None):
        super().__init__()
        self.piles = piles

    def expand(self, batches):
        if self.piles is None:
            keyed = batches | "KeyBatches" >> beam.Map(lambda b: (b[0].clip_id, b))
        else:
            keyed = (batches
                     | "OneKey" >> beam.Map(lambda b: (0, b))
                     | "Gather" >> beam.GroupByKey()
                     | "Deal" >> beam.FlatMap(lambda kv, n: deal(kv[1], n), self.piles))
        return (keyed
                | "ByPile" >> beam.GroupByKey()
                | "Unpile" >> beam.FlatMap(lambda kv: kv[1]))


def deal(batches, piles: int):
    """(pile, batch) for every batch: longest first onto the pile with the fewest clips so far (ties:
    the lower pile), in clip-id order among equals, so a run's plan does not depend on arrival order."""
    load = [0] * piles
    for b in sorted(batches, key=lambda b: (-len(b), b[0].clip_id)):
        pile = min(range(piles), key=lambda i: (load[i], i))
        load[pile] += len(b)
        yield pile, b


def _caption_with_model(batches, cfg: GraphConfig):
    from apache_beam.ml.inference.base import RunInference  # imports torch: only when a model runs

    from captioner.beam import CaptionModelHandler

    handler = CaptionModelHandler(cfg.captioner, batch_size=cfg.caption_batch_size,
                                  large_model=cfg.caption_large_model, model_copies=cfg.caption_model_copies)
    # Batches are made per song above: RunInference's own BatchElements loses its last batch on
    # DaskRunner (finish_bundle output is dropped there).
    return (batches
            | "Caption" >> RunInference(handler.with_no_batching())
            | "ApplyCaption" >> beam.ParDo(stages.ApplyCaption()))


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


def _pairs(p, given, music, image_rows, cfg: GraphConfig):
    """Pairs from matching files (split policy applied, checked against the written ids), else scored
    from VA. Returns (pair rows, pair failures, every pair's :class:`~pipeline.splits.PairOutcome`).

    Both are joins by key (pair, clip id, image id, split), never one list of every id: no
    worker holds more than one key's share, whatever the number of pairs.
    """
    clip_split = music | "ClipSplit" >> beam.MapTuple(lambda _, r: (r["clip_id"], r["split"]))
    image_split = image_rows | "ImageSplit" >> beam.MapTuple(lambda _, r: (r["image_id"], r["split"]))
    if given is not None:
        deduped = (given
                   | "PairByIds" >> beam.Map(lambda pr: ((pr.music_clip_id, pr.image_id), pr))
                   | "GroupSamePair" >> beam.GroupByKey()
                   | "DedupeAcrossFiles" >> beam.FlatMap(_dedupe))
        dropped, unique = split_by(deduped, lambda x: isinstance(x, splits.PairOutcome), "Deduped")
        with_clip = (
            {"pairs": unique | "PairByClip" >> beam.Map(lambda pr: (pr.music_clip_id, pr)), "split": clip_split}
            | "JoinClips" >> beam.CoGroupByKey()
            | "WithClipSplit" >> beam.FlatMap(_with_clip_split))
        decided = (
            {"pairs": with_clip, "split": image_split}
            | "JoinImages" >> beam.CoGroupByKey()
            | "DecidePairs" >> beam.FlatMap(_with_image_split))
        outcomes = (dropped, decided) | "AllOutcomes" >> beam.Flatten()
    elif cfg.pairs_per_clip > 0:
        per_clip, seed = cfg.pairs_per_clip, cfg.seed
        va = lambda key: lambda _, r: (r["split"], (r[key], r["split"], r["valence"], r["arousal"]))  # noqa: E731
        outcomes = (
            {"clips": music | "ClipVA" >> beam.MapTuple(va("clip_id")),
             "images": image_rows | "ImageVA" >> beam.MapTuple(va("image_id"))}
            | "JoinSplits" >> beam.CoGroupByKey()  # one key per split: pairs never cross splits
            | "ScorePairs" >> beam.FlatMap(lambda kv: [
                splits.PairOutcome(f"pairs/scored/{pair.split}", pair)
                for pair in score_pairs_from_va(kv[1]["clips"], kv[1]["images"], per_clip, seed)]))
    else:
        outcomes = p | "NoPairs" >> beam.Create([])
    failures = outcomes | "PairFailures" >> beam.FlatMap(lambda o: [o.failure] if o.failure else [])
    kept = outcomes | "PairKept" >> beam.FlatMap(lambda o: [o.pair] if o.pair else [])
    return kept | "PairRow" >> beam.Map(stages.pair_row), failures, outcomes


def _dedupe(kv):
    """The copy of a clip-image pair to keep (a PairTask) and the copies dropped (PairOutcomes)."""
    keep, dropped = splits.dedupe_across_files(list(kv[1]))
    yield from dropped
    yield keep


def _with_clip_split(kv):
    """(image id, (pair, its clip's split or None)) for every pair listing this clip."""
    _, joined = kv
    split = next(iter(joined["split"]), None)
    for pair in joined["pairs"]:
        yield pair.image_id, (pair, split)


def _with_image_split(kv):
    _, joined = kv
    image_split = next(iter(joined["split"]), None)
    for pair, clip_split in joined["pairs"]:
        yield decide_pair(pair, clip_split, image_split)


def decide_pair(pair: PairTask, clip_split: str | None, image_split: str | None) -> splits.PairOutcome:
    """A matching-file pair's fate once its clip's and image's splits are known (None: not written).

    The one place where a given pair gets its split: a missing clip or image fails it, else the
    split policy (:func:`pipeline.splits.decide`) keeps, moves or drops it.
    """
    missing = check_pair(pair, clip_split is not None, image_split is not None)
    if missing is not None:
        return splits.PairOutcome(f"pairs/missing/{missing.error_type}", failure=missing)
    return splits.decide(pair, clip_split, image_split)
