"""IMEMNet's own input files for a rehearsal: the real ones as they are, or id-compatible stand-ins.

Lines and rows are kept as raw text (bad lines, repeated lines and duplicate ids included), so the
pipeline's readers meet exactly what users give them; only the ids are looked at here, to choose
which songs and images a reduced rehearsal keeps.
"""
from __future__ import annotations

import csv
import hashlib
import io
import random
from dataclasses import dataclass
from pathlib import Path

IMAGE_VA, TEST, VALIDATION = "image_va.csv", "test_matching.txt", "val_matching.txt"
IMAGE_HEADER = ",img,valence,arousal"
REPO_SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "imemnet"


@dataclass(frozen=True)
class ImageRow:
    """One row of image_va.csv as written: its index cell, id and VA text."""

    index: str
    image_id: str
    valence: str
    arousal: str


@dataclass
class ImemnetInputs:
    """image_va.csv rows and the matching files' lines, and where they came from."""

    images: list[ImageRow]
    matching: dict[str, list[str]]  # split name in a --matching_file flag -> raw lines
    origin: str  # the folder read, or "stand-ins"


def line_ids(line: str) -> tuple[str, str] | None:
    """(clip id, image id) of a matching line; None when it has fewer than two fields."""
    fields = line.split()
    return (fields[0], fields[1]) if len(fields) >= 2 else None


def song_of(clip_id: str) -> str:
    return clip_id.rpartition("-")[0] or clip_id


def clip_index(clip_id: str) -> int | None:
    tail = clip_id.rpartition("-")[2]
    return int(tail) if tail.isdigit() else None


def load(folder: Path) -> ImemnetInputs:
    """The real files of ``folder`` (image_va.csv, test_matching.txt, val_matching.txt)."""
    text = (folder / IMAGE_VA).read_text(encoding="utf-8-sig")
    reader = csv.reader(io.StringIO(text))
    next(reader, None)
    images = [ImageRow(*(r + ["", "", "", ""])[:4]) for r in reader if r]
    matching = {split: [ln for ln in (folder / name).read_text(encoding="utf-8-sig").splitlines() if ln.strip()]
                for split, name in (("test", TEST), ("validation", VALIDATION))}
    return ImemnetInputs(images, matching, str(folder))


def find(folder: str | None) -> ImemnetInputs:
    """Real files from ``folder`` (or ../shared next to the repository) when all three exist, else stand-ins."""
    where = Path(folder) if folder else REPO_SHARED
    if all((where / n).is_file() for n in (IMAGE_VA, TEST, VALIDATION)):
        return load(where)
    if folder:
        raise FileNotFoundError(f"{folder}: expected {IMAGE_VA}, {TEST} and {VALIDATION} there")
    return stand_ins()


# -- stand-ins: the shape measured on IMEMNet's files, with made-up ids of the same families ----------

SHAPE = {
    "image_ids": 24_744, "iaps": 1_174, "naps": 510, "coco_train": 12_616, "coco_val": 3_880,
    "duplicate_rows": (3, 3, 2, 3, 3, 3, 3, 2),  # 8 ids over 22 rows: 14 rows more than ids
    "test_songs": 360, "val_songs": 90, "full_test_songs": 19, "full_val_songs": 4,
    "test_lines": 26_115, "val_lines": 8_795, "shared_lines": 4_110, "repeated": {"test": 9, "validation": 7},
    "test_only_images": 3_762, "shared_images": 1_175, "val_only_images": 103,
    "missing": {"test": 155, "validation": 45},
    # highest clip index of the 19 full-length songs the test file uses
    "full_max_index": (50, 85, 95, 95, 106, 112, 113, 116, 119, 127, 128, 131, 143, 149, 155, 199, 200, 266, 312),
}
NAPS_CATEGORIES = ("Animals", "Faces", "Landscapes", "Objects", "People")


def _rng(*parts: object) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()[:8], "big"))


