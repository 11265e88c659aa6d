"""Benchmark: the explorer page at full IMEMNet-C size, as a 1,000-clip sample, and on the demo.

Run with ``make bench``. A synthetic dataset folder with the project's schema and IMEMNet-C's row
counts (25,944 clips of 1,996 songs, 24,744 images, 34,910 pairs) is written the way the pipeline
writes one: shards under 500 MB, rows spread over a split's shards by a hash of their id and sorted
by id inside each, media neither compressed nor dictionary-encoded, clips in the pipeline's default
codec. Each song's 13 clips are true windows (10 s every 5/3 s over [15, 45) s) of one of a few
synthesised 45 s songs, so the page's previews are put together from real, overlapping clips;
images are the rehearsal's 64 px JPEGs (``pipeline.rehearsal.images``). Ids, VA, descriptors and
~50-word captions vary per row, so the page weighs what the real one would. Figures: the page's
size and its media folder's against the dataset's, time to write the page, peak RSS of that
process, and in headless Chromium the time until the page is usable, the JS heap, how many <audio>
elements exist, and how long a filter takes; then what ``python -m dataset_card build`` adds on
disk (hard links: nothing but the card and plots). The demo is measured when ``runs/demo`` exists.
"""
from __future__ import annotations

import io
import json
import os
import random
import sys
import time
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataset_card import schema
from tests.benchmarks.procmon import measure, tree_rss
from tests.benchmarks.records import write_record
from tests.browser import chromium, missing, wait_for
from tests.dataset_card.test_explore import page_data

ROOT = Path(__file__).resolve().parents[2]
# DESIGN.md figures; BENCH_EXPLORE_SCALE=0.02 runs the same measurements on a 2 % folder (a quick check)
_SCALE = float(os.environ.get("BENCH_EXPLORE_SCALE", "1"))
FULL = {k: max(13, int(v * _SCALE)) for k, v in
        {"clips": 25_944, "images": 24_744, "pairs": 26_115 + 8_795, "failures": 300}.items()}
SAMPLE = 1_000
SONG_SR = 44100
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


def _clip_bank(variants: int = 8) -> list[list[bytes]]:
    """Per variant, the 13 clips of a synthesised 45 s song, encoded as the pipeline encodes them."""
    from dataset_card.codecs import encode
    from pipeline.audio import clip_grid
    from pipeline.options import DEFAULT_AUDIO
    from tests.audiogen import music_like_song

    grid = clip_grid(45.0, 10.0, 5 / 3, (15.0, 45.0))
    bank = []
    for v in range(variants):
        x = music_like_song(45.0, SONG_SR, bpm=70 + 12 * v, minor=bool(v % 2), seed=v)
        bank.append([encode(x[int(round(s * SONG_SR)):int(round(e * SONG_SR))], SONG_SR, DEFAULT_AUDIO)
                     for _, s, e in grid])
    return bank


def _write_table(root: Path, table: str, rows: list[dict]) -> None:
    """The pipeline's shard layout: per split, shards under 500 MB, rows placed by a hash of their id."""
    from pipeline import writer

    for split, _ in SPLIT_SHARE:
        part = [r for r in rows if r["split"] == split]
        count = writer.shard_count(sum(writer.row_bytes(r) for r in part), writer.MAX_SHARD_BYTES)
        for i in range(count):
            mine = [r for r in part if writer.shard_of(writer.row_id(table, r), count) == i]
            writer.write_parquet(str(root / writer.shard_path(table, split, i, count)), table, mine)


