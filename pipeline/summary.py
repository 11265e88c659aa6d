"""What a run did, for the console and for ``run.json``."""
from __future__ import annotations

import argparse
import collections
import importlib.metadata
import logging
import platform
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow.parquet as pq
import pipeline.beam_import  # noqa: F401  (first: Beam without its harmless apitools warning)
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from captioner.fallback import parse_captioner
from pipeline.inputs import Listed
from pipeline.redact import redact_value
from pipeline.splits import policy_report
from pipeline.stages import NAMESPACE
from pipeline.writer import ShardInfo, join

log = logging.getLogger(__name__)
VERSIONED = ("apache-beam", "datasets", "librosa", "numpy", "pyarrow", "soundfile", "torch", "torchcodec",
             "transformers", "yt-dlp", "pillow", "imemnet-c")
# stage -> (what goes in, what comes out, what its failure rows are): a rejected caption's clip still
# comes out (with the fallback caption), so the caption stage's failures are rejections, not losses.
STAGES = {"songs": ("songs", "clips", "failed"), "caption": ("clips", "captioned", "rejected"),
          "images": ("images", "rows", "failed")}
_SECRET_WORDS = ("token", "secret", "password", "key", "cookie", "credential")


@dataclass
class RunSummary:
    """Counts, failures, timings and provenance of one run."""

    output: str
    runner: str
    wall_s: float
    listed: dict[str, int]
    rows: dict[str, dict[str, int]]
    failures_by_reason: dict[str, int]
    failures_total: int
    clip_audio_hours: float
    songs_phase_s: float | None = None  # first to last song finished (workers sharing our disk)
    captions_rejected: int = 0  # caption-stage failures: empty, repetitive, ungrounded...
    captions_flagged_share: float = 0.0  # ungrounded captions / clips that reached the captioner
    captions: dict[str, Any] = field(default_factory=dict)  # asdict(CaptionCounts): who captioned the rows
    stage_counters: dict[str, int] = field(default_factory=dict)
    split_policy: dict[str, Any] = field(default_factory=dict)  # pipeline.splits.policy_report; {} without pairs
    options: dict[str, Any] = field(default_factory=dict)
    beam_options: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    python: str = platform.python_version()
    next_command: str = ""


def shard_from_dict(d: dict) -> ShardInfo:
    return ShardInfo(**d)


def _sanitised(d: dict[str, Any]) -> dict[str, Any]:
    """Options with anything secret-looking replaced by whether it was set, URLs without credentials."""
    return {k: ("<set>" if v and any(w in k.lower() for w in _SECRET_WORDS) else redact_value(v))
            for k, v in d.items()}


def _versions() -> dict[str, str]:
    out = {}
    for name in VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _failures(output: str) -> tuple[collections.Counter, dict[str, str]]:
    """Failure rows by "kind/stage/error_type", and the caption stage's rows by clip id."""
    with FileSystems.open(join(output, "failures/failures.parquet")) as fh:
        t = pq.read_table(fh, columns=["item_id", "kind", "stage", "error_type"]).to_pylist()
    caption = {r["item_id"]: r["error_type"] for r in t if r["stage"] == "caption"}
    return collections.Counter(f"{r['kind']}/{r['stage']}/{r['error_type']}" for r in t), caption


CAPTION_FAILURES_NOTE = ("failure rows of stage caption record rejections by the chosen captioner; each such "
                         "clip is in the music table with the fallback template's caption (its captioner value "
                         "ends '(fallback from <chosen>)'), so they are not missing clips: 'missing' counts those "
                         "that are")


@dataclass
class CaptionCounts:
    """Who wrote the music rows' captions, and what the caption-stage failure rows mean."""

    chosen: int = 0  # rows captioned by the chosen captioner
    fallback: int = 0  # rows captioned by the template after the chosen captioner rejected them
    fallback_by_reason: dict[str, int] = field(default_factory=dict)  # error_type of their failure rows
    source: int = 0  # rows whose source gave the caption
    missing: int = 0  # caption-stage failures whose clip is not in the music table
    by_captioner: dict[str, int] = field(default_factory=dict)
    note: str = CAPTION_FAILURES_NOTE


def caption_counts(output: str, music_shards: list[str], caption_failures: dict[str, str]) -> CaptionCounts:
    """Count the music rows by who captioned them, streaming the shards' small id columns."""
    by_captioner: collections.Counter = collections.Counter()
    reasons: collections.Counter = collections.Counter()
    present = 0  # caption failures whose clip has a row
    for rel in music_shards:
        with FileSystems.open(join(output, rel)) as fh:
            t = pq.read_table(fh, columns=["clip_id", "captioner"])
        for clip_id, value in zip(t.column("clip_id").to_pylist(), t.column("captioner").to_pylist()):
            by_captioner[value] += 1
            if clip_id in caption_failures:
                present += 1
                reasons[caption_failures[clip_id]] += parse_captioner(value).fell_back
    parsed = {v: parse_captioner(v) for v in by_captioner}
    return CaptionCounts(
        chosen=sum(n for v, n in by_captioner.items() if not parsed[v].fell_back and v != "source"),
        fallback=sum(n for v, n in by_captioner.items() if parsed[v].fell_back),
        fallback_by_reason={k: n for k, n in sorted(reasons.items()) if n},
        source=by_captioner.get("source", 0),
        missing=len(caption_failures) - present,
        by_captioner=dict(by_captioner.most_common()),
    )


