"""One small JPEG per image id of image_va.csv, coloured by its VA, in IMEMNet-C's source folders.

IAPS ids are numbers (``3053``), NAPS ids category names (``Faces_012_h``), EMOTIC ids COCO and
video-frame names; each family goes to its own folder (``IAPS/``, ``NAPS/``, ``EMOTIC/``), given to
the pipeline as one ``--images_dir`` each. IAPS files carry an upper-case ``.JPG`` as IAPS ships
them, so the readers' case-insensitive lookup is exercised. A duplicated id gets one file, drawn
from its first row.
"""
from __future__ import annotations

import colorsys
import hashlib
import io
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.ids import check_id
from pipeline.rehearsal.inputs import IMAGE_HEADER, ImageRow

FOLDERS = ("IAPS", "NAPS", "EMOTIC")
NAPS_PREFIXES = ("Animals_", "Faces_", "Landscapes_", "Objects_", "People_")


def family(image_id: str) -> tuple[str, str]:
    """(folder, file suffix) of an id."""
    if image_id.isdigit():
        return "IAPS", ".JPG"
    if image_id.startswith(NAPS_PREFIXES):
        return "NAPS", ".jpg"
    return "EMOTIC", ".jpg"


def _va(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        return 0.5
    return min(1.0, max(0.0, v)) if np.isfinite(v) else 0.5


def render(image_id: str, valence: float, arousal: float, size: int) -> bytes:
    """JPEG bytes: warm and bright with valence, saturated and textured with arousal."""
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(image_id.encode()).digest()[:8], "big"))
    hue = 0.62 - 0.5 * valence + rng.normal(0, 0.02)
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, 0.15 + 0.8 * arousal, 0.3 + 0.6 * valence)
    yy, xx = np.mgrid[0:size, 0:size] / size
    waves = np.sin(2 * np.pi * (xx * rng.uniform(1, 6) + yy * rng.uniform(1, 6)) * (1 + 3 * arousal))
    light = 1.0 + 0.25 * waves[..., None] + rng.normal(0, 0.1 * arousal, (size, size, 1))
    pixels = np.clip(np.array([r, g, b])[None, None, :] * light * 255.0, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, "JPEG", quality=85)
    return buf.getvalue()


def _write_chunk(args: tuple[Path, list[tuple[str, str, str]], int]) -> int:
    root, chunk, size = args
    for image_id, v, a in chunk:
        folder, suffix = family(image_id)
        (root / folder / f"{image_id}{suffix}").write_bytes(render(image_id, _va(v), _va(a), size))
    return len(chunk)


def write_images(root: Path, rows: list[ImageRow], size: int, workers: int) -> dict:
    """Image files of ``rows``' ids under ``root``/IAPS|NAPS|EMOTIC; ids that are not safe names get none
    (the pipeline fails them with "bad_id")."""
    for folder in FOLDERS:
        (root / folder).mkdir(parents=True, exist_ok=True)
    first: dict[str, tuple[str, str, str]] = {}
    unsafe = 0
    for r in rows:
        try:
            check_id(r.image_id)
        except ValueError:
            unsafe += 1
            continue
        first.setdefault(r.image_id, (r.image_id, r.valence, r.arousal))
    todo = list(first.values())
    chunks = [(root, todo[i:i + 500], size) for i in range(0, len(todo), 500)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        written = sum(pool.map(_write_chunk, chunks))
    per_folder = {f: sum(1 for i in first if family(i)[0] == f) for f in FOLDERS}
    return {"files": written, "per_folder": per_folder, "rows": len(rows), "unsafe_ids": unsafe}


def write_csv(path: Path, rows: list[ImageRow]) -> None:
    """image_va.csv in IMEMNet-C's layout, rows as read (index cell and VA text unchanged)."""
    lines = [IMAGE_HEADER] + [f"{r.index},{r.image_id},{r.valence},{r.arousal}" for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