def write_synthetic(root: Path, n: dict[str, int], seed: int = 0) -> Path:
    """A dataset folder with the contract's schema and ``n`` rows per table (clips from a shared bank)."""
    rng = random.Random(seed)
    bank = _clip_bank()
    from pipeline.rehearsal.images import render  # the rehearsal's 64 px JPEGs, coloured by VA
    songs = [f"{s}" for s in range(2, 2 + n["clips"] // 13 + 1)]
    song_split = {s: _split(rng) for s in songs}
    extra = {"tags": [], "tag_probs": {k: [0.0] * len(v) for k, v in getattr(schema, "TAG_VOCABULARIES", {}).items()}}
    extra = {k: v for k, v in extra.items() if k in schema.FEATURES[schema.MUSIC]}
    music = []
    for i in range(n["clips"]):
        song, k = songs[i // 13], i % 13
        v, a = rng.random(), rng.random()
        music.append({"clip_id": f"{song}-{9 + k}", "song_id": song, "source": "deam", "start_s": 15.0 + k * 5 / 3,
                      "end_s": 25.0 + k * 5 / 3, "audio": {"bytes": bank[int(song) % len(bank)][k],
                                                           "path": f"{song}-{9 + k}.opus"},
                      "valence": v, "arousal": a, "valence_std": 0.05, "arousal_std": 0.05, "caption": _caption(rng),
                      "captioner": rng.choice(["tags-llm/SmolLM2-135M-Instruct/v3", "descriptor/none/template-v1"]),
                      "descriptors": {"tempo_bpm": rng.uniform(60, 170), "beat_strength": 1.5, "key": "C",
                                      "mode": "major", "key_strength": 0.6, "loudness_db": -18.0,
                                      "dynamic_range_db": 8.0, "brightness": 1800.0, "onset_rate": 3.0},
                      "license": "DEAM (non-commercial)", "split": song_split[song], **extra})
    images = []
    for i in range(n["images"]):
        image_id, v, a = f"COCO_train2014_{i:012d}", rng.random(), rng.random()
        images.append({"image_id": image_id, "image": {"bytes": render(image_id, v, a, 64), "path": f"{image_id}.jpg"},
                       "source": "emotic", "valence": v, "arousal": a, "split": _split(rng)})
    # every pair inside the test split, as the split rule keeps them
    test_clips = [m["clip_id"] for m in music if m["split"] == "test"]
    test_images = [im["image_id"] for im in images if im["split"] == "test"]
    pairs = [{"music_clip_id": rng.choice(test_clips), "image_id": rng.choice(test_images), "score": rng.random(),
              "split": "test"} for _ in range(n["pairs"])]
    pairs = list({(p["music_clip_id"], p["image_id"]): p for p in pairs}.values())  # ids unique
    for table, rows in ((schema.MUSIC, music), (schema.IMAGES, images), (schema.PAIRS, pairs)):
        _write_table(root, table, rows)
    fails = [{"item_id": f"song{i}", "kind": "song", "stage": "download", "error_type": "http_404",
              "message": "not found", "attempts": 3} for i in range(n["failures"])]
    (root / "failures").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(fails, schema=schema.FAILURE_SCHEMA), root / "failures" / "failures.parquet")
    (root / "run.json").write_text(json.dumps({"runner": "synthetic (bench_explore)"}))
    return root


def _folder_bytes(folder: Path) -> int:
    """Bytes on disk under ``folder``, each file once however many names it has (as ``du``)."""
    seen, total = set(), 0
    for p in folder.rglob("*"):
        st = p.lstat()
        if p.is_file() and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


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


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """(folder, seconds to write it) of the synthetic full-size dataset."""
    t0 = time.perf_counter()
    folder = write_synthetic(tmp_path_factory.mktemp("explore") / "full", FULL)
    return folder, time.perf_counter() - t0


@pytest.mark.skipif(missing() is not None, reason=str(missing()))
def test_explore_page_at_full_size(full, tmp_path):
    folder, generate_s = full
    dataset = _folder_bytes(folder / "data")
    record = {"rows": FULL, "generate_s": round(generate_s, 1), "dataset_mb": round(dataset / 1e6, 1), "pages": {}}
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
        figures["folder_mb"] = round(_folder_bytes(out) / 1e6, 1)
        if src == folder:
            figures["folder_vs_dataset"] = round(_folder_bytes(out) / dataset, 4)
        splits = page_data((out / "index.html").read_text(encoding="utf-8"))["clips"]["split"]
        test_clips = splits.count("test")
        figures.update(_in_browser(out / "index.html", test_clips))
        record["pages"][name] = figures
        print(f"{name:>20}: {json.dumps(figures)}")
        assert figures["console_errors"] == 0
        assert figures["audio_elements"] < 100  # players exist only for rows in view, never one per clip
        assert figures["rows_after_filter"] == test_clips and figures["filter_ms"] is not None
    full_page = record["pages"]["full"]
    assert full_page["points"] == FULL["clips"]
    assert full_page["folder_vs_dataset"] <= 0.1, full_page  # the bound: a tenth of the dataset
    assert full_page["ready_ms"] <= 10_000, full_page  # usable in Chromium within 10 s
    write_record("explore.json", record)


def test_build_at_full_size_adds_no_copy_of_the_shards(full):
    """``build`` links the shards: the run folder grows by the card, plots and licence only."""
    folder, _ = full
    before = _folder_bytes(folder)
    usage = measure([sys.executable, "-m", "dataset_card", "build", str(folder)], cwd=ROOT, interval_s=0.5)
    assert usage.returncode == 0
    after = _folder_bytes(folder)
    hub = folder / "hub"
    apparent = sum(p.stat().st_size for p in hub.rglob("*") if p.is_file())
    record = {"run_mb_before_build": round(before / 1e6, 1), "run_mb_after_build": round(after / 1e6, 1),
              "hub_apparent_mb": round(apparent / 1e6, 1), "build_s": round(usage.wall_s, 1),
              "build_peak_rss_mb": round(usage.peak_rss_bytes / 1e6, 1)}
    print(json.dumps(record))
    write_record("build.json", {"rows": FULL, **record})
    assert after - before < 0.01 * before, record  # the card and plots, not a second copy
