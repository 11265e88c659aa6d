"""Video summarisation: VA per sampled frame, fixed-length segments, the segments that best fit a
target (a VA, or a library clip's VA) or the most arousing ones, under a length budget.

Frames are sampled with ffmpeg at ``fps``, encoded as PNG and read by the checkpoint's image
encoder exactly like dataset images. Outputs: the per-frame trajectory, the segments with their
scores, a trajectory PNG, and optionally the summary video (``render``), with a library clip as
its soundtrack (``soundtrack``: ``match_clip``, else the clip nearest the summary's mean VA).
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from mmva_model.zeroshot import ffmpeg
from mmva_model.zeroshot.errors import ZeroShotError
from mmva_model.zeroshot.library import DEFAULT_CACHE, LibraryInfo, LibraryOptions, MusicLibrary, resolve_library
from mmva_model.zeroshot.plot import plot_trajectory
from mmva_model.zeroshot.predict import ModelLike, encode_prepared, resolve_model
from mmva_model.zeroshot.render import SOUNDTRACK_RATE, fit_soundtrack, render_summary
from mmva_model.zeroshot.retrieval import nearest_clip
from mmva_model.zeroshot.segments import SELECTORS, Segment, make_segments, score_segments, select_segments


@dataclass
class VideoSummary:
    video: str
    fps: float
    segment_seconds: float  # actual: a whole number of frames
    duration_s: float
    mode: str
    target_va: list[float] | None  # the VA "match" aimed at
    match_clip: str | None
    budget_seconds: float
    frame_times: list[float]  # frame k shows frame_times[k] seconds
    frame_va: list[list[float]]  # predicted [valence, arousal] per frame
    segments: list[Segment]
    selected: list[int]  # segment indices, in time order
    summary_seconds: float
    plot_path: str | None = None
    render_path: str | None = None
    soundtrack_clip: str | None = None
    library: LibraryInfo | None = None
    notes: list[str] = field(default_factory=list)


def _png(frame: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def frame_va(model, video: str | Path, fps: float, batch_size: int = 32, progress: bool = False
             ) -> tuple[np.ndarray, ffmpeg.VideoInfo]:
    """(frames, 2) predicted VA of the frames sampled at ``fps``, and the video's info."""
    info = ffmpeg.probe_video(video)
    encoder = model.encoder("image")
    total = int(info.duration_s * fps) + 1 if info.duration_s else None
    frames = tqdm(ffmpeg.iter_frames(video, fps, ffmpeg.frame_size(info)), total=total, desc="reading frames",
                  unit="frame", disable=not progress)
    va, _ = encode_prepared(model, "image", (encoder.prepare({"image": _png(f)}) for f in frames), batch_size)
    if not len(va):
        raise ZeroShotError(f"{video}: ffmpeg gave no frames at {fps:g} frames/s")
    return va, info


def check_request(video: Path, *, fps: float, segment_seconds: float, budget_seconds: float,
                  mode: str | None, target_va, match_clip: str | None, has_library: bool,
                  render, soundtrack: bool) -> str:
    """Refuse unusable option combinations before any work; returns the mode to use."""
    if not video.is_file():
        raise ZeroShotError(f"no such video file: {video}")
    if fps <= 0 or segment_seconds <= 0 or budget_seconds <= 0:
        raise ZeroShotError("fps, segment_seconds and budget_seconds must all be > 0")
    if target_va is not None and (len(target_va) != 2 or not all(0.0 <= float(x) <= 1.0 for x in target_va)):
        raise ZeroShotError(f"target VA must be two numbers in [0, 1] (valence arousal), got {list(target_va)}")
    if target_va is not None and match_clip is not None:
        raise ZeroShotError("give --target_va or --match_clip, not both")
    if (match_clip is not None or soundtrack) and not has_library:
        raise ZeroShotError("--match_clip and --soundtrack need a music library (--library)")
    if soundtrack and render is None:
        raise ZeroShotError("--soundtrack is the audio of the rendered summary: add --render OUT.mp4")
    has_target = target_va is not None or match_clip is not None
    mode = mode or ("match" if has_target else "arousal")
    if mode not in SELECTORS:
        raise ZeroShotError(f"unknown mode {mode!r}; known: {sorted(SELECTORS)}")
    if SELECTORS[mode].needs_target != has_target:
        raise ZeroShotError(f"mode {mode!r} needs a target (--target_va V A or --match_clip ID)"
                            if SELECTORS[mode].needs_target else
                            f"mode {mode!r} takes no target; drop --target_va/--match_clip or use --mode match")
    return mode


