"""audio-llm speed: clips/s, generated tokens/s and peak memory per batch size, then the 2-process job.

    make bench-gpu                        # GPU: Qwen2-Audio-7B-Instruct's configuration, random bf16 weights
    python -m tests.benchmarks.audio_llm_speed --model tiny --device cpu     # the tiny model on a CPU

Speed does not depend on the weights, so the 7B figures need no download: the model is built from
the configuration below on the GPU itself. Every clip generates exactly ``--max_new_tokens``
tokens (``min_new_tokens`` = ``max_new_tokens``), greedy. The in-process figures time the model
on prepared clips (features made beforehand, as the job's loader workers do), and the time to
prepare a clip on one CPU core is recorded beside them; the job figures run ``accelerate launch
-m captioner`` with two processes end to end (loader workers, model, records).

This module runs on the GPU machine, which has only torch, transformers, accelerate, safetensors,
pyarrow and pandas: it imports nothing else (``tests/captioner/test_audio_llm_bench.py`` checks
that with those packages hidden).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from captioner.base import CaptionerConfig, ClipForCaption, build
from captioner.prompts import AUDIO_STYLE_EXAMPLE, audio_instruction
from tests.benchmarks.records import write_record
from tests.captioner.audio_run import DESCRIPTORS, music_clip, write_music_run
from tests.captioner.tiny_models import AUDIO_SPECIALS, CHATML, tiny_qwen2_audio, train_tokenizer

ROOT = Path(__file__).resolve().parents[2]
RATE = 16000
# Qwen/Qwen2-Audio-7B-Instruct's config.json: the audio encoder is transformers'
# Qwen2AudioConfig default (Whisper-large-v3 shaped, 32 layers, 1280 wide, 128 mel bins,
# 1500 positions = 30 s), the text model a Qwen-7B (32 layers, 4096 wide, 32 heads without
# grouped KV, MLP 11008, 156,032 tokens, untied LM head). About 8.4 B parameters, 16.8 GB in bf16.
QWEN2_AUDIO_7B = {
    "audio_config": {"model_type": "qwen2_audio_encoder", "d_model": 1280, "encoder_layers": 32,
                     "encoder_attention_heads": 20, "encoder_ffn_dim": 5120, "num_mel_bins": 128,
                     "max_source_positions": 1500, "scale_embedding": False, "activation_function": "gelu"},
    "text_config": {"model_type": "qwen2", "vocab_size": 156032, "hidden_size": 4096, "intermediate_size": 11008,
                    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
                    "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
                    "tie_word_embeddings": False, "hidden_act": "silu"},
}
# H200 figures for the ceiling (dense bf16 matmul rate one can reach, HBM3e bandwidth).
H200_TFLOPS, H200_TBPS = 790.0, 4.8


def qwen2_audio_7b_folder(folder: Path) -> Path:
    """Config + processor of the 7B model (no weights: it is built with ``random_weights``).

    The tokenizer is a local BPE trained on the prompt texts with a vocabulary big enough that
    prompt words are mostly single tokens, as with Qwen's own; the model keeps its 156k-token head.
    """
    from transformers import Qwen2AudioConfig, Qwen2AudioProcessor, WhisperFeatureExtractor

    folder.mkdir(parents=True, exist_ok=True)
    texts = [audio_instruction(DESCRIPTORS, v, a, m) for v in (0.2, 0.8) for a in (0.2, 0.8)
             for m in ("labels", "none")] + [AUDIO_STYLE_EXAMPLE]
    tok = train_tokenizer(folder, AUDIO_SPECIALS, vocab_size=2000, texts=texts)
    text_config = {**QWEN2_AUDIO_7B["text_config"], "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    cfg = Qwen2AudioConfig(audio_config=dict(QWEN2_AUDIO_7B["audio_config"]), text_config=text_config,
                           audio_token_index=tok.convert_tokens_to_ids("<|AUDIO|>"))
    cfg.architectures = ["Qwen2AudioForConditionalGeneration"]
    cfg.save_pretrained(folder)
    Qwen2AudioProcessor(WhisperFeatureExtractor(feature_size=128), tok, chat_template=CHATML).save_pretrained(folder)
    return folder


MODELS = {"tiny": (tiny_qwen2_audio, False), "qwen2-audio-7b": (qwen2_audio_7b_folder, True)}


def bench_clips(n: int, seconds: float) -> list[ClipForCaption]:
    return [ClipForCaption(f"b-{i}", music_clip(i, seconds, RATE), RATE, DESCRIPTORS, 0.2 + 0.6 * (i % 2), 0.7)
            for i in range(n)]


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak_gb(device: str) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 1e9 if device.startswith("cuda") else None


def measure(captioner, prepared: list, batch_size: int, batches: int) -> dict:
    """Model throughput on prepared clips: one warm-up batch, then ``batches`` timed batches."""
    import torch

    device = captioner.device
    captioner.caption(prepared[:batch_size])
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    n = batch_size * batches
    _sync(device)
    t0 = time.perf_counter()
    for i in range(0, n, batch_size):
        results = captioner.caption(prepared[i:i + batch_size])
        assert len(results) == len(prepared[i:i + batch_size])
    _sync(device)
    dt = time.perf_counter() - t0
    new_tokens = captioner.settings.max_new_tokens
    return {"batch_size": batch_size, "clips": n, "seconds": dt, "clips_per_s": n / dt,
            "generated_tokens_per_s": n * new_tokens / dt, "peak_gpu_gb": _peak_gb(device)}


def ceiling(model, prompt_tokens: int, new_tokens: int, batch_size: int, tflops: float, tbps: float) -> dict:
    """Clips/s the hardware allows: prefill + audio encoding FLOPs, plus weight reads per decode step."""
    audio = sum(p.numel() for n, p in model.named_parameters() if "audio_tower" in n or "projector" in n)
    embed = model.get_input_embeddings().weight.numel()
    total = sum(p.numel() for p in model.parameters())
    positions = model.config.audio_config.max_source_positions
    flops = 2 * (total - audio - embed) * prompt_tokens + 2 * audio * positions
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    seconds = flops / (tflops * 1e12) + weight_bytes / (tbps * 1e12) * new_tokens / batch_size
    return {"tflop_per_clip": flops / 1e12, "weights_gb": weight_bytes / 1e9, "clips_per_s": 1 / seconds,
            "assumes": f"{tflops} TFLOP/s, {tbps} TB/s, batch {batch_size}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_job(model_dir: Path, n: int, seconds: float, args: argparse.Namespace, random_weights: bool) -> dict:
    """``accelerate launch -m captioner`` with two processes on ``n`` fresh clips; wall time end to end."""
    with tempfile.TemporaryDirectory() as tmp:
        write_music_run(Path(tmp), n, seconds=seconds, rate=RATE, row_group=8)
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_ip", "127.0.0.1", "--main_process_port", str(free_port()),
               "-m", "captioner", "--input", tmp, "--backend", "audio-llm", "--model", str(model_dir),
               "--batch_size", str(args.job_batch_size), "--max_new_tokens", str(args.max_new_tokens),
               "--min_new_tokens", str(args.max_new_tokens), "--no-do_sample", "--retries", "0",
               "--no_progress", "--no_merge", *(["--random_weights"] if random_weights else []),
               *(["--loader_workers", str(args.loader_workers)] if args.loader_workers is not None else [])]
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=os.pathsep.join(
            [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
        if args.device == "cpu":
            env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=args.job_timeout)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"the two-process job failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        records = [json.loads(line) for p in sorted((Path(tmp) / "captions").glob("rank-*.jsonl"))
                   for line in p.read_text().splitlines()]
        ranks = len(list((Path(tmp) / "captions").glob("rank-*.jsonl")))
        summary = json.loads((Path(tmp) / "captions" / "summary.json").read_text())
    if len(records) != n or ranks != 2:
        raise RuntimeError(f"the job recorded {len(records)} of {n} clips from {ranks} ranks")
    # caption_seconds: the slowest rank's captioning loop (loader workers, model, records), no start-up
    return {"clips": n, "wall_s": wall, "ranks": ranks, "caption_seconds": summary["caption_seconds"],
            "clips_per_s": n / summary["caption_seconds"]}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.benchmarks.audio_llm_speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=sorted(MODELS), default="tiny", help="which configuration to build")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: cuda when available")
    p.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 8, 32, 64], help="batch sizes to time")
    p.add_argument("--batches", type=int, default=2, help="timed batches per batch size (after one warm-up)")
    p.add_argument("--seconds", type=float, default=10.0, help="clip length")
    p.add_argument("--max_new_tokens", type=int, default=64, help="tokens generated per clip (fixed)")
    p.add_argument("--knobs", action="store_true",
                   help="also time the best batch size with a static KV cache and with eager attention")
    p.add_argument("--job_clips", type=int, nargs="*", default=[],
                   help="clip counts for the two-process job (none: no job run)")
    p.add_argument("--job_batch_size", type=int, default=32, help="--batch_size of the job")
    p.add_argument("--loader_workers", type=int, help="--loader_workers of the job (default: the job's)")
    p.add_argument("--job_timeout", type=float, default=480, help="seconds before a job launch is abandoned")
    p.add_argument("--record", help="runs/bench/<name> to write (default audio_llm_<model>_<device>.json)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    import torch

    args = parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    make_folder, random_weights = MODELS[args.model]
    extra = {"max_new_tokens": args.max_new_tokens, "min_new_tokens": args.max_new_tokens, "do_sample": False,
             "retries": 0, "device": args.device, "random_weights": random_weights}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = make_folder(Path(tmp) / args.model)
        t0 = time.perf_counter()
        cap = build(CaptionerConfig("audio-llm", str(model_dir), extra))
        load_s = time.perf_counter() - t0
        record = run_in_process(cap, args)
        record.update(model=args.model, device=args.device, captioner=cap.id, load_s=load_s,
                      dtype=str(cap.model.dtype), attention=cap.model.config._attn_implementation,
                      gpu=torch.cuda.get_device_name() if args.device == "cuda" else None,
                      versions={"torch": torch.__version__, "transformers": _version("transformers")})
        del cap
        if args.device == "cuda":
            torch.cuda.empty_cache()
        record["job"] = [run_job(model_dir, n, args.seconds, args, random_weights) for n in args.job_clips]
    path = write_record(args.record or f"audio_llm_{args.model}_{args.device}.json", record)
    print(report(record) + f"\nrecord: {path}")
    return record


def run_in_process(cap, args: argparse.Namespace) -> dict:
    n = max(args.batch_sizes) * args.batches
    clips = bench_clips(n, args.seconds)
    t0 = time.perf_counter()
    prepared = [cap.preparer(c) for c in clips[:8]]
    prepare_s = (time.perf_counter() - t0) / len(prepared)
    prepared += [cap.preparer(c) for c in clips[8:]]
    prompt_tokens = len(cap.tokenizer(cap.prompt(clips[0]))["input_ids"]) - 1 + prepared[0].n_audio_tokens
    rows = [measure(cap, prepared, bs, args.batches) for bs in args.batch_sizes]
    best = max(rows, key=lambda r: r["clips_per_s"])
    one = next((r for r in rows if r["batch_size"] == 1), rows[0])
    record = {"seconds_per_clip": args.seconds, "max_new_tokens": args.max_new_tokens, "prompt_tokens": prompt_tokens,
              "prepare_s_per_clip_one_core": prepare_s, "batches": rows, "best_batch_size": best["batch_size"],
              "best_vs_batch_1": best["clips_per_s"] / one["clips_per_s"], "knobs": []}
    if args.device == "cuda":
        record["ceiling"] = ceiling(cap.model, prompt_tokens, args.max_new_tokens, best["batch_size"],
                                    H200_TFLOPS, H200_TBPS)
        record["share_of_ceiling"] = best["clips_per_s"] / record["ceiling"]["clips_per_s"]
    if args.knobs:
        record["knobs"] = knob_rows(cap, prepared, best["batch_size"], args.batches)
    return record


def knob_rows(cap, prepared: list, batch_size: int, batches: int) -> list[dict]:
    """The best batch size again with one knob changed (same model object, settings swapped)."""
    from dataclasses import replace

    rows, base, attention = [], cap.settings, cap.model.config._attn_implementation
    for name, value in (("cache_implementation", "static"), ("attn_implementation", "eager")):
        cap.settings = replace(base, **{name: value})
        if name == "attn_implementation":
            cap.model.set_attn_implementation(value)
        try:
            rows.append({"knob": f"{name}={value}", **measure(cap, prepared, batch_size, batches)})
        except Exception as e:  # noqa: BLE001 - a knob the model does not support is reported, not fatal
            rows.append({"knob": f"{name}={value}", "error": f"{type(e).__name__}: {str(e)[:300]}"})
        finally:
            cap.settings = base
            cap.model.set_attn_implementation(attention)
    return rows


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def report(r: dict) -> str:
    lines = [f"audio-llm {r['model']} on {r['device']} ({r['gpu'] or 'CPU'}, {r['dtype']}, {r['attention']}), "
             f"{r['seconds_per_clip']:.0f} s clips, {r['max_new_tokens']} new tokens, prompt {r['prompt_tokens']} tokens; "
             f"load {r['load_s']:.1f} s; prepare {r['prepare_s_per_clip_one_core'] * 1000:.0f} ms/clip/core"]
    for b in r["batches"]:
        mem = f", peak {b['peak_gpu_gb']:.1f} GB" if b["peak_gpu_gb"] is not None else ""
        lines.append(f"  batch {b['batch_size']:>3}: {b['clips_per_s']:8.2f} clips/s, "
                     f"{b['generated_tokens_per_s']:9.1f} tokens/s{mem}")
    lines.append(f"  best batch {r['best_batch_size']}: {r['best_vs_batch_1']:.1f}x batch 1")
    if "ceiling" in r:
        lines.append(f"  ceiling {r['ceiling']['clips_per_s']:.0f} clips/s ({r['ceiling']['assumes']}); "
                     f"measured {r['share_of_ceiling']:.0%} of it")
    for k in r["knobs"]:
        lines.append(f"  {k['knob']}: " + (f"{k['clips_per_s']:.2f} clips/s" if "clips_per_s" in k else k["error"]))
    for j in r["job"]:
        lines.append(f"  two-process job: {j['clips']} clips, {j['clips_per_s']:.2f} clips/s captioning "
                     f"({j['caption_seconds']:.1f} s; {j['wall_s']:.1f} s wall with start-up)")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
