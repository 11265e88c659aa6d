"""Benchmark: the explorer page at full IMEMNet-C size, as a 1,000-clip sample, and on the demo.

Run with ``make bench``. A synthetic dataset folder with the project's schema and IMEMNet-C's row
counts (25,944 clips, 24,744 images, 34,910 pairs) is written cheaply: every clip shares one short
FLAC and every image one small PNG, while ids, VA, descriptors and ~50-word captions vary per row,
so the page's weight is that of the real dataset (the page holds no media bytes). The demo is
measured when ``runs/demo`` exists (``make run``). Figures: page bytes, time to write the page
(with its media), peak RSS of that process, and in headless Chromium the time until the page is
usable, the JS heap, how many <audio> elements exist, and how long a filter takes.
"""
from __future__ import annotations

import io
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from PIL import Image

from dataset_card import schema
from tests.benchmarks.procmon import measure, tree_rss
from tests.benchmarks.records import write_record
from tests.browser import chromium, missing, wait_for
from tests.dataset_card.test_explore import page_data

ROOT = Path(__file__).resolve().parents[2]
FULL = {"clips": 25_944, "images": 24_744, "pairs": 26_115 + 8_795, "failures": 300}  # DESIGN.md figures
SAMPLE = 1_000
SPLIT_SHARE = (("train", 0.8), ("validation", 0.1), ("test", 0.1))
_GENRES = ["jazz", "rock", "ambient", "folk", "electronic", "classical", "pop", "blues", "funk", "soul"]
_INSTRUMENTS = ["piano", "electric guitar", "acoustic guitar", "synth pad", "strings", "drums", "bass",
                "vibraphone", "saxophone", "organ", "trumpet", "cello"]
_MOODS = ["calm", "energetic", "melancholic", "joyful", "tense", "dreamy", "passionate", "gloomy", "uplifting"]


def _caption(rng: random.Random) -> str:
    g, (a, b), m = rng.choice(_GENRES), rng.sample(_INSTRUMENTS, 2), rng.choice(_MOODS)
    return (f"The {g} song showcases a {a} melody over a steady {b} accompaniment. The tempo is "
            f"{rng.randint(60, 170)} beats per minute in {rng.choice('ABCDEFG')} {rng.choice(['major', 'minor'])}, "
            f"with a {rng.choice(['soft', 'moderate', 'loud'])} and {rng.choice(['bright', 'warm', 'dark'])} sound. "
            f"The recording quality is {rng.choice(['good', 'average', 'lo-fi'])} and the piece conveys a {m} mood.")


def _split(rng: random.Random) -> str:
    u, acc = rng.random(), 0.0
    for name, share in SPLIT_SHARE:
        acc += share
        if u < acc:
            return name
    return SPLIT_SHARE[-1][0]


