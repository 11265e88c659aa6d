"""Benchmarks of MMVA's data side.

1. Training steps/s with cached frozen features vs live backbones, in one run: the `offline`
   config on a small demo run, cached (frozen EfficientNet/MiniLM outputs and the log-mel inputs
   read from the feature cache) against live (every step decodes the audio and images, computes
   log-mels and runs the frozen backbones), live also with 2 DataLoader workers, and cached on
   2 threads against 1. Reports steps/s and the share of step time spent waiting for batches;
   writes runs/bench/mmva.json.
2. Feature caching at IMEMNet-C's real size: ``python -m mmva_model.cache`` over a reduced-size
   rehearsal (BENCH_MMVA_FRACTION, default 0.05), extrapolated to the full size's 25,936 clips and
   24,744 images, with each backbone's per-row cost before and now side by side; writes
   runs/bench/mmva-cache.json.
3. At any size, on an existing run (``python -m tests.benchmarks.bench_mmva --data RUN --train_eval``):
   caching as in 2, then ``accelerate launch mmva_model/train.py`` from that cache and
   ``python -m mmva_model.evaluate`` on the test split (with ``--matching``: IMEMNet's real pairs),
   each command's wall time and peak RSS over its processes, steps/s, and the disk each step takes.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from mmva_model import train
from mmva_model.threads import available_cores
from tests.benchmarks.procmon import folder_bytes, measure
from tests.benchmarks.records import write_record
from tests.e2e_helpers import run_pipeline

ROOT = Path(__file__).resolve().parents[2]

MIN_CACHE_SPEEDUP = 3.0
VARIANTS = {  # name -> (steps, overrides, other flags); one thread each unless named (`make bench`'s caps)
    "cached": (40, [], ["--threads", "1"]),
    "cached-2-threads": (40, [], ["--threads", "2"]),
    "live": (6, ["train.cache_features=false", "train.num_workers=0"], ["--threads", "1"]),
    "live-2-workers": (6, ["train.cache_features=false", "train.num_workers=2"], ["--threads", "1"]),
}


def _train(data: Path, tmp: Path, name: str, steps: int, overrides: list[str], flags=()) -> train.TrainResult:
    sets = [x for o in [f"train.steps={steps}", f"train.eval_every={10 * steps}",
                        f"train.checkpoint_every={10 * steps}", "train.warmup_steps=1", *overrides]
            for x in ("--set", o)]
    return train.run(["--data", str(data), "--output_dir", str(tmp / name), "--cache_dir", str(tmp / "features"),
                      "--hf_cache_dir", str(tmp / "hf"), "--no_progress", *flags, *sets])


def test_cached_features_vs_live_backbones():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        run_pipeline(tmp, "--demo_songs", "12", "--demo_images", "120", "--clip_seconds", "10",
                     "--hop_seconds", "5", "--sample_rate", "44100", output="run")
        _train(tmp / "run", tmp, "warm-cache", 1, [])  # fills the cache outside the timings
        results = {name: _train(tmp / "run", tmp, name, steps, o, f) for name, (steps, o, f) in VARIANTS.items()}
    record = {name: {"steps_per_second": round(r.steps_per_second, 3),
                     "data_wait_share": round(r.data_wait_share, 3), "steps": r.step}
              for name, r in results.items()}
    speedup = results["cached"].steps_per_second / results["live"].steps_per_second
    record["cached_vs_live_speedup"] = round(speedup, 2)
    record["cached_2_vs_1_threads"] = round(results["cached-2-threads"].steps_per_second
                                            / results["cached"].steps_per_second, 2)
    record["config"] = "offline (music_batch 32, image_batch 32), demo 12 songs x 30 s, 120 images"
    path = write_record("mmva.json", record)
    for name, r in record.items():
        print(f"{name}: {r}")
    print(f"wrote {path}")
    assert speedup >= MIN_CACHE_SPEEDUP, record


# -- feature caching at IMEMNet-C's real size ------------------------------------------------------

FULL_SIZE = {"music": 25_936, "images": 24_744}  # the full-size rehearsal's clips and images (issue 22)
TARGET_S = 600.0  # the whole full-size cache in at most 10 minutes on this 2-core machine
CACHE_FRACTION = float(os.environ.get("BENCH_MMVA_FRACTION", 0.05))


def _cpu_ms(fn, rows: int, repeats: int = 3) -> float:
    """CPU milliseconds per row of ``fn()`` (best of ``repeats`` after one warm-up): CPU time, not
    wall time, so that other work on a shared machine does not count."""
    fn()
    best = min(_timed(fn) for _ in range(repeats))
    return 1e3 * best / rows


def _timed(fn) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def layouts(data: Path, n: int = 64) -> dict:
    """Each backbone's per-row CPU cost on one thread, before (issue 22's run) and now, side by side,
    on ``n`` real prepared rows of the rehearsal."""
    from mmva_model.config import load_config
    from mmva_model.data import load_split
    from mmva_model.encoders import build_encoder
    from mmva_model.threads import torch_threads

    cfg = load_config("offline")
    image, music, caption = (build_encoder(cfg.model.encoder(m)) for m in ("image", "music", "caption"))
    split = load_split(str(data), "train")
    images, clips = [split.images.row(i) for i in range(n)], [split.music.row(i) for i in range(n)]
    with torch_threads(1):  # as in a caching worker
        prepare = {"image (decode, resize)": _cpu_ms(lambda: [image.prepare(r) for r in images], n),
                   "music (decode, resample, log-mel)": _cpu_ms(lambda: [music.prepare(r) for r in clips], n),
                   "caption (tokenise)": _cpu_ms(lambda: [caption.prepare(r) for r in clips], n)}
        pixels = image.collate([image.prepare(r) for r in images])["pixels"]
        texts = caption.collate([caption.prepare(r) for r in clips])
        with torch.inference_mode():
            effnet, minilm = _effnet_costs(image, pixels), _minilm_costs(caption, texts)
    first, last = (lambda d: next(iter(d.values()))), (lambda d: list(d.values())[-1])
    return {"efficientnet_lite0_ms_per_image": effnet, "minilm_ms_per_caption": minilm,
            "prepare_ms_per_row": {k: round(v, 2) for k, v in prepare.items()},
            "efficientnet_speedup": round(first(effnet) / last(effnet), 2),
            "minilm_speedup": round(first(minilm) / last(minilm), 2)}


def _batches(fn, n: int, batch: int):
    return lambda: [fn(slice(s, s + batch)) for s in range(0, n, batch)]


def _effnet_costs(image, pixels: torch.Tensor) -> dict[str, float]:
    """EfficientNet-Lite0 per image: the layout before, each change alone, and all of them."""
    import copy

    from mmva_model.encoders.vision import efficientnet_for_inference
    from mmva_model.feature_cache import FEATURE_BATCH as B

    cl, n = torch.channels_last, len(pixels)
    plain, cl_only = image.backbone, copy.deepcopy(image.backbone).to(memory_format=cl)
    fast = efficientnet_for_inference(image.backbone)
    variants = {
        "NCHW, batch 64 (before)": _batches(lambda s: plain.extract_features(pixels[s]), n, 64),
        f"NCHW, batch {B}": _batches(lambda s: plain.extract_features(pixels[s]), n, B),
        f"channels_last, batch {B}": _batches(
            lambda s: cl_only.extract_features(pixels[s].contiguous(memory_format=cl)), n, B),
        f"BN folded + channels_last, batch {B} (now)": _batches(
            lambda s: fast.extract_features(pixels[s].contiguous(memory_format=cl)), n, B),
    }
    return {name: round(_cpu_ms(fn, n), 2) for name, fn in variants.items()}


def _minilm_costs(caption, texts: dict) -> dict[str, float]:
    """all-MiniLM-L6-v2 per caption: padded to max_length at batch 64 before, as cached now."""
    from mmva_model.feature_cache import FEATURE_BATCH as B

    n = len(texts["input_ids"])
    padded = _batches(lambda s: caption.backbone(input_ids=texts["input_ids"][s],
                                                 attention_mask=texts["attention_mask"][s]), n, 64)
    now = _batches(lambda s: caption.frozen({k: v[s] for k, v in texts.items()}), n, B)
    return {"padded to 64 tokens, batch 64 (before)": round(_cpu_ms(padded, n), 2),
            f"padding columns dropped, batch {B} (now)": round(_cpu_ms(now, n), 2)}


def cache_run(data: Path, cache: Path, log: Path) -> dict:
    """``python -m mmva_model.cache`` over every split of ``data``, measured (wall, CPU, peak RSS),
    and extrapolated to the full size (:func:`full_size`)."""
    timings = cache / "timings.json"
    load = os.getloadavg()[0]
    usage = measure([sys.executable, "-m", "mmva_model.cache", "--data", str(data), "--cache_dir", str(cache),
                     "--timings", str(timings), "--no_progress"], cwd=ROOT,
                    env=dict(os.environ, HF_HUB_OFFLINE="1"), watch=[cache], log=log)
    assert usage.returncode == 0, log.read_text()[-3000:]
    setup, *passes = json.loads(timings.read_text())
    return {"setup": setup, "passes": passes, "command": usage.as_dict(), "cores": available_cores(),
            "load_average_before": round(load, 2), "load_average_after": round(os.getloadavg()[0], 2),
            "full_size": full_size(setup, passes, available_cores())}


def full_size(setup: dict, passes: list[dict], cores: int) -> dict:
    """The full size's caching time from the set-up and the passes (one per table and split).

    Per table, a least-squares line through the splits' (rows, CPU seconds) gives the cost per row
    (slope) and per pass (intercept: worker start-up, kernels built on first use); the full size
    runs the same set-up once and three passes per table with FULL_SIZE rows. Wall seconds
    likewise, at the measured rate (whatever else the shared machine ran); CPU seconds / cores is
    the time on idle cores (the set-up runs on one). ``naive`` divides each table's totals by its
    rows instead.
    """
    import numpy as np

    out = {}
    for table in FULL_SIZE:
        ps = [p for p in passes if p["table"] == table]
        rows = np.array([p["rows"] for p in ps], dtype=float)
        fit = {}
        for key in ("cpu_seconds", "seconds"):
            y = np.array([p[key] for p in ps])
            slope, intercept = np.polyfit(rows, y, 1) if len(set(rows)) > 1 else (y.sum() / rows.sum(), 0.0)
            fit[key] = (float(slope), float(intercept), float(y.sum() / rows.sum() * FULL_SIZE[table]))
        out[table] = {"cpu_ms_per_row": round(1e3 * fit["cpu_seconds"][0], 2),
                      "cpu_s_per_pass": round(fit["cpu_seconds"][1], 2),
                      "cpu_s": round(fit["cpu_seconds"][0] * FULL_SIZE[table] + len(ps) * fit["cpu_seconds"][1], 1),
                      "wall_s": round(fit["seconds"][0] * FULL_SIZE[table] + len(ps) * fit["seconds"][1], 1),
                      "naive_cpu_s": round(fit["cpu_seconds"][2], 1)}
    total = {k: sum(t[k] for t in out.values()) for k in ("cpu_s", "wall_s", "naive_cpu_s")}
    return {"per_table": out, "setup_s": round(setup["seconds"], 1), "setup_cpu_s": round(setup["cpu_seconds"], 1),
            "wall_s_at_measured_rate": round(setup["seconds"] + total["wall_s"], 1),
            "wall_s_on_idle_cores": round(setup["cpu_seconds"] + total["cpu_s"] / cores, 1),
            "naive_wall_s_on_idle_cores": round(setup["cpu_seconds"] + total["naive_cpu_s"] / cores, 1),
            "target_s": TARGET_S}


def test_feature_caching_at_rehearsal_size():
    """The full-size rehearsal's features, extrapolated from a reduced rehearsal (CACHE_FRACTION).

    Caching is linear in rows (fixed batches, no work across rows), so each table's per-row cost at
    the reduced size, times the full size's rows, gives the full-size time; one-time costs (model
    loading, imports) count in the per-row cost, which makes the figure an overestimate. Two
    figures: at the measured wall rate (whatever else the shared machine was doing) and on idle
    cores (CPU seconds of the command and its workers / cores).
    """
    from tests.benchmarks.bench_rehearsal import rehearse

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rehearse(tmp / "rehearsal", CACHE_FRACTION)
        record = {"fraction": CACHE_FRACTION, **caching_record(tmp / "rehearsal" / "run", tmp)}
    path = write_record("mmva-cache.json", record)
    _print_cache(record)
    print(f"wrote {path}")
    lay = record["layouts"]
    assert lay["efficientnet_speedup"] > 1 and lay["minilm_speedup"] > 1, lay


def caching_record(run: Path, tmp: Path, with_layouts: bool = True) -> dict:
    """Caching ``run`` (a pipeline run folder) measured, extrapolated, and the layouts side by side."""
    record = {"run": str(run), "rows": {table: _rows(run, table) for table in FULL_SIZE},
              "cache": cache_run(run, tmp / "features", tmp / "cache.log")}
    return {**record, "layouts": layouts(run) if with_layouts else {}}


def _rows(run: Path, table: str) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in (run / "data" / table).glob("*.parquet"))


def _disk_gb(path: Path) -> float:
    return round(folder_bytes([path]) / 2**30, 3)  # allocated, hard links once, as the pipeline's figures


def train_eval_record(run: Path, tmp: Path, matching: list[str]) -> dict:
    """Train the default config from the cache :func:`caching_record` filled, then evaluate the test
    split: each command measured (wall, peak RSS over its processes); disk of the run, the cache, the
    checkpoints, and what the datasets cache gained (nothing when the run is read in place)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    hf_cache = Path(os.environ.get("HF_DATASETS_CACHE", Path.home() / ".cache" / "huggingface" / "datasets"))
    hf_before = _disk_gb(hf_cache)
    out, cache = tmp / "train", tmp / "features"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "mmva_model/train.py",
              "--data", str(run), "--output_dir", str(out), "--cache_dir", str(cache), "--no_progress"]
    trained = measure(launch, cwd=ROOT, env=env, watch=[out], log=tmp / "train.log")
    assert trained.returncode == 0, (tmp / "train.log").read_text()[-3000:]
    summary = json.loads((out / "train.json").read_text())
    evaluate = [sys.executable, "-m", "mmva_model.evaluate", "--checkpoint", str(out), "--data", str(run),
                "--cache_dir", str(cache), "--out", str(tmp / "eval"), "--quiet",
                *(["--matching", *matching] if matching else [])]
    scored = measure(evaluate, cwd=ROOT, env=env, watch=[tmp / "eval"], log=tmp / "eval.log")
    assert scored.returncode == 0, (tmp / "eval.log").read_text()[-3000:]
    metrics = json.loads((tmp / "eval" / "metrics.json").read_text())
    return {"train": {"command": trained.as_dict(), "steps": summary.get("step"),
                      "steps_per_second": summary.get("steps_per_second"), "threads": summary.get("threads"),
                      "best_step": summary.get("best_step")},
            "evaluate": {"command": scored.as_dict(), "counts": metrics.get("counts"), "metrics": metrics},
            "disk_gb": {"run": _disk_gb(run), "feature_cache": _disk_gb(cache), "checkpoints": _disk_gb(out),
                        "datasets_cache_growth": round(_disk_gb(hf_cache) - hf_before, 3)}}


