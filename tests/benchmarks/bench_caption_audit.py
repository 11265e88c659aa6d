"""Benchmark: the caption audit of the default demo (``python -m pipeline.run`` as a new user runs it).

Runs the default pipeline (demo source, tags-llm with SmolLM2-135M on the CPU: minutes) into a
temporary folder, or audits ``BENCH_AUDIT_RUN`` when that names an existing run folder, and writes
the audit per captioner id to ``runs/bench/caption_audit.json``. The checks are the caption
targets: no caption with a repeated phrase, a self-contradiction, a grounding failure, a word that
is not English or a vocabulary word misused, no 5-word opening shared by more than a quarter of the
captions, and no clip missing from the music table because of its caption (the record counts the
clips the fallback template captioned after a rejection).
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from captioner import audit
from tests.benchmarks.records import write_record

MAX_OPENING_SHARE = 0.25


def _run_demo(out: Path) -> float:
    from pipeline.run import run

    t0 = time.perf_counter()
    run(["--runner=DirectRunner", "--output", str(out), "--cache_dir", str(out.parent / "cache"), "--no_progress"])
    return time.perf_counter() - t0


def test_default_demo_caption_audit():
    given = os.environ.get("BENCH_AUDIT_RUN")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(given) if given else Path(tmp) / "demo"
        wall = None if given else _run_demo(folder)
        result = audit.audit(folder)
    record = {"benchmark": "caption_audit", "run": given or "default demo (python -m pipeline.run)",
              "pipeline_wall_s": wall, **result.to_json()}
    record.pop("path")
    path = write_record("caption_audit.json", record)
    print("\n" + audit.markdown(result) + f"-> {path}")
    for cid, r in result.captioners.items():
        assert r["repeated_phrase_share"] == 0.0, cid
        assert r["self_contradiction_share"] == 0.0, cid
        assert r["grounding_failure_share"] == 0.0, cid
        assert r["top_opening_share"] <= MAX_OPENING_SHARE, (cid, r["top_opening"])
        assert r["non_word_share"] == 0.0 and r["misused_share"] == 0.0, (cid, r["non_words"], r["misused"])
    assert result.fallbacks.get("missing", 0) == 0, result.fallbacks