def summarise_video(checkpoint_or_model: ModelLike, video: str | os.PathLike, *, fps: float = 2.0,
                    segment_seconds: float = 2.0, budget_seconds: float = 10.0, mode: str | None = None,
                    target_va: tuple[float, float] | None = None, match_clip: str | None = None,
                    library: MusicLibrary | str | os.PathLike | None = None,
                    plot: str | os.PathLike | None = None, render: str | os.PathLike | None = None,
                    soundtrack: bool = False, device=None, library_options: LibraryOptions | None = None,
                    cache_dir: str | os.PathLike | None = DEFAULT_CACHE, batch_size: int = 32,
                    progress: bool = False) -> VideoSummary:
    """Summarise ``video``; ``mode`` defaults to "match" when a target is given, else "arousal"."""
    video = Path(video)
    mode = check_request(video, fps=fps, segment_seconds=segment_seconds, budget_seconds=budget_seconds,
                         mode=mode, target_va=target_va, match_clip=match_clip, has_library=library is not None,
                         render=render, soundtrack=soundtrack)
    model = resolve_model(checkpoint_or_model, device)
    lib = None if library is None else resolve_library(library, model, options=library_options,
                                                       cache_dir=cache_dir, batch_size=batch_size, progress=progress)
    target = None if target_va is None else np.asarray(target_va, dtype=np.float64)
    if match_clip is not None:
        target = lib.va[lib.index(match_clip)].astype(np.float64)

    va, info = frame_va(model, video, fps, batch_size, progress)
    segments = make_segments(va, fps, segment_seconds, info.duration_s)
    scores = score_segments(segments, mode, target)
    seconds = np.array([s.seconds for s in segments])
    selected = select_segments(seconds, scores, budget_seconds)
    for i in selected:
        segments[i].selected = True
    times = np.arange(len(va)) / fps
    summary = VideoSummary(
        str(video), fps, segments[0].n_frames / fps, info.duration_s or len(va) / fps, mode,
        None if target is None else [float(x) for x in target], match_clip, budget_seconds,
        [float(t) for t in times], va.astype(float).tolist(), segments, selected,
        float(seconds[selected].sum()) if selected else 0.0, library=lib.info() if lib else None)
    if not selected:
        summary.notes.append(f"no {segments[0].n_frames / fps:g} s segment fits a {budget_seconds:g} s budget")
    if plot is not None:
        aim = f" (target V={target[0]:.2f} A={target[1]:.2f})" if target is not None else ""
        title = f"{video.name}: {mode}{aim}"
        summary.plot_path = str(plot_trajectory(plot, times, va, segments, target, title))
    if render is not None:
        _render(summary, render, lib if soundtrack else None, info.has_audio)
    return summary


def _render(summary: VideoSummary, out: str | os.PathLike, soundtrack_from: MusicLibrary | None,
            source_audio: bool) -> None:
    """Write the summary video; the soundtrack is ``match_clip``, else the clip nearest the summary's VA."""
    chosen = [summary.segments[i] for i in summary.selected]
    if not chosen:
        raise ZeroShotError(f"nothing to render: {summary.notes[0]} (raise --budget_seconds)")
    track = None
    if soundtrack_from is not None:
        lib = soundtrack_from
        row = lib.index(summary.match_clip) if summary.match_clip is not None else nearest_clip(lib, _mean_va(chosen))
        summary.soundtrack_clip = lib.ids[row]
        track = fit_soundtrack(lib.audio(row, SOUNDTRACK_RATE), summary.summary_seconds)
    spans = [(s.start_s, s.end_s) for s in chosen]
    summary.render_path = str(render_summary(summary.video, spans, out, source_audio=source_audio, soundtrack=track))


def _mean_va(segments: list[Segment]) -> np.ndarray:
    """Length-weighted mean VA of ``segments``."""
    w = np.array([s.seconds for s in segments])
    va = np.array([[s.valence, s.arousal] for s in segments])
    return (va * w[:, None]).sum(axis=0) / w.sum()
