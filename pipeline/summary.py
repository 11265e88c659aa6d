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

from pipeline.inputs import Listed
from pipeline.redact import redact_value
from pipeline.splits import policy_report
from pipeline.stages import NAMESPACE
from pipeline.writer import ShardInfo, join

log = logging.getLogger(__name__)
VERSIONED = ("apache-beam", "datasets", "librosa", "numpy", "pyarrow", "soundfile", "torch", "torchcodec",
             "transformers", "yt-dlp", "pillow", "imemnet-c")
STAGES = {"songs": ("songs", "clips"), "caption": ("clips", "captioned"), "images": ("images", "rows")}
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


def _failures_by_reason(output: str) -> collections.Counter:
    with FileSystems.open(join(output, "failures/failures.parquet")) as fh:
        t = pq.read_table(fh, columns=["kind", "stage", "error_type"]).to_pylist()
    return collections.Counter(f"{r['kind']}/{r['stage']}/{r['error_type']}" for r in t)


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
    reasons = _failures_by_reason(opts.output)
    rejected = sum(n for r, n in reasons.items() if r.startswith("clip/caption/"))
    flagged = sum(n for r, n in reasons.items() if r.startswith("clip/caption/caption_ungrounded"))
    reached = sum(rows.get("music", {}).values()) + rejected
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


def render(s: RunSummary) -> str:
    """The end-of-run report printed to the console."""
    lines = [f"IMEMNet-C run finished in {s.wall_s:.1f} s on {s.runner}", "",
             "listed: " + ", ".join(f"{v} {k}" for k, v in s.listed.items())]
    c = s.stage_counters
    for stage, (what_in, what_out) in STAGES.items():
        if f"{stage}_in" in c:
            lines.append(f"stage {stage:8s} {c[f'{stage}_in']:6d} {what_in:7s} -> {c.get(f'{stage}_out', 0):6d} "
                         f"{what_out:9s} {c.get(f'{stage}_failed', 0):6d} failed")
    for table, splits in sorted(s.rows.items()):
        lines.append(f"{table:7s} rows: " + ", ".join(f"{k} {v}" for k, v in splits.items())
                     + f" (total {sum(splits.values())})")
    lines.append(f"clip audio: {s.clip_audio_hours:.3f} h" + (
        f" (songs processed in {s.songs_phase_s:.1f} s)" if s.songs_phase_s else ""))
    if s.captions_rejected:
        lines.append(f"captions rejected: {s.captions_rejected} "
                     f"({100 * s.captions_flagged_share:.1f}% of clips flagged as contradicting their descriptors)")
    lines += _policy_lines(s.split_policy)
    lines.append(f"failures: {s.failures_total}" + ("" if not s.failures_total else " (kind/stage/reason):"))
    lines += [f"  {n:6d}  {reason}" for reason, n in s.failures_by_reason.items()]
    lines += ["", f"output: {s.output}  (data/, failures/failures.parquet, run.json, README.md)",
              f"next:   {s.next_command}"]
    return "\n".join(lines)
