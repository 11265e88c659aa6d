"""Text-to-music generation with MusicGen (transformers ``MusicgenForConditionalGeneration``).

Weights come from a Hugging Face id (``facebook/musicgen-small`` by default, CC-BY-NC 4.0
weights: check the licence before using the audio) or a local folder holding the model and its
processor (``save_pretrained`` of both). When they cannot be loaded the error says so and names
the flag to use; nothing is downloaded silently beyond what ``from_pretrained`` does itself.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm.auto import tqdm

from mmva_model.zeroshot.errors import ZeroShotError
from mmva_model.progress import hf_progress

DEFAULT_MUSICGEN = "facebook/musicgen-small"


class MusicGenError(ZeroShotError):
    """MusicGen weights or processor that cannot be loaded."""


@dataclass
class MusicGen:
    """A loaded MusicGen model and its processor."""

    model: object
    processor: object
    model_id: str

    @property
    def sampling_rate(self) -> int:
        return int(self.model.config.audio_encoder.sampling_rate)

    @property
    def frame_rate(self) -> float:
        return float(self.model.config.audio_encoder.frame_rate)


_HOW = ("--generate needs MusicGen weights and processor: a reachable Hugging Face Hub (or its "
        "cache), or a local folder with both saved (pass it with --musicgen_model PATH). Offline, set "
        "HF_HUB_OFFLINE=1 to skip the Hub's connection retries.")


def _looks_local(model_id: str) -> bool:
    """A path rather than a Hub id ("owner/name"): absolute, relative or deeper than one slash."""
    return model_id.startswith(("/", ".", "~")) or model_id.count("/") > 1


def _load(processor_cls, model_cls, model_id: str):
    """The local copy (folder or Hub cache) first: no network round trips when it is there."""
    try:
        return (processor_cls.from_pretrained(model_id, local_files_only=True),
                model_cls.from_pretrained(model_id, local_files_only=True))
    except OSError:
        return processor_cls.from_pretrained(model_id), model_cls.from_pretrained(model_id)


def load_musicgen(model_id: str = DEFAULT_MUSICGEN, device: torch.device | str = "cpu",
                  progress: bool = False) -> MusicGen:
    """Model and processor from a Hub id or a local folder; MusicGenError when unreachable."""
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    if _looks_local(model_id) and not Path(model_id).expanduser().is_dir():
        raise MusicGenError(f"no MusicGen folder at {model_id}\n{_HOW}")
    try:
        with hf_progress(progress):
            processor, model = _load(AutoProcessor, MusicgenForConditionalGeneration, model_id)
    except (OSError, ValueError) as e:
        raise MusicGenError(f"cannot load MusicGen {model_id!r}: {str(e).strip().splitlines()[0]}\n{_HOW}") from e
    return MusicGen(model.to(device).eval(), processor, model_id)


def generate(musicgen: MusicGen, prompts: Sequence[str], *, seconds: float = 8.0, seed: int = 0,
             guidance_scale: float | None = None, progress: bool = False) -> list[np.ndarray]:
    """One (channels, samples) float32 waveform per prompt at ``musicgen.sampling_rate``.

    Sampled (as MusicGen is meant to be used) from a seeded generator per prompt, so a prompt
    and seed give the same audio on the same machine whatever else is in the batch.
    """
    if seconds <= 0:
        raise ZeroShotError(f"seconds must be > 0 (got {seconds})")
    tokens = max(1, int(round(seconds * musicgen.frame_rate)))
    device = next(musicgen.model.parameters()).device
    out = []
    for i, prompt in enumerate(tqdm(prompts, desc="generating music", unit="prompt", disable=not progress)):
        inputs = musicgen.processor(text=[prompt], padding=True, return_tensors="pt").to(device)
        kwargs = {} if guidance_scale is None else {"guidance_scale": guidance_scale}
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed + i)
            with torch.no_grad():
                audio = musicgen.model.generate(**inputs, do_sample=True, max_new_tokens=tokens, **kwargs)
        out.append(audio[0].float().cpu().numpy())
    return out


def write_wav(path: str | os.PathLike, audio: np.ndarray, sampling_rate: int) -> Path:
    """A (channels, samples) waveform as 16-bit WAV, written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.wav")
    sf.write(tmp, np.clip(audio.T, -1.0, 1.0), sampling_rate, subtype="PCM_16")
    tmp.replace(path)
    return path