def write_synthetic(root: Path, n: dict[str, int], seed: int = 0) -> Path:
    """A dataset folder with the contract's schema and ``n`` rows per table (shared media bytes)."""
    rng = random.Random(seed)
    buf = io.BytesIO()
    sf.write(buf, (0.2 * np.sin(np.arange(4000) / 8000 * 2 * np.pi * 440)).astype("float32"), 8000, format="FLAC")
    flac = buf.getvalue()
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 120, 40)).save(buf, format="PNG")
    png = buf.getvalue()
    songs = [f"{s}" for s in range(2, 2 + n["clips"] // 13 + 1)]
    song_split = {s: _split(rng) for s in songs}
    music = []
    for i in range(n["clips"]):
        song = songs[i // 13]
        v, a = rng.random(), rng.random()
        music.append({"clip_id": f"{song}-{9 + i % 13}", "song_id": song, "source": "deam", "start_s": 15.0,
                      "end_s": 25.0, "audio": {"bytes": flac, "path": f"{song}-{i % 13}.flac"}, "valence": v,
                      "arousal": a, "valence_std": 0.05, "arousal_std": 0.05, "caption": _caption(rng),
                      "captioner": rng.choice(["tags-llm/SmolLM2-135M-Instruct/v3", "descriptor/none/template-v1"]),
                      "descriptors": {"tempo_bpm": rng.uniform(60, 170), "beat_strength": 1.5, "key": "C",
                                      "mode": "major", "key_strength": 0.6, "loudness_db": -18.0,
                                      "dynamic_range_db": 8.0, "brightness": 1800.0, "onset_rate": 3.0},
                      "license": "DEAM (non-commercial)", "split": song_split[song]})
    images = [{"image_id": f"COCO_train2014_{i:012d}", "image": {"bytes": png, "path": f"{i}.png"}, "source": "emotic",
               "valence": rng.random(), "arousal": rng.random(), "split": _split(rng)} for i in range(n["images"])]
    pairs = [{"music_clip_id": music[rng.randrange(len(music))]["clip_id"],
              "image_id": images[rng.randrange(len(images))]["image_id"], "score": rng.random(), "split": "test"}
             for _ in range(n["pairs"])]
    for table, rows in ((schema.MUSIC, music), (schema.IMAGES, images), (schema.PAIRS, pairs)):
        for split, _ in SPLIT_SHARE:
            part = [r for r in rows if r["split"] == split]
            path = root / "data" / table / f"{split}-00000-of-00001.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pylist(part, schema=schema.arrow_schema(table)), path)
    fails = [{"item_id": f"song{i}", "kind": "song", "stage": "download", "error_type": "http_404",
              "message": "not found", "attempts": 3} for i in range(n["failures"])]
    (root / "failures").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(fails, schema=schema.FAILURE_SCHEMA), root / "failures" / "failures.parquet")
    (root / "run.json").write_text(json.dumps({"runner": "synthetic (bench_explore)"}))
    return root


def _write_page(folder: Path, out: Path, *extra: str) -> dict:
    """``python -m dataset_card explore`` in its own process: wall time and peak RSS (sampled)."""
    usage = measure([sys.executable, "-m", "dataset_card", "explore", str(folder), "--out", str(out), *extra],
                    cwd=ROOT, interval_s=0.1)
    assert usage.returncode == 0
    media = [p for p in (out / "media").rglob("*") if p.is_file()] if (out / "media").exists() else []
    return {"write_s": round(usage.wall_s, 2), "peak_rss_mb": round(usage.peak_rss_bytes / 1e6, 1),
            "page_mb": round((out / "index.html").stat().st_size / 1e6, 2), "media_files": len(media),
            "media_mb": round(sum(p.stat().st_size for p in media) / 1e6, 1)}


def _in_browser(page: Path, test_clips: int) -> dict:
    with chromium() as d:
        d.get(page.as_uri())
        ready_ms = wait_for(d, "window.__exploreReady", timeout_s=300, what="the page to become usable")
        figures = d.execute_script("""
            const doc = Bokeh.documents[0], m = (n) => doc.get_model_by_name(n);
            const table = Bokeh.index.find_one(m('clip_table'));
            const audio = document.querySelectorAll('audio').length + table.shadow_el.querySelectorAll('audio').length;
            return {points: m('clip_points').view.indices.count, rows: table.data.getLength(), audio_elements: audio,
                    js_heap_mb: performance.memory ? performance.memory.usedJSHeapSize / 1e6 : null};""")
        d.set_script_timeout(60)
        # from choosing a split to the table listing that split's clips, drawn (next animation frame)
        figures.update(d.execute_async_script("""
            const [expected, done] = arguments;
            const doc = Bokeh.documents[0], m = (n) => doc.get_model_by_name(n);
            const table = Bokeh.index.find_one(m('clip_table'));
            const t0 = performance.now();
            m('split_filter').value = 'test';
            const poll = () => table.data.getLength() === expected
                ? done({filter_ms: performance.now() - t0, rows_after_filter: expected})
                : (performance.now() - t0 > 30000 ? done({filter_ms: null, rows_after_filter: table.data.getLength()})
                                                   : requestAnimationFrame(poll));
            requestAnimationFrame(poll);""", test_clips))
        errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
        browser_rss = round(tree_rss(psutil.Process(d.service.process.pid))[0] / 1e6, 1)  # chromedriver + Chromium
    return {"ready_ms": round(ready_ms), "browser_rss_mb_after_load": browser_rss, **{k: (round(v, 1) if isinstance(v, float) else v) for k, v in figures.items()},
            "console_errors": len(errors)}


@pytest.mark.skipif(missing() is not None, reason=str(missing()))
def test_explore_page_at_full_size(tmp_path):
    t0 = time.perf_counter()
    folder = write_synthetic(tmp_path / "full", FULL)
    generate_s = time.perf_counter() - t0
    record = {"rows": FULL, "generate_s": round(generate_s, 1), "pages": {}}
    cases = [("full", folder, ()), ("full --no-media", folder, ("--no-media",)),
             (f"--sample {SAMPLE}", folder, ("--sample", str(SAMPLE)))]
    demo = ROOT / "runs" / "demo"
    if (demo / "run.json").exists():
        cases.append(("demo (runs/demo)", demo, ()))
    else:
        print("runs/demo not found (make run): the demo page is not measured")
    for i, (name, src, extra) in enumerate(cases):
        out = tmp_path / f"page{i}"
        figures = _write_page(src, out, *extra)
        splits = page_data((out / "index.html").read_text(encoding="utf-8"))["clips"]["split"]
        test_clips = splits.count("test")
        figures.update(_in_browser(out / "index.html", test_clips))
        record["pages"][name] = figures
        print(f"{name:>20}: {json.dumps(figures)}")
        assert figures["console_errors"] == 0
        assert figures["audio_elements"] < 100  # players exist only for rows in view, never one per clip
        assert figures["rows_after_filter"] == test_clips and figures["filter_ms"] is not None
    full = record["pages"]["full"]
    assert full["points"] == FULL["clips"]
    write_record("explore.json", record)
