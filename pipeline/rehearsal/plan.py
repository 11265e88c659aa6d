"""Which DEAM songs, images and matching lines a rehearsal writes, at full size or reduced.

DEAM has 1,802 songs: 1,744 excerpts of 45 s (ids up to 2000, clip indices 9..21) and 58
full-length songs (ids 2001-2058). Songs the matching files name keep their ids; the others are
filled in from the free ids. A full-length song is long enough for the highest clip index a
matching line gives it; the full-length songs no line names share what is left of IMEMNet-C's
25,944 clips. A reduced rehearsal keeps a fraction of the songs (the same songs whatever else is
asked: chosen by a hash of the id), the matching lines on them, the images those lines name, and
images from the rest of image_va.csv up to the same fraction.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

from pipeline.rehearsal.inputs import ImageRow, ImemnetInputs, clip_index, line_ids, song_of

EXCERPTS, FULL_IDS = 1_744, tuple(str(i) for i in range(2001, 2059))
EXCERPT_TOP = 21  # 45 s excerpt: clips 9..21 on the 5/3 s grid
FIRST_INDEX = 9  # annotations start at 15 s = clip 9
TARGET_CLIPS = 25_944  # IMEMNet-C's clip count
HOP_S, CLIP_S, ANNOTATION_START_S = 5.0 / 3.0, 10.0, 15.0


def _order(song_or_image: str) -> str:
    return hashlib.sha256(f"rehearsal:{song_or_image}".encode()).hexdigest()


@dataclass(frozen=True)
class Song:
    """One DEAM song to write; ``top`` is its highest clip index (21 for an excerpt)."""

    song_id: str
    top: int
    matched: bool

    @property
    def full(self) -> bool:
        return self.song_id in FULL_IDS

    @property
    def annotated_end_s(self) -> float:
        """End of the annotated span: a whole number of 0.5 s samples from 15 s reaching clip ``top``'s end."""
        need = self.top * HOP_S + CLIP_S - ANNOTATION_START_S
        return ANNOTATION_START_S + 0.5 * math.ceil(need / 0.5 - 1e-6)


@dataclass
class Plan:
    songs: list[Song]
    images: list[ImageRow]  # rows of image_va.csv to write (duplicates included), in file order
    matching: dict[str, list[str]]
    broken: list[str] = field(default_factory=list)  # song ids written with undecodable audio


def universe(inputs: ImemnetInputs) -> list[Song]:
    """All 1,802 DEAM songs of the rehearsal, in id order."""
    top: dict[str, int] = {}
    for lines in inputs.matching.values():
        for ids in filter(None, map(line_ids, lines)):
            song, index = song_of(ids[0]), clip_index(ids[0])
            if song.isdigit() and index is not None:
                top[song] = max(top.get(song, 0), index)
    matched_excerpts = sorted((s for s in top if s not in FULL_IDS), key=int)
    free = sorted((str(i) for i in range(2, 2001) if str(i) not in top), key=_order)
    excerpts = matched_excerpts + free[: max(0, EXCERPTS - len(matched_excerpts))]
    songs = [Song(s, EXCERPT_TOP, True) for s in matched_excerpts]
    songs += [Song(s, EXCERPT_TOP, False) for s in excerpts[len(matched_excerpts):]]
    spare = [s for s in FULL_IDS if s not in top]
    used = len(excerpts) * (EXCERPT_TOP - FIRST_INDEX + 1) + sum(top[s] - FIRST_INDEX + 1 for s in FULL_IDS if s in top)
    each = max(1, round((TARGET_CLIPS - used) / len(spare))) if spare else 0
    songs += [Song(s, top[s], True) if s in top else Song(s, FIRST_INDEX + each - 1, False) for s in FULL_IDS]
    return sorted(songs, key=lambda s: int(s.song_id))