def _image_ids(rng: random.Random) -> list[str]:
    s = SHAPE
    iaps = [str(i) for i in sorted(rng.sample(range(1000, 10000), s["iaps"]))]
    naps = [f"{NAPS_CATEGORIES[i % 5]}_{i // 5 + 1:03d}_{'hv'[i % 2]}" for i in range(s["naps"])]
    coco_t = [f"COCO_train2014_{n:012d}" for n in sorted(rng.sample(range(1, 600_000), s["coco_train"]))]
    coco_v = [f"COCO_val2014_{n:012d}" for n in sorted(rng.sample(range(1, 600_000), s["coco_val"]))]
    n_frames = s["image_ids"] - len(iaps) - len(naps) - len(coco_t) - len(coco_v)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    frames = sorted({"frame_" + "".join(rng.choice(alphabet) for _ in range(16)) for _ in range(n_frames)})
    return iaps + naps + coco_t + coco_v + frames


def stand_ins(seed: int = 0) -> ImemnetInputs:
    """Id-compatible stand-ins with the real files' sizes, overlaps, repeats and missing images."""
    s, rng = SHAPE, _rng("rehearsal-stand-ins", seed)
    ids = _image_ids(rng)
    rng.shuffle(ids)
    rows = [ImageRow(str(i), x, f"{rng.random():.6f}", f"{rng.random():.6f}") for i, x in enumerate(ids)]
    for k, n in enumerate(s["duplicate_rows"]):  # the same id again with other VA, as in the real file
        rows += [ImageRow(str(len(rows)), rows[k * 97].image_id, f"{rng.random():.6f}", f"{rng.random():.6f}")
                 for _ in range(n - 1)]
    known = [r.image_id for r in rows[: len(ids)]]
    pool = iter(known)
    take = lambda n: [next(pool) for _ in range(n)]  # noqa: E731
    shared, test_only, val_only = take(s["shared_images"]), take(s["test_only_images"]), take(s["val_only_images"])
    missing = lambda n, tag: [f"frame_missing{tag}{i:05d}" for i in range(n)]  # noqa: E731
    test_only = test_only[: len(test_only) - s["missing"]["test"]] + missing(s["missing"]["test"], "t")
    val_only = val_only[: len(val_only) - s["missing"]["validation"]] + missing(s["missing"]["validation"], "v")
    songs = _songs(rng)
    val_songs, test_only_songs = songs[: s["val_songs"]], songs[s["val_songs"]:]
    val_lines = _lines(rng, val_songs, shared + val_only, s["val_lines"])
    test_lines = (_lines(rng, test_only_songs, test_only, s["test_lines"] - s["shared_lines"])
                  + rng.sample(val_lines, s["shared_lines"]))
    rng.shuffle(test_lines)
    matching = {"test": test_lines, "validation": val_lines}
    for split, n in s["repeated"].items():
        matching[split] = matching[split] + rng.sample(matching[split], n)
    return ImemnetInputs(rows, matching, "stand-ins")


def _songs(rng: random.Random) -> list[tuple[str, int]]:
    """(song id, highest clip index) of the test file's songs; the first ones are validation's too."""
    s = SHAPE
    excerpts = [(str(i), 21) for i in rng.sample(range(2, 2001), s["test_songs"] - s["full_test_songs"])]
    full = list(zip((str(i) for i in rng.sample(range(2001, 2059), s["full_test_songs"])), s["full_max_index"]))
    rng.shuffle(full)
    val = full[: s["full_val_songs"]] + excerpts[: s["val_songs"] - s["full_val_songs"]]
    rest = full[s["full_val_songs"]:] + excerpts[s["val_songs"] - s["full_val_songs"]:]
    return val + rest


def _lines(rng: random.Random, songs: list[tuple[str, int]], images: list[str], n: int) -> list[str]:
    out = []
    for _ in range(n):
        song, top = rng.choice(songs)
        out.append(f"{song}-{rng.randint(9, top)} {rng.choice(images)} {rng.random()!r}")
    return out
