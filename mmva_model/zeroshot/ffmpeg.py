"""The ffmpeg/ffprobe command-line tools, run with argument lists (never through a shell)."""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmva_model.zeroshot.errors import ZeroShotError

MAX_SIDE = 384  # frames are read at most this wide/high: encoders resize to 224 or less anyway


class FFmpegError(ZeroShotError):
    """ffmpeg missing, or a video it cannot read or write; the message ends with ffmpeg's own."""


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise FFmpegError(f"{name} is not installed: the video task needs the ffmpeg command-line "
                          "tools (Debian/Ubuntu: apt install ffmpeg)")
    return path


def run_tool(args: Sequence[str], what: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([tool(args[0]), *args[1:]], capture_output=True)
    if proc.returncode != 0:
        raise FFmpegError(f"{what}: {args[0]} failed: {_tail(proc.stderr)}")
    return proc


def _tail(stderr: bytes) -> str:
    lines = stderr.decode(errors="replace").strip().splitlines()
    return " | ".join(lines[-3:]) or "no message"


@dataclass
class VideoInfo:
    width: int  # as displayed (rotation applied)
    height: int
    duration_s: float | None
    has_audio: bool


def probe_video(path: str | Path) -> VideoInfo:
    """Size, duration and audio presence of the first video stream."""
    proc = run_tool(["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
                    f"cannot read {path}")
    data = json.loads(proc.stdout or b"{}")
    streams = data.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    if video is None or not video.get("width"):
        raise FFmpegError(f"{path}: no video stream")
    w, h = int(video["width"]), int(video["height"])
    if abs(_rotation(video)) % 180 == 90:  # ffmpeg auto-rotates on decode: frames come out turned
        w, h = h, w
    duration = data.get("format", {}).get("duration") or video.get("duration")
    return VideoInfo(w, h, float(duration) if duration else None,
                     any(s.get("codec_type") == "audio" for s in streams))


def _rotation(stream: dict) -> float:
    for side in stream.get("side_data_list", []):
        if "rotation" in side:
            return float(side["rotation"])
    return float(stream.get("tags", {}).get("rotate", 0) or 0)


def frame_size(info: VideoInfo, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """(width, height) frames are read at: the video's, scaled down to ``max_side``, even."""
    scale = min(1.0, max_side / max(info.width, info.height))
    return max(2, int(info.width * scale) // 2 * 2), max(2, int(info.height * scale) // 2 * 2)


def iter_frames(path: str | Path, fps: float, size: tuple[int, int]) -> Iterator[np.ndarray]:
    """(H, W, 3) uint8 RGB frames sampled at ``fps`` (frame k shows time k / fps), streamed."""
    w, h = size
    args = [tool("ffmpeg"), "-nostdin", "-v", "error", "-i", str(path), "-vf", f"fps={fps:g},scale={w}:{h}",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    nbytes = w * h * 3
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a chatty ffmpeg never blocks
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err)
        try:
            while True:
                buf = proc.stdout.read(nbytes)
                if len(buf) < nbytes:
                    break
                yield np.frombuffer(buf, dtype=np.uint8).reshape(h, w, 3)
        finally:
            proc.stdout.close()
            code = proc.wait()
        if code != 0:
            err.seek(0)
            raise FFmpegError(f"cannot decode {path}: ffmpeg failed: {_tail(err.read())}")