def make_plan(inputs: ImemnetInputs, fraction: float = 1.0, n_songs: int | None = None,
              n_images: int | None = None, broken: int = 2) -> Plan:
    """The songs, image rows and matching lines of a rehearsal of ``fraction`` (or of ``n_songs``)."""
    songs = universe(inputs)
    repeated = _repeated_lines(inputs.matching)
    # a tiny rehearsal keeps songs with repeated lines (the readers' duplicate path) and a song of
    # each matching file (so every split has music)
    preferred = {song_of(ids[0]): 1 for ids in repeated}
    for lines in inputs.matching.values():
        named = sorted({song_of(ids[0]) for ids in filter(None, map(line_ids, lines))}, key=_order)
        preferred.update({s: 0 for s in named[:1]})
    kept = _pick_songs(songs, fraction, n_songs, preferred)
    keep_ids = {s.song_id for s in kept}
    matching = {split: [ln for ln in lines if (ids := line_ids(ln)) is None or song_of(ids[0]) in keep_ids]
                for split, lines in inputs.matching.items()}
    all_ids = list(dict.fromkeys(r.image_id for r in inputs.images))
    target = n_images if n_images is not None else round(fraction * len(all_ids))
    first = [ids[1] for ids in repeated if song_of(ids[0]) in keep_ids]
    images = _pick_images(inputs.images, all_ids, matching, target, first, named_share=None if n_images is None else 0.6)
    if n_images is not None:  # a fixed budget: keep only lines whose image is kept (or absent anyway)
        have, listed = {r.image_id for r in images}, set(all_ids)
        matching = {split: [ln for ln in lines if (ids := line_ids(ln)) is None or ids[1] in have
                            or ids[1] not in listed] for split, lines in matching.items()}
    candidates = sorted((s for s in kept if s.matched and not s.full), key=lambda s: _order(s.song_id))
    return Plan(kept, images, matching, [s.song_id for s in candidates[:broken]])


def _repeated_lines(matching: dict[str, list[str]]) -> list[tuple[str, str]]:
    """(clip, image) of pairs listed more than once in a file (the readers' duplicate path)."""
    out = []
    for lines in matching.values():
        seen: set[tuple[str, str]] = set()
        for ids in filter(None, map(line_ids, lines)):
            if ids in seen:
                out.append(ids)
            seen.add(ids)
    return out


def _pick_songs(songs: list[Song], fraction: float, n_songs: int | None, preferred: dict[str, int]) -> list[Song]:
    if n_songs is None:
        excerpts = sorted((s for s in songs if not s.full), key=lambda s: _order(s.song_id))
        full = sorted((s for s in songs if s.full), key=lambda s: _order(s.song_id))
        picked = excerpts[: round(fraction * len(excerpts))] + full[: round(fraction * len(full))]
    else:
        # a tiny rehearsal: half songs the matching files name (those with repeated lines first, one
        # cheap full-length song among them from 10 songs on), half others (mostly train by hash)
        first = lambda s: (preferred.get(s.song_id, 2), _order(s.song_id))  # noqa: E731
        matched = sorted((s for s in songs if s.matched and not s.full), key=first)
        full = sorted((s for s in songs if s.matched and s.full), key=lambda s: s.top)
        others = sorted((s for s in songs if not s.matched and not s.full), key=lambda s: _order(s.song_id))
        half = (n_songs + 1) // 2
        picked = ((full[:1] if n_songs >= 10 else []) + matched)[:half] + others[: n_songs - half]
    return sorted(picked, key=lambda s: int(s.song_id))


def _pick_images(rows: list[ImageRow], all_ids: list[str], matching: dict[str, list[str]],
                 target: int, first: list[str], named_share: float | None) -> list[ImageRow]:
    """Up to ``target`` ids: ids listed more than once in image_va.csv (the duplicate-id path) and
    ``first``, then images the kept lines name (all of them, or up to ``named_share`` of the target), then others by hash."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.image_id] = counts.get(r.image_id, 0) + 1
    listed = set(all_ids)
    named = list(dict.fromkeys(ids[1] for lines in matching.values() for ids in filter(None, map(line_ids, lines))))
    keep = {i for i in all_ids if counts[i] > 1} | {i for i in first if i in listed}
    for i in sorted((i for i in named if i in listed), key=_order):
        if named_share is not None and len(keep) >= round(named_share * target):
            break
        keep.add(i)
    for i in sorted(all_ids, key=_order):
        if len(keep) >= target:
            break
        keep.add(i)
    return [r for r in rows if r.image_id in keep]
