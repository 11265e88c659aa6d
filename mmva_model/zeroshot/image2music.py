"""Image -> music: predicted VA of each image, its nearest clips, a MusicGen prompt (and audio)."""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmva_model.media import MediaError
from mmva_model.zeroshot import musicgen
from mmva_model.zeroshot.errors import ZeroShotError
from mmva_model.zeroshot.library import DEFAULT_CACHE, LibraryInfo, LibraryOptions, MusicLibrary, resolve_library
from mmva_model.zeroshot.predict import ModelLike, encode_prepared, model_device, resolve_model
from mmva_model.zeroshot.prompts import Prompt, build_prompt
from mmva_model.zeroshot.retrieval import ClipMatch, rank_clips

DEFAULT_OUT = "runs/zeroshot/image2music"


@dataclass
class Image2MusicResult:
    """One image's outcome; a failed image has ``error`` set and nothing else."""

    image: str
    valence: float | None = None
    arousal: float | None = None
    matches: list[ClipMatch] | None = None
    prompt: Prompt | None = None
    audio_path: str | None = None  # with generate=True
    error: str | None = None


@dataclass
class Image2MusicReport:
    """What the command returns: every image's result plus the library used."""

    results: list[Image2MusicResult]
    library: LibraryInfo
    musicgen_model: str | None
    failed: int = field(init=False)

    def __post_init__(self):
        self.failed = sum(r.error is not None for r in self.results)


def _safe_stem(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem)[:60] or "image"


def _predict(model, paths: list[Path], batch_size: int) -> list[tuple[Image2MusicResult, np.ndarray | None]]:
    """(result, embedding) per image: VA set, or ``error`` set (and no embedding) when undecodable."""
    encoder = model.encoder("image")
    results, prepared = [], []
    for p in paths:
        try:
            prepared.append(encoder.prepare({"image": p.read_bytes()}))
            results.append(Image2MusicResult(str(p)))
        except MediaError as e:
            results.append(Image2MusicResult(str(p), error=str(e)))
    va, emb = encode_prepared(model, "image", prepared, batch_size)
    good = iter(zip(va, emb))
    out = []
    for r in results:
        e = None
        if r.error is None:
            v, e = next(good)
            r.valence, r.arousal = float(v[0]), float(v[1])
        out.append((r, e))
    return out


def _match_and_prompt(r: Image2MusicResult, embedding: np.ndarray, lib: MusicLibrary, k: int, by: str,
                      prompt_neighbours: int) -> None:
    """Fill in the nearest clips and the prompt built from the first ``prompt_neighbours``."""
    matches = rank_clips(lib, np.array([r.valence, r.arousal]), embedding, max(k, prompt_neighbours), by)
    near = [{"clip_id": m.clip_id, "caption": m.caption, "descriptors": lib.descriptors[lib.index(m.clip_id)]}
            for m in matches[:prompt_neighbours]]
    r.prompt = build_prompt(r.valence, r.arousal, near)
    r.matches = matches[:k]


def image2music(checkpoint_or_model: ModelLike, images: Sequence[str | os.PathLike],
                library: MusicLibrary | str | os.PathLike, k: int = 10, by: str = "va", *,
                prompt_neighbours: int = 5, generate: bool = False,
                musicgen_model: str = musicgen.DEFAULT_MUSICGEN, seconds: float = 8.0, seed: int = 0,
                out_dir: str | os.PathLike = DEFAULT_OUT, device=None,
                library_options: LibraryOptions | None = None,
                cache_dir: str | os.PathLike | None = DEFAULT_CACHE, batch_size: int = 32,
                progress: bool = False) -> list[Image2MusicResult]:
    """Per image: predicted VA, the ``k`` nearest clips, a prompt from the first
    ``prompt_neighbours`` of them; with ``generate`` also MusicGen audio written under ``out_dir``.

    Missing files raise ZeroShotError; an undecodable image is a result with ``error`` set.
    """
    paths = [Path(p) for p in images]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ZeroShotError(f"no such image file: {', '.join(missing)}")
    if prompt_neighbours < 1:
        raise ZeroShotError(f"prompt_neighbours must be at least 1 (got {prompt_neighbours})")
    model = resolve_model(checkpoint_or_model, device)
    lib = resolve_library(library, model, options=library_options, cache_dir=cache_dir,
                          batch_size=batch_size, progress=progress)
    # load MusicGen before any work, so unreachable weights fail fast
    gen = musicgen.load_musicgen(musicgen_model, model_device(model), progress) if generate else None
    predicted = _predict(model, paths, batch_size)
    for r, embedding in predicted:
        if r.error is None:
            _match_and_prompt(r, embedding, lib, k, by, prompt_neighbours)
    results = [r for r, _ in predicted]
    if gen is not None:
        done = [(i, r) for i, r in enumerate(results) if r.error is None]
        audio = musicgen.generate(gen, [r.prompt.text for _, r in done], seconds=seconds, seed=seed, progress=progress)
        for (i, r), wave in zip(done, audio):
            # numbered by input position: two images with one name never share a file
            path = Path(out_dir) / f"{i:03d}-{_safe_stem(Path(r.image))}.wav"
            r.audio_path = str(musicgen.write_wav(path, wave, gen.sampling_rate))
    return results
