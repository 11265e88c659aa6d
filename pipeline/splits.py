"""The split policy: which split each song, image and pair lands in (pure functions).

Without matching files a song (with all its clips) and an image go to the split a hash of their
id picks (:func:`pipeline.ids.split_of`, 80/10/10). With IMEMNet matching files the splits must
also keep evaluation honest, so the rule is:

1. A song or image that a matching file references takes that file's split; one referenced by
   several files takes the first of :data:`PRECEDENCE` (validation, then test, then train).
   IMEMNet's own files overlap (all 90 validation songs and 1,175 validation images are also in
   the test file): those songs and images go to validation.
2. Songs and images that no matching file references keep their hash split.
3. A pair stays in its file's split when its clip's song and its image are both there; when both
   sit together in another split the pair moves there ("moved"); when they sit in different
   splits it is dropped ("split_conflict"). The same clip-image pair listed in several files is
   kept once, in the first split of PRECEDENCE, and dropped from the others ("split_overlap").

So no pair references a clip, song or image of another split: a test pair never scores a clip
the model trained on, and the validation split never scores a test clip either. What rule 1
moved and rule 3 moved or dropped is counted (:func:`policy_report`, in ``run.json`` and the
card); dropped pairs are also failure rows with the reason.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from pipeline.ids import split_of
from pipeline.sources.clips import song_of_clip
from pipeline.types import Failure, PairTask

PRECEDENCE = ("validation", "test", "train")
STAGE = "split_policy"
SONG, IMAGE = "song", "image"
RULE = ("songs and images referenced by a matching file take its split (validation before test before "
        "train when several files reference them), others a hash of their id; a pair keeps its file's "
        "split when its song and image are there, moves when both are together in another split, and is "
        "dropped when they are in different splits or when a higher-precedence file lists the same pair")


def strongest(splits: Iterable[str]) -> str:
    """The split of highest precedence among ``splits`` (unknown names rank last, then by name)."""
    rank = {s: i for i, s in enumerate(PRECEDENCE)}
    return min(splits, key=lambda s: (rank.get(s, len(rank)), s))


def ref_key(kind: str, item_id: str) -> str:
    """Join key of a song or image: ``"song:725"``, ``"image:3053"``."""
    return f"{kind}:{item_id}"


def references(pair: PairTask) -> list[tuple[str, str]]:
    """(join key, split) of the song and the image a matching-file pair references."""
    return [(ref_key(SONG, song_of_clip(pair.music_clip_id)), pair.split),
            (ref_key(IMAGE, pair.image_id), pair.split)]


@dataclass(frozen=True)
class Placement:
    """Where a song or image goes and why: ``referenced`` lists the splits of the files naming it."""

    key: str
    split: str
    referenced: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """Policy counter label: ``songs/validation+test->validation``, ``images/test->test`` ..."""
        return f"{self.key.partition(':')[0]}s/{'+'.join(self.referenced)}->{self.split}"


def place(key: str, referenced: Iterable[str]) -> Placement:
    """The split of a referenced song or image (rule 1)."""
    rank = {s: i for i, s in enumerate(PRECEDENCE)}
    splits = tuple(sorted(set(referenced), key=lambda s: (rank.get(s, len(rank)), s)))
    return Placement(key, strongest(splits), splits)


def split_for(group_id: str, placed: str | None) -> str:
    """Rule 1 or 2: the placed split when a matching file referenced the item, else its hash split."""
    return placed or split_of(group_id)


@dataclass(frozen=True)
class PairOutcome:
    """A pair's fate: a row in ``pair.split``, or a failure; ``label`` feeds the policy counts."""

    label: str
    pair: PairTask | None = None
    failure: Failure | None = None


def dedupe_across_files(same_pair: list[PairTask]) -> tuple[PairTask, list[PairOutcome]]:
    """The copy of one clip-image pair to keep (first split of PRECEDENCE), and the others dropped."""
    keep = min(same_pair, key=lambda p: PRECEDENCE.index(p.split) if p.split in PRECEDENCE else len(PRECEDENCE))
    dropped = [_dropped(p, "split_overlap", f"the {keep.split} matching file lists the same pair; "
                                           f"{keep.split} takes precedence over {p.split}")
               for p in same_pair if p is not keep]
    return keep, dropped


def decide(pair: PairTask, clip_split: str, image_split: str) -> PairOutcome:
    """Rule 3 for a pair whose clip and image were both written, in ``clip_split``/``image_split``."""
    if pair.split is None:
        return PairOutcome(f"pairs/kept/{clip_split}", replace(pair, split=clip_split))
    if clip_split == image_split == pair.split:
        return PairOutcome(f"pairs/kept/{pair.split}", pair)
    if clip_split == image_split:
        return PairOutcome(f"pairs/moved/{pair.split}->{clip_split}", replace(pair, split=clip_split))
    return _dropped(pair, "split_conflict", f"a {pair.split} pair whose clip is in {clip_split} "
                                            f"and whose image is in {image_split}")


def _dropped(pair: PairTask, reason: str, message: str) -> PairOutcome:
    from pipeline.sources.pairs import pair_id  # pairs imports the schema; keep this module light

    return PairOutcome(f"pairs/dropped/{reason}", failure=Failure(
        pair_id(pair.music_clip_id, pair.image_id), STAGE, reason, message, kind="pair"))


def resolve_pairs(given: Iterable[PairTask], clip_split: Mapping[str, str],
                  image_split: Mapping[str, str]) -> list[PairOutcome]:
    """Every given pair's outcome: kept, moved, dropped by the policy, or missing its clip/image."""
    from pipeline.sources.pairs import filter_pairs

    by_key: dict[tuple[str, str], list[PairTask]] = {}
    for p in given:
        by_key.setdefault((p.music_clip_id, p.image_id), []).append(p)
    unique, out = [], []
    for same in by_key.values():
        keep, dropped = dedupe_across_files(same)
        unique.append(keep)
        out += dropped
    kept, missing = filter_pairs(unique, clip_split, image_split)
    out += [PairOutcome(f"pairs/missing/{f.error_type}", failure=f) for f in missing]
    out += [decide(p, clip_split[p.music_clip_id], image_split[p.image_id]) for p in kept]
    return out


def policy_report(counts: Mapping[str, int]) -> dict:
    """The flat ``{label: n}`` counts as ``{"rule", "songs", "images", "pairs": {kept, moved, dropped, missing}}``."""
    report: dict = {"rule": RULE, "songs": {}, "images": {},
                    "pairs": {"kept": {}, "moved": {}, "dropped": {}, "missing": {}}}
    for label, n in sorted(counts.items()):
        head, _, rest = label.partition("/")
        if head == "pairs":
            outcome, _, what = rest.partition("/")
            report["pairs"].setdefault(outcome, {})[what] = n
        else:
            report.setdefault(head, {})[rest] = n
    return report
