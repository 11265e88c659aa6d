"""``python -m mmva_model.evaluate``: score an MMVA checkpoint on one split of IMEMNet-C.

Writes ``metrics.json`` (VA regression per modality, similarity Spearman per cross-modal pair,
retrieval, and the Spearman against each IMEMNet matching file given) and ``va_scatter.png``,
and prints a compact table.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mmva_model.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from mmva_model.config import CROSS_PAIRS, MODALITIES, ConfigError
from mmva_model.data import DEFAULT_DATA, DataError, SplitData, load_pairs, load_split, pair_rows
from mmva_model.evaluation import Predictions, jsonable, predict_split, score
from mmva_model.features import DEFAULT_CACHE, Frozen, build_split_cache
from mmva_model.imemnet import MatchingError, MatchingFile, matching_spearman, read_matching
from mmva_model.metrics import VA_DIMS
from mmva_model.plots import va_scatter
from mmva_model.progress import hf_progress

METRICS_FILE, SCATTER_FILE = "metrics.json", "va_scatter.png"
USER_ERRORS = (CheckpointError, ConfigError, DataError, MatchingError)


@dataclass
class EvalResult:
    metrics: dict[str, Any]  # what metrics.json holds
    out_dir: Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mmva_model.evaluate",
                                description="Score an MMVA checkpoint on one split of IMEMNet-C.")
    p.add_argument("--checkpoint", required=True,
                   help="checkpoint folder (config.yaml + model.safetensors) or a training folder "
                        "(its best/, else last/)")
    p.add_argument("--data", default=DEFAULT_DATA,
                   help="pipeline run folder, built dataset folder or Hugging Face dataset id "
                        f"(default {DEFAULT_DATA})")
    p.add_argument("--split", default="test", help="split to evaluate: train, validation or test (default test)")
    p.add_argument("--matching", nargs="+", default=[], metavar="FILE",
                   help="IMEMNet matching files (music_clip_id image_id matching_score per line); each is "
                        "scored over the pairs whose clip and image are in the evaluated split")
    p.add_argument("--out", default=None,
                   help="output folder for metrics.json and va_scatter.png (default <checkpoint>/eval-<split>)")
    p.add_argument("--batch_size", type=_positive_int, default=None,
                   help="rows per forward pass (default: the checkpoint config's train.eval_batch)")
    p.add_argument("--cache_dir", default=DEFAULT_CACHE,
                   help=f"frozen-feature cache folder, shared with training (default {DEFAULT_CACHE})")
    p.add_argument("--cache", action=argparse.BooleanOptionalAction, default=True,
                   help="reuse/store frozen-backbone features in --cache_dir when the checkpoint's config has "
                        "train.cache_features (default on; --no-cache runs every backbone live)")
    p.add_argument("--hf_cache_dir", default=None,
                   help="datasets cache for the Arrow copy of a Hub dataset's tables (default: the Hugging "
                        "Face cache; a local folder is read in place, with no copy)")
    p.add_argument("--device", default=None, help="torch device (default cuda when available, else cpu)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors (no table, no progress bars)")
    p.add_argument("--trust_remote_code", action="store_true",
                   help="run model code shipped with the weights of encoders whose config asks for it "
                        "(MERT in the paper config; Hub ids only at the config's pinned options.revision). "
                        "Off by default: a config or checkpoint alone never runs remote code")
    return p


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def run(argv: list[str] | None = None) -> EvalResult:
    """Evaluate a checkpoint on one split; write metrics.json and va_scatter.png; return them."""
    return evaluate(build_parser().parse_args(argv))


def evaluate(args: argparse.Namespace) -> EvalResult:
    """:func:`run` on parsed flags."""
    with hf_progress(not args.quiet):
        return _evaluate(args)


def _evaluate(args: argparse.Namespace) -> EvalResult:
    matching = [read_matching(f) for f in args.matching]  # a bad file fails before any model work
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    ckpt = load_checkpoint(args.checkpoint, device=device, trust_remote_code=args.trust_remote_code)
    data = load_split(args.data, args.split, args.hf_cache_dir)
    batch_size = args.batch_size or ckpt.model.cfg.train.eval_batch
    cached = _cached_features(ckpt, data, args, device) if args.cache else {}
    preds = predict_split(ckpt.model, data, device=device, batch_size=batch_size, cached=cached)
    metrics = {
        "checkpoint": str(ckpt.path),
        "config": ckpt.model.cfg.name,
        "checkpoint_meta": {k: v for k, v in ckpt.meta.items() if k != "fingerprints"},
        "data": args.data,
        "split": args.split,
        "counts": {"clips": len(data.music), "images": len(data.images)},
        "device": str(device),
        "cached_tables": sorted(cached),
        **score(preds),
        "caption_mood_from_labels": caption_mood_from_labels(data.music.dataset),
        "matching": {str(m.path): _matching_entry(m, preds) for m in matching},
        "pairs": _pairs_entry(load_pairs(args.data, args.split, args.hf_cache_dir), data, preds),
    }
    metrics = jsonable(metrics)
    out = Path(args.out) if args.out else Path(args.checkpoint) / f"eval-{args.split}"
    out.mkdir(parents=True, exist_ok=True)
    (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    va_scatter(preds, out / SCATTER_FILE)
    return EvalResult(metrics, out)


# Captioners whose mood words come from the clip's own VA label, unless their id records "mood-none"
# (`--caption_mood none`); the captioner package says the same in its audit, which this package may not import.
LABEL_MOOD_BACKENDS = ("tags-llm", "descriptor")


def caption_mood_from_labels(music) -> float | None:
    """Share of the split's captions whose mood words were derived from the VA labels (None: unknown)."""
    if "captioner" not in music.column_names or len(music) == 0:
        return None
    ids = music.select_columns(["captioner"])["captioner"]
    hits = [str(c).split("/", 1)[0] in LABEL_MOOD_BACKENDS and "mood-none" not in str(c) for c in ids]
    return sum(hits) / len(hits)


