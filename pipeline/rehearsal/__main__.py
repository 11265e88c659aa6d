"""``python -m pipeline.rehearsal``: write a rehearsal input tree and print the pipeline command for it."""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.rehearsal import deam_tree, images, inputs, plan

DEAM, IMAGES, BANK, RECORD = "DEAM", "images", "bank", "rehearsal.json"
MATCHING_NAMES = {"test": inputs.TEST, "validation": inputs.VALIDATION}


@dataclass
class Rehearsal:
    """What a rehearsal wrote: where, counts, preparation seconds per phase, and the command to run."""

    out: Path
    origin: str
    counts: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    command: list[str] = field(default_factory=list)


def _fraction(text: str) -> float:
    v = float(text)
    if not 0.0 < v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return v


def _count(text: str) -> int:
    v = int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipeline.rehearsal",
        description="Write IMEMNet-C's real inputs at their real size and shape with synthetic media: a DEAM "
        "folder (MP3, annotation CSVs), an image per id of image_va.csv, the matching files; then print the "
        "pipeline command that builds the dataset from them.")
    p.add_argument("--out", required=True, help="folder to write (DEAM/, images/, image_va.csv, matching files, "
                   "rehearsal.json); the pipeline command writes its dataset to OUT/run")
    p.add_argument("--fraction", type=_fraction, default=1.0,
                   help="share of DEAM's 1,802 songs and of image_va.csv's ids to write (default 1: full size)")
    p.add_argument("--songs", type=_count, default=None,
                   help="instead of --fraction: this many songs the matching files name (one full-length song among "
                   "them from 10 on)")
    p.add_argument("--images", type=_count, default=None,
                   help="image ids to write (default: --fraction of image_va.csv); with a number, matching lines "
                   "naming an image left out are left out too")
    p.add_argument("--imemnet_dir", default=None,
                   help="folder with IMEMNet's image_va.csv, test_matching.txt and val_matching.txt (default: "
                   "../shared/data/imemnet beside the repository when present, else generated stand-ins)")
    p.add_argument("--broken_songs", type=_count, default=2,
                   help="songs the matching files name whose audio is written undecodable, so pairs with a missing "
                   "clip occur (default 2)")
    p.add_argument("--bank_variants", type=_count, default=4,
                   help="distinct 45 s songs synthesised per VA quadrant; every song's audio is drawn from them (default 4)")
    p.add_argument("--image_size", type=int, default=64, help="side of the square JPEG images, px (default 64)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="processes for synthesis and image writing (default: all cores)")
    p.add_argument("--seed", type=int, default=0, help="seed for the synthetic audio, VA offsets and stand-ins")
    return p


def pipeline_command(out: Path, extra: tuple[str, ...] = ()) -> list[str]:
    """The README's real-data command, pointed at a rehearsal folder."""
    cmd = [sys.executable, "-m", "pipeline.run", "--source", "deam", "--input", str(out / DEAM),
           "--images_csv", str(out / inputs.IMAGE_VA)]
    cmd += [x for f in images.FOLDERS for x in ("--images_dir", str(out / IMAGES / f))]
    cmd += [x for split, name in MATCHING_NAMES.items() for x in ("--matching_file", f"{split}={out / name}")]
    return cmd + ["--captioner", "descriptor", "--output", str(out / "run"), *extra]


def write(args: argparse.Namespace) -> Rehearsal:
    """Write the rehearsal folder that ``args`` describe; returns its record (also in rehearsal.json)."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for ours in (DEAM, IMAGES, BANK):  # a previous rehearsal's songs would be read as songs of this one
        shutil.rmtree(out / ours, ignore_errors=True)
    t = time.perf_counter()
    found = inputs.find(args.imemnet_dir)
    if found.origin == "stand-ins":
        print("IMEMNet's files were not found: writing id-compatible stand-ins of their shape", file=sys.stderr)
    made = plan.make_plan(found, args.fraction, args.songs, args.images, args.broken_songs)
    r = Rehearsal(out, found.origin, seconds={"plan": time.perf_counter() - t})
    t = time.perf_counter()
    bank = deam_tree.build_bank(out / BANK, max(1, args.bank_variants), args.seed, args.workers)
    r.seconds["audio_bank"] = time.perf_counter() - t
    t = time.perf_counter()
    r.counts["deam"] = deam_tree.write_tree(out / DEAM, made.songs, bank, set(made.broken), args.seed)
    r.seconds["deam_tree"] = time.perf_counter() - t
    t = time.perf_counter()
    images.write_csv(out / inputs.IMAGE_VA, made.images)
    r.counts["images"] = images.write_images(out / IMAGES, made.images, args.image_size, args.workers)
    r.seconds["images"] = time.perf_counter() - t
    for split, name in MATCHING_NAMES.items():
        lines = made.matching.get(split, [])
        (out / name).write_text("".join(ln + "\n" for ln in lines), encoding="utf-8")
        r.counts[f"{split}_matching_lines"] = len(lines)
    r.seconds = {k: round(v, 2) for k, v in r.seconds.items()}
    r.seconds["total"] = round(sum(r.seconds.values()), 2)
    r.command = pipeline_command(out)
    record = {"origin": r.origin, "fraction": args.fraction, "songs_flag": args.songs, "images_flag": args.images,
              "counts": r.counts, "prepare_seconds": r.seconds, "pipeline_command": shlex.join(r.command)}
    (out / RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return r


def run(argv: list[str] | None = None) -> Rehearsal:
    return write(build_parser().parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    try:
        r = run(argv)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    d = r.counts["deam"]
    print(f"rehearsal in {r.out} from {r.origin}: {d['songs']} songs ({d['full_length']} full-length, "
          f"{len(d['broken_audio'])} with broken audio), {r.counts['images']['files']} images "
          f"({r.counts['images']['rows']} image_va.csv rows), {r.counts['test_matching_lines']} test and "
          f"{r.counts['validation_matching_lines']} validation matching lines; prepared in {r.seconds['total']:.1f} s")
    print("build the dataset from it:\n  " + shlex.join(r.command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
