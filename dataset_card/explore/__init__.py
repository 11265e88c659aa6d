"""``python -m dataset_card explore``: a static, offline page to look at and listen to a run or dataset."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from dataset_card.explore import data as D
from dataset_card.explore import flags as F
from dataset_card.explore import media as M
from dataset_card.explore.page import PageInputs, render

PAGE = "index.html"
DEFAULT_DIR = "explore"
log = logging.getLogger(__name__)
ExploreError = D.ExploreError


@dataclass(frozen=True)
class ExploreResult:
    """What ``explore`` wrote."""

    page: Path
    clips: int
    images: int
    failures: int
    page_bytes: int
    media: M.MediaResult
    flags_available: bool
    seconds: float


def explore(path: Path | str, out: Path | str | None = None, sample: int | None = None,
            seed: int = 0, media: bool = True, jobs: int = 1) -> ExploreResult:
    """Write ``OUT/index.html`` (default ``PATH/explore``) and the previews it plays and shows under
    ``OUT/media`` (:mod:`dataset_card.explore.media`).

    ``media=False`` extracts nothing: the page shows VA, captions, pairs and failures but plays nothing.
    ``jobs`` processes encode the audio previews (the same files whatever the number).
    """
    t0 = time.perf_counter()
    data = D.load(path)
    out_dir = Path(out).resolve() if out else default_out(data)
    _check_out(data, out_dir)
    if sample is not None:
        data = D.sample(data, sample, seed)
    # the images table reads in valence order (click the arousal header for arousal order)
    data.images.sort(key=lambda r: (r["valence"] if r["valence"] is not None else 2.0, r["image_id"]))
    # --no-media leaves an earlier export's media/ alone: it may have taken long to write
    extracted = M.extract(data.shards, *_wanted(data), out_dir, jobs=jobs) if media else M.MediaResult()
    flag_caption = F.audit_function()
    page = render(PageInputs(data=data, media=extracted, flags=F.flag_clips(data.clips, flag_caption),
                             flags_available=flag_caption is not None, title=_title(data), media_skipped=not media))
    out_dir.mkdir(parents=True, exist_ok=True)
    dest = out_dir / PAGE
    tmp = dest.with_name(PAGE + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(dest)
    return ExploreResult(dest, len(data.clips), len(data.images), len(data.failures), dest.stat().st_size, extracted,
                         flag_caption is not None, time.perf_counter() - t0)


def default_out(data: D.ExploreData) -> Path:
    """``RUN/explore`` for a run; a sibling ``<DATASET>-explore`` for a dataset folder, whose every
    file ``publish`` would upload."""
    if data.kind == "run":
        return data.root / DEFAULT_DIR
    return data.root.with_name(f"{data.root.name}-{DEFAULT_DIR}")


def _check_out(data: D.ExploreData, out_dir: Path) -> None:
    if out_dir == data.root or out_dir.is_relative_to(data.root / "data"):
        raise ExploreError(f"--out {out_dir} would mix the page with the folder's shards: pick another folder")
    if data.kind == "dataset" and out_dir.is_relative_to(data.root):
        raise ExploreError(f"--out {out_dir} is inside the dataset folder {data.root}, whose every file "
                           "`publish` uploads: put the page next to it instead (the default)")


def _wanted(data: D.ExploreData) -> tuple[dict[str, M.Span] | None, set[str] | None]:
    """The page's clips (where each sits in its song) and images whose media it shows."""
    clips = {r["clip_id"]: M.Span(r["song_id"], float(r["start_s"] or 0.0), float(r["end_s"] or 0.0))
             for r in data.clips} if data.has_audio else None
    images = {r["image_id"] for r in data.images} if data.has_image_pixels else None
    return clips, images


def _title(data: D.ExploreData) -> str:
    sampled = " (sample)" if data.sampled_from else ""
    return f"IMEMNet-C explorer: {data.root.name}{sampled}"
