"""Writing a summary video with ffmpeg: the chosen segments cut and joined, optionally with a
library clip (looped and trimmed to the summary's length) as the soundtrack."""
from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from mmva_model.zeroshot.errors import ZeroShotError
from mmva_model.zeroshot.ffmpeg import run_tool

SOUNDTRACK_RATE = 44100


def fit_soundtrack(audio: np.ndarray, seconds: float, sample_rate: int = SOUNDTRACK_RATE) -> np.ndarray:
    """``audio`` repeated as needed and trimmed to exactly ``seconds``."""
    n = int(round(seconds * sample_rate))
    if len(audio) == 0:
        raise ZeroShotError("the soundtrack clip has no samples")
    return np.tile(audio, -(-n // len(audio)))[:n].astype(np.float32)


def _filter_graph(spans: Sequence[tuple[float, float]], with_audio: bool) -> str:
    parts, inputs = [], []
    for k, (start, end) in enumerate(spans):
        # even sizes: libx264 with yuv420p refuses odd ones
        parts.append(f"[0:v]trim=start={start:.6f}:end={end:.6f},setpts=PTS-STARTPTS,"
                     f"scale=trunc(iw/2)*2:trunc(ih/2)*2[v{k}]")
        inputs.append(f"[v{k}]")
        if with_audio:
            parts.append(f"[0:a]atrim=start={start:.6f}:end={end:.6f},asetpts=PTS-STARTPTS[a{k}]")
            inputs.append(f"[a{k}]")
    outs = "[v][a]" if with_audio else "[v]"
    parts.append(f"{''.join(inputs)}concat=n={len(spans)}:v=1:a={int(with_audio)}{outs}")
    return ";".join(parts)


def render_summary(video: str | Path, spans: Sequence[tuple[float, float]], out: str | Path, *,
                   source_audio: bool, soundtrack: np.ndarray | None = None) -> Path:
    """Cut ``spans`` (seconds) from ``video``, join them in order, write ``out`` (H.264/AAC).

    Audio: ``soundtrack`` (mono at :data:`SOUNDTRACK_RATE`, as long as the summary) when given,
    else the source's own audio when it has some, else none.
    """
    if not spans:
        raise ZeroShotError("no segment fits the budget: nothing to render (raise --budget_seconds)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix or '.mp4'}")
    with tempfile.TemporaryDirectory() as scratch:
        args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(video)]
        if soundtrack is not None:
            wav = Path(scratch) / "soundtrack.wav"
            sf.write(wav, np.clip(soundtrack, -1, 1), SOUNDTRACK_RATE, subtype="PCM_16")
            args += ["-i", str(wav)]
        own_audio = source_audio and soundtrack is None
        args += ["-filter_complex", _filter_graph(spans, own_audio), "-map", "[v]"]
        if own_audio:
            args += ["-map", "[a]"]
        elif soundtrack is not None:
            args += ["-map", "1:a", "-shortest"]
        args += ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"]
        if own_audio or soundtrack is not None:
            args += ["-c:a", "aac", "-b:a", "128k"]
        run_tool([*args, str(tmp)], f"cannot write the summary video {out}")
    tmp.replace(out)
    return out
