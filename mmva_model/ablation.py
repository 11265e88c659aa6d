"""Ablations of MMVA's choices, each one train + evaluate command, summarised as a table.

    python -m mmva_model.ablation --data runs/demo-mmva          # all variants
    python -m mmva_model.ablation --variants full no-similarity  # some

Every row is reproducible on its own with the command the table prints next to it (the same
`train.py --set ...` overrides, then `python -m mmva_model.evaluate`). Writes
``<out>/ablation.json`` and ``<out>/ablation.md``.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np

from mmva_model import evaluate, train
from mmva_model.evaluation import jsonable

# The offline music encoders compared (each with the measured descriptors beside it).
MUSIC_CNN = ("model.music={name: logmel-cnn, frozen: true, options: {sample_rate: 16000, n_mels: 32, "
             "hop: 1024, channels: [8, 16, 32], cnn_dropout: 0.5}}")  # trained from scratch
MUSIC_MUSICNN = "model.music={name: musicnn, frozen: true}"  # the taggers' penultimate layers, frozen
# Variant -> config overrides on top of --config (default: offline).
VARIANTS: dict[str, list[str]] = {
    "full": [],  # the config as it is: random VA matching, MSE similarity, lambda = 1
    "no-similarity": ["loss.similarity_weight=0"],
    "contrastive": ["loss.similarity=contrastive"],
    "fixed-pairs": ["train.matching=fixed"],
    "music-cnn": [MUSIC_CNN],
    "music-musicnn": [MUSIC_MUSICNN],
    "music-musicnn-tags": ["model.music={name: musicnn, frozen: true, options: {layer: tags}}"],  # 100 probabilities
    "music-descriptors": ["model.music={name: logmel-cnn, frozen: true, options: {cnn: false}}"],  # no audio model
}
COLUMNS = ("music V", "music A", "image V", "image A", "caption V", "caption A",
           "ρ image-music", "ρ image-caption", "ρ music-caption", "image→music nDCG@10")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mmva_model.ablation", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="runs/demo-mmva", help="IMEMNet-C to train and test on (default: runs/demo-mmva)")
    p.add_argument("--config", default="offline", help="base config (default: offline)")
    p.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS),
                   help="variants to run (default: all)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra override applied to every variant (e.g. train.steps=100)")
    p.add_argument("--out", default="runs/ablation", help="where runs and the table go (default: runs/ablation)")
    p.add_argument("--split", default="test", help="split the table reports (default: test)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0],
                   help="train each variant once per seed; the table shows mean ± std (default: 0)")
    p.add_argument("--trust_remote_code", action="store_true",
                   help="passed to every train and evaluate run: allow the model code that the config's "
                        "encoders ask for (MERT in the paper config), at their pinned revision")
    return p


def train_argv(args: argparse.Namespace, variant: str, seed: int) -> list[str]:
    overrides = [*VARIANTS[variant], *args.overrides, *([f"train.seed={seed}"] if seed else [])]
    sets = [x for o in overrides for x in ("--set", o)]
    name = variant if not seed else f"{variant}-seed{seed}"
    trust = ["--trust_remote_code"] if getattr(args, "trust_remote_code", False) else []
    return ["--config", args.config, "--data", args.data, "--output_dir", str(Path(args.out) / name), *sets, *trust]


def row(metrics: dict) -> list[float | None]:
    va, rho = metrics["va"], metrics["similarity_spearman"]
    vals = [va[m][d]["r2"] for m in ("music", "image", "caption") for d in ("valence", "arousal")]
    vals += [rho["image-music"], rho["image-caption"], rho["music-caption"],
             metrics["retrieval"]["image->music"]["nDCG@10"]]
    return vals


def _cell(values: list[float | None]) -> str:
    vals = np.asarray([np.nan if v is None else v for v in values], dtype=float)
    if np.isnan(vals).all():
        return "–"
    if len(vals) == 1:
        return f"{vals[0]:.3f}"
    return f"{np.nanmean(vals):.3f} ± {np.nanstd(vals):.3f}"


def markdown(results: dict[str, list[dict]]) -> str:
    """One row per variant (mean ± std over seeds) with the command of its first seed."""
    head = "| variant | " + " | ".join(COLUMNS) + " | command |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for name, runs in results.items():
        per_column = list(zip(*(row(r["metrics"]) for r in runs)))
        cells = " | ".join(_cell(list(col)) for col in per_column)
        lines.append(f"| {name} | {cells} | `{runs[0]['command']}` |")
    return "\n".join(lines)


def run(argv: list[str] | None = None) -> dict[str, list[dict]]:
    """Train and evaluate each variant per seed; returns {variant: [{seed, command, metrics, best_step}]}."""
    args = build_parser().parse_args(argv)
    results: dict[str, list[dict]] = {}
    for variant in args.variants:
        for seed in args.seeds:
            targv = train_argv(args, variant, seed)
            result = train.run([*targv, "--no_progress", "--overwrite"])
            ev = evaluate.run(["--checkpoint", str(result.output_dir), "--data", args.data,
                               "--split", args.split, "--quiet",
                               *(["--trust_remote_code"] if getattr(args, "trust_remote_code", False) else [])])
            command = "python mmva_model/train.py " + shlex.join(targv)
            results.setdefault(variant, []).append({"seed": seed, "command": command, "best_step": result.best_step,
                                                    "metrics": jsonable(ev.metrics)})
            print(f"{variant} seed {seed}: done (best step {result.best_step})", file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    table = markdown(results)
    (out / "ablation.md").write_text(table + "\n", encoding="utf-8")
    print(table)
    return results


def main(argv: list[str] | None = None) -> int:
    run(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
