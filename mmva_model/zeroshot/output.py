"""What the commands print: aligned text tables for people, one JSON document for machines."""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any


from mmva_model.evaluation import jsonable
from mmva_model.zeroshot.image2music import Image2MusicReport
from mmva_model.zeroshot.library import LibraryInfo
from mmva_model.zeroshot.retrieval import ClipMatch
from mmva_model.zeroshot.text2music import Text2MusicResult
from mmva_model.zeroshot.video import VideoSummary

CAPTION_WIDTH = 60
MAX_LISTED_FAILURES = 5
RANKED_BY = {"va": "VA distance", "embedding": "embedding cosine"}


def to_json(task: str, result: Any) -> str:
    return json.dumps({"task": task, **jsonable(result)} if dataclasses.is_dataclass(result)
                      else {"task": task, "result": jsonable(result)}, indent=2, ensure_ascii=False)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], right: set[int] = frozenset()) -> str:
    """Columns padded to their widest cell; columns in ``right`` right-aligned."""
    cells = [list(map(str, header))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in cells]
    return "\n".join(lines)


def _short(text: str, width: int = CAPTION_WIDTH) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def matches_table(matches: Sequence[ClipMatch]) -> str:
    rows = [(m.rank, m.clip_id, f"{m.valence:.3f}", f"{m.arousal:.3f}", f"{m.va_distance:.4f}",
             f"{m.cosine:+.3f}", _short(m.caption) or "-") for m in matches]
    return table(("rank", "clip_id", "valence", "arousal", "va_dist", "cosine", "caption"), rows, right={0, 2, 3, 4, 5})


def library_line(info: LibraryInfo) -> str:
    where = f"from cache {info.cache_path}" if info.from_cache else "embedded now" + (
        f", cached at {info.cache_path}" if info.cache_path else "")
    line = (f"library: {info.source} ({info.kind}, {info.clips} clips, {info.failed} failed, "
            f"{info.ignored} ignored; {where})")
    for f in info.failures[:MAX_LISTED_FAILURES]:
        line += f"\n  failed: {f.item} ({f.error_type}: {_short(f.message, 100)})"
    if info.failed > MAX_LISTED_FAILURES:
        line += f"\n  ... and {info.failed - MAX_LISTED_FAILURES} more (--json lists them all)"
    return line


def render_text2music(r: Text2MusicResult) -> str:
    return "\n".join([
        f"text: {r.text!r}",
        f"predicted VA: valence {r.valence:.3f}, arousal {r.arousal:.3f} ({r.quadrant} quadrant)",
        library_line(r.library),
        f"top {len(r.matches)} clips by {RANKED_BY[r.by]}:",
        matches_table(r.matches),
    ])


def render_image2music(report: Image2MusicReport) -> str:
    out = [library_line(report.library)]
    for r in report.results:
        out.append("")
        if r.error is not None:
            out.append(f"image: {r.image}\n  FAILED: {r.error}")
            continue
        out += [f"image: {r.image}",
                f"predicted VA: valence {r.valence:.3f}, arousal {r.arousal:.3f} ({r.prompt.quadrant} quadrant)",
                f"prompt: {r.prompt.text}"]
        if r.audio_path:
            out.append(f"audio: {r.audio_path} ({report.musicgen_model})")
        out.append(matches_table(r.matches))
    out.append(f"\n{len(report.results)} images, {report.failed} failed")
    return "\n".join(out)


def render_video(s: VideoSummary) -> str:
    target = f" (target V={s.target_va[0]:.3f} A={s.target_va[1]:.3f}" + (
        f" from clip {s.match_clip})" if s.match_clip else ")") if s.target_va else ""
    rows = [(g.index, f"{g.start_s:.2f}", f"{g.end_s:.2f}", f"{g.valence:.3f}", f"{g.arousal:.3f}",
             f"{g.score:+.4f}", "*" if g.selected else "") for g in s.segments]
    out = [
        f"video: {s.video} ({s.duration_s:.2f} s), {len(s.frame_va)} frames at {s.fps:g}/s, "
        f"{len(s.segments)} segments of {s.segment_seconds:g} s",
        f"mode: {s.mode}{target}; budget {s.budget_seconds:g} s -> {len(s.selected)} segments, "
        f"{s.summary_seconds:.2f} s",
    ]
    if s.library is not None:
        out.append(library_line(s.library))
    out.append(table(("segment", "start_s", "end_s", "valence", "arousal", "score", "chosen"), rows,
                     right={0, 1, 2, 3, 4, 5}))
    out += [f"note: {n}" for n in s.notes]
    if s.plot_path:
        out.append(f"trajectory plot: {s.plot_path}")
    if s.render_path:
        out.append(f"summary video: {s.render_path}" + (f" (soundtrack: clip {s.soundtrack_clip})"
                                                        if s.soundtrack_clip else ""))
    return "\n".join(out)