def _counters(result) -> dict[str, int]:
    """Beam counters of our namespace; runners without metrics support give none."""
    try:
        res = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    except (NotImplementedError, AttributeError) as e:
        log.info("this runner reports no metrics (%s); counts come from the written files", e)
        return {}
    return {c.key.metric.name: int(c.committed or c.attempted or 0) for c in res["counters"]}


def build_summary(opts: argparse.Namespace, po: PipelineOptions, listed: Listed, manifest: dict,
                  result, wall_s: float, songs_phase_s: float | None = None) -> RunSummary:
    """Assemble the summary from the run's manifest, failures file and metrics."""
    rows: dict[str, dict[str, int]] = {}
    for s in manifest["shards"]:
        rows.setdefault(s["table"], collections.Counter())[s["split"]] += s["rows"]
    reasons, caption_failures = _failures(opts.output)
    rejected = sum(n for r, n in reasons.items() if r.startswith("clip/caption/"))
    flagged = sum(n for r, n in reasons.items() if r.startswith("clip/caption/caption_ungrounded"))
    captions = caption_counts(opts.output, [s["path"] for s in manifest["shards"] if s["table"] == "music"],
                              caption_failures)
    reached = sum(rows.get("music", {}).values()) + captions.missing
    beam_opts = {k: v for k, v in po.get_all_options(drop_default=True).items()}
    return RunSummary(
        output=opts.output,
        runner=str(po.view_as(StandardOptions).runner),
        wall_s=round(wall_s, 2),
        listed=asdict(listed),
        rows={t: dict(c) for t, c in rows.items()},
        failures_by_reason=dict(sorted(reasons.items())),
        failures_total=sum(reasons.values()),
        clip_audio_hours=round(manifest["clip_audio_seconds"] / 3600, 4),
        songs_phase_s=songs_phase_s,
        captions_rejected=rejected,
        captions_flagged_share=round(flagged / reached, 4) if reached else 0.0,
        captions=asdict(captions),
        stage_counters=_counters(result),
        split_policy=policy_report(manifest["split_policy"]) if manifest.get("split_policy") else {},
        options=_sanitised(vars(opts)),
        beam_options=_sanitised(beam_opts),
        versions=_versions(),
        next_command=f"python -m dataset_card build {opts.output}   # card, validation, then publish",
    )


def _policy_lines(policy: dict) -> list[str]:
    """One line each for songs, images and pairs: what the split policy did."""
    if not policy:
        return []
    out = []
    for what in ("songs", "images"):
        if policy.get(what):
            out.append(f"split policy {what}: " + ", ".join(f"{k} {v}" for k, v in policy[what].items()))
    pairs = [f"{outcome} {k} {v}" for outcome, d in policy.get("pairs", {}).items() for k, v in d.items()]
    if pairs:
        out.append("split policy pairs: " + ", ".join(pairs))
    return out


def _caption_lines(s: RunSummary) -> list[str]:
    c = s.captions
    if not c:
        return []
    lines = [f"captions: {c['chosen']} by the chosen captioner, {c['fallback']} by the fallback template"
             + (f" ({', '.join(f'{k} {n}' for k, n in c['fallback_by_reason'].items())})" if c["fallback"] else "")
             + (f", {c['source']} from the source" if c["source"] else "") + f"; {c['missing']} clips missing"]
    if s.captions_rejected:
        lines.append(f"captions rejected: {s.captions_rejected} "
                     f"({100 * s.captions_flagged_share:.1f}% of clips flagged as contradicting their descriptors); "
                     "rejected clips keep their rows with the fallback caption")
    return lines


def render(s: RunSummary) -> str:
    """The end-of-run report printed to the console."""
    lines = [f"IMEMNet-C run finished in {s.wall_s:.1f} s on {s.runner}", "",
             "listed: " + ", ".join(f"{v} {k}" for k, v in s.listed.items())]
    c = s.stage_counters
    for stage, (what_in, what_out, failed) in STAGES.items():
        if f"{stage}_in" in c:
            lines.append(f"stage {stage:8s} {c[f'{stage}_in']:6d} {what_in:7s} -> {c.get(f'{stage}_out', 0):6d} "
                         f"{what_out:9s} {c.get(f'{stage}_failed', 0):6d} {failed}")
    for table, splits in sorted(s.rows.items()):
        lines.append(f"{table:7s} rows: " + ", ".join(f"{k} {v}" for k, v in splits.items())
                     + f" (total {sum(splits.values())})")
    lines.append(f"clip audio: {s.clip_audio_hours:.3f} h" + (
        f" (songs processed in {s.songs_phase_s:.1f} s)" if s.songs_phase_s else ""))
    lines += _caption_lines(s)
    lines += _policy_lines(s.split_policy)
    lines.append(f"failures: {s.failures_total}" + ("" if not s.failures_total else " (kind/stage/reason):"))
    lines += [f"  {n:6d}  {reason}" for reason, n in s.failures_by_reason.items()]
    lines += ["", f"output: {s.output}  (data/, failures/failures.parquet, run.json, README.md)",
              f"next:   {s.next_command}"]
    return "\n".join(lines)