def main(argv: list[str] | None = None) -> int:
    """Measure caching of an existing run folder (any size; the full size needs no extrapolation),
    and with --train_eval training and evaluation after it."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m tests.benchmarks.bench_mmva", description=main.__doc__)
    p.add_argument("--data", required=True, help="pipeline run folder to cache")
    p.add_argument("--record", default=None, help="also write runs/bench/<RECORD>")
    p.add_argument("--train_eval", action="store_true",
                   help="then train the offline config from the cache and evaluate its test split")
    p.add_argument("--matching", nargs="+", default=[], metavar="FILE",
                   help="IMEMNet matching files for the evaluation's real-pair Spearman")
    p.add_argument("--layouts", action=argparse.BooleanOptionalAction, default=True,
                   help="also time each backbone's layouts side by side on 64 rows (default: on)")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        record = caching_record(Path(a.data), Path(d), with_layouts=a.layouts)
        if a.train_eval:
            record["train_eval"] = train_eval_record(Path(a.data), Path(d), a.matching)
    _print_cache(record)
    if a.train_eval:
        _print_train_eval(record["train_eval"])
    if a.record:
        print(f"wrote {write_record(a.record, record)}")
    return 0


def _print_train_eval(r: dict) -> None:
    t, e = r["train"], r["evaluate"]
    print(f"training: {t['steps']} steps in {t['command']['wall_s']} s at {t['steps_per_second']:.1f} steps/s "
          f"({t['threads']} threads), peak RSS {t['command']['peak_rss_gb']} GB")
    va = e["metrics"]["va"]
    print(f"evaluation of {e['counts']}: {e['command']['wall_s']} s, peak RSS {e['command']['peak_rss_gb']} GB; "
          + ", ".join(f"{m} R2 V {va[m]['valence']['r2']:.3f} A {va[m]['arousal']['r2']:.3f}" for m in va))
    print(f"disk (GB): {r['disk_gb']}")


def _print_cache(record: dict) -> None:
    c, full = record["cache"], record["cache"]["full_size"]
    print(f"\nfeature caching of {record['run']} ({record['rows']}): {c['command']['wall_s']} s, "
          f"peak RSS {c['command']['peak_rss_gb']} GB over {c['command']['peak_processes']} processes; "
          f"load average {c['load_average_before']} -> {c['load_average_after']} on {c['cores']} cores")
    for p in c["passes"]:
        print(f"  {p['split']}/{p['table']}: {p['rows']} rows, {p['seconds']:.1f} s, {p['cpu_seconds']:.1f} CPU s")
    for table, f in full["per_table"].items():
        print(f"  {table}: {f['cpu_ms_per_row']} CPU ms/row + {f['cpu_s_per_pass']} CPU s/pass -> full size "
              f"{f['cpu_s']} CPU s ({f['naive_cpu_s']} naive), {f['wall_s']} s at the measured rate")
    print(f"  set-up (model, imports): {full['setup_s']} s, {full['setup_cpu_s']} CPU s")
    print(f"  full size: {full['wall_s_on_idle_cores']} s on {c['cores']} idle cores "
          f"({full['naive_wall_s_on_idle_cores']} s naive), {full['wall_s_at_measured_rate']} s at the measured "
          f"rate (target {full['target_s']:g} s)")
    for name, costs in record["layouts"].items():
        print(f"  {name}: {costs}")


if __name__ == "__main__":
    sys.exit(main())
