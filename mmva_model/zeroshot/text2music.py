"""Text -> music retrieval: the caption encoder reads the text, library clips ranked against it."""
from __future__ import annotations

import os
from dataclasses import dataclass

from mmva_model.zeroshot.errors import ZeroShotError
from mmva_model.zeroshot.library import DEFAULT_CACHE, LibraryInfo, LibraryOptions, MusicLibrary, resolve_library
from mmva_model.zeroshot.predict import ModelLike, encode_rows, resolve_model
from mmva_model.zeroshot.prompts import quadrant
from mmva_model.zeroshot.retrieval import ClipMatch, rank_clips


@dataclass
class Text2MusicResult:
    text: str
    valence: float  # predicted for the text by the caption encoder
    arousal: float
    quadrant: str
    by: str  # "va" or "embedding"
    matches: list[ClipMatch]
    library: LibraryInfo


def text2music(checkpoint_or_model: ModelLike, text: str, library: MusicLibrary | str | os.PathLike,
               k: int = 10, by: str = "va", *, device=None, library_options: LibraryOptions | None = None,
               cache_dir: str | os.PathLike | None = DEFAULT_CACHE, batch_size: int = 32,
               progress: bool = False) -> Text2MusicResult:
    """Predicted VA of ``text`` and the ``k`` library clips closest to it (``by`` VA or embedding)."""
    if not text or not text.strip():
        raise ZeroShotError("the text is empty: describe the music you want, e.g. 'a calm, warm piano piece'")
    model = resolve_model(checkpoint_or_model, device)
    lib = resolve_library(library, model, options=library_options, cache_dir=cache_dir,
                          batch_size=batch_size, progress=progress)
    va, emb = encode_rows(model, "caption", [{"caption": text}])
    v, a = float(va[0, 0]), float(va[0, 1])
    return Text2MusicResult(text, v, a, quadrant(v, a).name, by, rank_clips(lib, va[0], emb[0], k, by), lib.info())
