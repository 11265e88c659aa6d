"""Music-image pairs: IMEMNet matching files, pairs scored from VA, and the check of both.

IMEMNet's matching files hold ``music_clip_id image_id matching_score`` per line (space
separated, no header, score in [0, 1]). Without them, :func:`score_pairs_from_va` draws images
for each clip at random -- MMVA's "random VA matching" -- and scores each pair with
:func:`dataset_card.schema.va_similarity`.
"""
from __future__ import annotations

import hashlib
import math
import random
from collections import Counter
from collections.abc import Collection, Iterable
from pathlib import Path

from dataset_card.schema import SPLITS, va_similarity
from pipeline.sources.base import SourceItems
from pipeline.sources.tables import RowError, parse_float, parse_id
from pipeline.types import Failure, PairTask

STAGE = "read_pairs"
CHECK_STAGE = "pairs"
SPLIT_ALIASES = {"val": "validation", "valid": "validation", "dev": "validation"}


def pair_id(music_clip_id: str, image_id: str) -> str:
    """The item id of a pair in failures: ``"<clip>|<image>"``."""
    return f"{music_clip_id}|{image_id}"


def normalise_split(split: str) -> str:
    """``split`` as one of dataset_card.schema.SPLITS ("val" -> "validation"); ValueError otherwise."""
    s = SPLIT_ALIASES.get(split.strip().lower(), split.strip().lower())
    if s not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLITS)} (or 'val')")
    return s


def read_matching_file(path: str | Path, split: str) -> SourceItems:
    """PairTasks of one IMEMNet matching file, all in ``split``; bad lines become failures.

    Failures (kind "pair"): "malformed_row" (not 3 fields), "bad_id", "bad_score" (non-finite or
    outside [0, 1]), "duplicate_id" (the same clip-image pair again; the first line is kept).
    """
    split = normalise_split(split)
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (FileNotFoundError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read matching file ({e})") from None
    out = SourceItems()
    seen: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue  # a blank line is not a record
        try:
            pair = _parse_line(line, split)
        except RowError as e:
            out.failures.append(Failure(f"{path.name}:line{n}", STAGE, e.error_type, str(e), kind="pair"))
            continue
        key = pair_id(pair.music_clip_id, pair.image_id)
        if key in seen:
            out.failures.append(Failure(key, STAGE, "duplicate_id",
                                        f"{path.name}:line{n}: pair already on line {seen[key]}", kind="pair"))
            continue
        seen[key] = n
        out.pairs.append(pair)
    return out


def _parse_line(line: str, split: str) -> PairTask:
    """One ``clip image score`` line as a PairTask, or RowError."""
    fields = line.split()
    if len(fields) != 3:
        raise RowError("malformed_row", f"{len(fields)} fields, expected 'music_clip_id image_id matching_score'")
    clip = parse_id(fields[0], "music_clip_id")
    image = parse_id(fields[1], "image_id")
    score = parse_float(fields[2], "matching_score", "bad_score")
    if not 0.0 <= score <= 1.0:
        raise RowError("bad_score", f"matching_score {score!r} outside [0, 1]")
    return PairTask(clip, image, score, split)


def _rng(seed: int, clip_id: str) -> random.Random:
    """A generator that depends only on (seed, clip id), so input order never changes a draw."""
    digest = hashlib.sha256(f"{seed}:{clip_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def score_pairs_from_va(
    clips: Iterable[tuple[str, str, float, float]],
    images: Iterable[tuple[str, str, float, float]],
    per_clip: int,
    seed: int,
) -> list[PairTask]:
    """For each clip, ``per_clip`` images of the same split drawn at random, scored from VA.

    ``clips`` and ``images`` are ``(id, split, valence, arousal)``. Draws are seeded by
    (seed, clip id) over the split's images sorted by id, and the result is sorted by clip id,
    so the output is the same whatever order the inputs come in. A split with fewer images
    than ``per_clip`` gives all of them. Duplicate ids raise ValueError (ambiguous VA).
    """
    if per_clip < 0:
        raise ValueError(f"per_clip must be >= 0, got {per_clip}")
    pools: dict[str, list[tuple[str, float, float]]] = {}
    for image_id, split, v, a in _unique(images, "image"):
        pools.setdefault(split, []).append((image_id, v, a))
    for pool in pools.values():
        pool.sort()
    out: list[PairTask] = []
    for clip_id, split, v, a in sorted(_unique(clips, "clip"), key=lambda c: c[0]):
        pool = pools.get(split, [])
        for image_id, iv, ia in _rng(seed, clip_id).sample(pool, min(per_clip, len(pool))):
            out.append(PairTask(clip_id, image_id, float(va_similarity((v, a), (iv, ia))), split))
    return out


def _unique(rows: Iterable[tuple], what: str) -> list[tuple]:
    """``rows`` as a list; ValueError if an id appears twice."""
    rows = list(rows)
    dupes = sorted(i for i, n in Counter(r[0] for r in rows).items() if n > 1)
    if dupes:
        raise ValueError(f"duplicate {what} ids in score_pairs_from_va: {dupes[:10]}")
    for r in rows:
        if not (math.isfinite(r[2]) and math.isfinite(r[3])):
            raise ValueError(f"{what} {r[0]!r} has non-finite VA {r[2:4]}")
    return rows


def filter_pairs(
    pairs: Iterable[PairTask], clip_ids: Collection[str], image_ids: Collection[str]
) -> tuple[list[PairTask], list[Failure]]:
    """Keep pairs whose clip and image are in the written tables; fail the others (kind "pair")."""
    kept, failures = [], []
    for p in pairs:
        failure = check_pair(p, p.music_clip_id in clip_ids, p.image_id in image_ids)
        (kept if failure is None else failures).append(failure or p)
    return kept, failures


def check_pair(p: PairTask, clip_ok: bool, image_ok: bool) -> Failure | None:
    """The failure of a pair whose clip or image is not in the written tables; None when both are."""
    if clip_ok and image_ok:
        return None
    error = "unknown_clip" if not clip_ok else "unknown_image"
    missing = [f"clip {p.music_clip_id}"] * (not clip_ok) + [f"image {p.image_id}"] * (not image_ok)
    return Failure(pair_id(p.music_clip_id, p.image_id), CHECK_STAGE, error,
                   f"{' and '.join(missing)} not in the output tables", kind="pair")