def _cached_features(ckpt: Checkpoint, data: SplitData, args: argparse.Namespace,
                     device: torch.device) -> dict[str, Frozen]:
    """Frozen outputs per table from the feature cache, for tables with a frozen backbone, when the
    checkpoint's config caches features (as training did, so its cache entries are reused)."""
    if not ckpt.model.cfg.train.cache_features:
        return {}
    return build_split_cache(ckpt.model, data, frozen_only=True, cache_dir=args.cache_dir,
                             device=device, progress=not args.quiet)


def _matching_entry(matching: MatchingFile, preds: dict[str, Predictions]) -> dict[str, Any]:
    music, image = preds["music"], preds["image"]
    result = matching_spearman(matching, (music.ids, music.embedding), (image.ids, image.embedding))
    return {**result, "lines": matching.lines, "problems": len(matching.problems)}


def _pairs_entry(pairs, data: SplitData, preds: dict[str, Predictions]) -> dict[str, Any] | None:
    """The split's own pairs table scored like a matching file, with the pairs it drops and why."""
    if pairs is None:
        return None
    kept, dropped = pair_rows(pairs, data.music, data.images)
    table = MatchingFile(Path("pairs"), pairs.rename(columns={"score": "matching_score"}), len(pairs))
    rho = matching_spearman(table, (preds["music"].ids, preds["music"].embedding),
                            (preds["image"].ids, preds["image"].embedding))
    return {"spearman": rho["spearman"], "rows": len(pairs), "used": len(kept), "dropped": dropped}


def _modality_order(modality: str) -> int:
    return MODALITIES.index(modality) if modality in MODALITIES else len(MODALITIES)


def _num(x: float | None, width: int = 7) -> str:
    return f"{x:>{width}.3f}" if x is not None else f"{'n/a':>{width}}"


def render(result: EvalResult) -> str:
    """The compact human summary ``main`` prints."""
    m = result.metrics
    lines = [f"{m['config']} checkpoint {m['checkpoint']} on {m['data']} [{m['split']}]: "
             f"{m['counts']['clips']} clips, {m['counts']['images']} images"]
    lines.append(f"{'modality':<9}{'n':>6}" + "".join(
        f"{d[0].upper() + ' ' + k:>9}" for d in VA_DIMS for k in ("R²", "CCC", "RMSE")))
    for modality in sorted(m["va"], key=_modality_order):
        per = m["va"][modality]
        cells = "".join(_num(per[d][k], 9) for d in VA_DIMS for k in ("r2", "ccc", "rmse"))
        lines.append(f"{modality:<9}{m['n'][modality]:>6}{cells}")
        if modality == "caption" and m.get("caption_mood_from_labels"):
            lines.append(f"  note: {m['caption_mood_from_labels']:.0%} of these captions name the mood of their own VA "
                         "label (--caption_mood labels): caption->VA here is not an independent measurement")
    lines.append("similarity Spearman: " + "  ".join(
        f"{a}-{b} {_num(m['similarity_spearman'][f'{a}-{b}'], 0)}" for a, b in CROSS_PAIRS))
    for task, r in m["retrieval"].items():
        lines.append(f"retrieval {task:<15}" + "  ".join(f"{k} {_num(v, 0)}" for k, v in r.items()))
    for path, e in m["matching"].items():
        lines.append(f"matching {path}: Spearman {_num(e['spearman'], 0)} over {e['pairs_present']}/"
                     f"{e['pairs_total']} pairs present ({e['problems']} problem lines skipped)")
    if m.get("pairs"):
        p = m["pairs"]
        dropped = "; dropped " + ", ".join(f"{n} {r}" for r, n in sorted(p["dropped"].items())) if p["dropped"] else ""
        lines.append(f"pairs table: Spearman {_num(p['spearman'], 0)} over {p['used']}/{p['rows']} pairs{dropped}")
    lines.append(f"wrote {result.out_dir / METRICS_FILE} and {result.out_dir / SCATTER_FILE}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: evaluate and print the table; user errors exit 2 with one line."""
    args = build_parser().parse_args(argv)
    try:
        result = evaluate(args)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
