"""A music library for the zero-shot tasks: clips with the VA and embeddings a checkpoint predicts.

Two kinds of source, picked by what ``source`` is (:data:`LIBRARY_KINDS`):

- ``dataset``: a pipeline run folder, a built dataset folder or a Hugging Face Hub id; every
  split of its ``music`` table present is used (clip ids, captions, descriptors, annotated VA);
- ``folder``: a folder of audio files (searched recursively); each file is decoded, cut into
  non-overlapping clips of ``clip_seconds`` (a file shorter than that is one clip), its
  descriptors measured with the pipeline's own code, and its clips encoded. Clip ids are
  ``<relative path>#<clip index>``. A file that cannot be decoded or analysed is a
  :class:`LibraryFailure` (listed, counted, skipped); files without an audio extension are
  listed in ``ignored``.

The music encoder's predictions are cached in ``<cache_dir>/<key>.npz``, the key hashing the
model (config and every weight), the library's content (table fingerprints, or each file's
size and modification time) and the clip options, so a second run with the same checkpoint and
library reads the cache instead of embedding anything.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from tqdm.auto import tqdm

from captioner.content import to_row
from dataset_card.schema import MUSIC, SPLITS
from mmva_model.data import DataError, TableSplit, load_table
from mmva_model.encoders.base import Batch
from mmva_model.media import MediaError, decode_audio, media_bytes
from mmva_model.model import MMVA
from mmva_model.zeroshot.errors import ZeroShotError
from mmva_model.progress import hf_progress
from mmva_model.zeroshot.predict import encode_prepared, model_hash
from pipeline import audio as pipeline_audio
from pipeline import descriptors as pipeline_descriptors
from pipeline.tagging import tag_song

DEFAULT_CACHE = "runs/cache/mmva-library"
CACHE_VERSION = 1  # bump when what a cache file holds changes meaning
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac",
                              ".webm", ".aif", ".aiff", ".wma", ".mka"})
ANALYSIS_RATE = 22050  # what pipeline.descriptors analyses at; files are decoded once at this rate
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass
class LibraryFailure:
    """A library item (an audio file, a table row) that gave no clips, and why."""

    item: str
    error_type: str
    message: str


@dataclass
class LibraryOptions:
    """How a folder of audio files is cut; part of the cache key."""

    clip_seconds: float = 10.0
    max_file_seconds: float = 3600.0  # longer files are failures ("too_long"), not decoded


@dataclass
class LibraryInfo:
    """What the library is, for outputs: where from, how many clips, what failed."""

    source: str
    kind: str
    clips: int
    failed: int
    ignored: int
    from_cache: bool
    cache_path: str | None
    failures: list[LibraryFailure]


@dataclass
class MusicLibrary:
    """Clips with the predicted VA and embeddings of one model; row ``i`` of every field is clip ``i``."""

    source: str
    kind: str
    ids: list[str]
    va: np.ndarray  # (N, 2) predicted by the model's music encoder
    embedding: np.ndarray  # (N, d) unit norm
    captions: list[str]  # "" where the source has none (audio folders)
    descriptors: list[dict[str, Any]]
    annotated_va: np.ndarray  # (N, 2) the dataset's labels; NaN where unknown (audio folders)
    origins: list[dict[str, Any]]  # where each clip's audio is (see ORIGINS)
    model_hash: str
    failures: list[LibraryFailure] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    from_cache: bool = False
    cache_path: str | None = None
    _tables: dict[str, TableSplit] = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, clip_id: str) -> int:
        """Row of ``clip_id``; ZeroShotError naming a few known ids otherwise."""
        try:
            return self.ids.index(clip_id)
        except ValueError:
            raise ZeroShotError(f"clip {clip_id!r} is not in the library {self.source} "
                                f"({len(self)} clips, e.g. {self.ids[:3]})") from None

    def audio(self, i: int, sample_rate: int) -> np.ndarray:
        """Clip ``i`` as mono float32 at ``sample_rate``."""
        origin = self.origins[i]
        return ORIGINS[origin["kind"]](self, origin, sample_rate)

    def info(self) -> LibraryInfo:
        return LibraryInfo(self.source, self.kind, len(self), len(self.failures), len(self.ignored),
                           self.from_cache, self.cache_path, list(self.failures))


def _table_audio(lib: MusicLibrary, origin: dict[str, Any], sample_rate: int) -> np.ndarray:
    split = origin["split"]
    if split not in lib._tables:
        lib._tables[split] = load_table(lib.source, MUSIC, split)
    return decode_audio(media_bytes(lib._tables[split].row(origin["row"])["audio"]), sample_rate)


def _file_audio(lib: MusicLibrary, origin: dict[str, Any], sample_rate: int) -> np.ndarray:
    return pipeline_audio.decode(Path(lib.source) / origin["path"], sample_rate,
                                 start_s=origin["start_s"], end_s=origin["end_s"])


ORIGINS: dict[str, Callable[[MusicLibrary, dict[str, Any], int], np.ndarray]] = {
    "table": _table_audio, "file": _file_audio,
}


# -- building ---------------------------------------------------------------------------------

@dataclass
class _Collected:
    """Per-clip metadata gathered while the clips stream through the encoder."""

    ids: list[str] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    descriptors: list[dict[str, Any]] = field(default_factory=list)
    annotated: list[tuple[float, float]] = field(default_factory=list)
    origins: list[dict[str, Any]] = field(default_factory=list)
    failures: list[LibraryFailure] = field(default_factory=list)

    def add(self, clip_id: str, caption: str, desc: dict, annotated: tuple[float, float], origin: dict) -> None:
        self.ids.append(clip_id)
        self.captions.append(caption)
        self.descriptors.append(dict(desc or {}))
        self.annotated.append(annotated)
        self.origins.append(origin)


@dataclass
class _Plan:
    """A library ready to build: its content key (for the cache) and the clips to encode."""

    kind: str
    source: str
    content_key: Any
    clips: Callable[[MMVA, _Collected, bool], Iterator[Batch]]
    ignored: list[str] = field(default_factory=list)


def _plan_dataset(source: str, options: LibraryOptions) -> _Plan:
    try:
        splits = [s for s in SPLITS if s in datasets.get_dataset_split_names(source, MUSIC)]
    except (FileNotFoundError, ValueError) as e:
        raise DataError(f"{source}: no music table to use as a library ({e})") from e
    tables = [load_table(source, MUSIC, s) for s in splits]
    if not any(len(t) for t in tables):
        raise ZeroShotError(f"{source}: the music table has no clips")

    def clips(model: MMVA, out: _Collected, progress: bool) -> Iterator[Batch]:
        encoder = model.encoder("music")
        bar = tqdm(total=sum(len(t) for t in tables), desc="embedding library", unit="clip", disable=not progress)
        for table in tables:
            for i in range(len(table)):
                bar.update()
                row = table.row(i)
                try:
                    prepared = encoder.prepare(row)
                except (MediaError, KeyError, TypeError, ValueError) as e:
                    out.failures.append(LibraryFailure(table.ids[i], type(e).__name__, str(e)))
                    continue
                out.add(table.ids[i], str(row.get("caption") or ""), row.get("descriptors"),
                        (float(row["valence"]), float(row["arousal"])),
                        {"kind": "table", "split": table.split, "row": i})
                yield prepared
        bar.close()

    key = [str(Path(source).resolve()) if Path(source).exists() else source, [(t.split, t.fingerprint) for t in tables]]
    return _Plan("dataset", source, key, clips)


def _audio_files(root: Path) -> tuple[list[Path], list[str]]:
    """(audio files, ignored other files), both sorted by relative path."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    audio = [p for p in files if p.suffix.lower() in AUDIO_EXTENSIONS]
    ignored = [p.relative_to(root).as_posix() for p in files if p.suffix.lower() not in AUDIO_EXTENSIONS]
    return audio, ignored


def _file_clips(path: Path, options: LibraryOptions, taggers: tuple[str, ...] = ()
                ) -> list[tuple[int, float, float, np.ndarray, dict]]:
    """(index, start_s, end_s, samples, row fields) of one file's clips; raises AudioError/ValueError.

    The row fields are the clip's descriptors and, with ``taggers``, its ``tag_probs`` and
    ``tag_embeddings``: the file tagged once, each clip the mean of its patches, as the pipeline
    does for a song (the ``musicnn`` encoder reads them instead of tagging each clip again)."""
    x = pipeline_audio.decode(path, ANALYSIS_RATE, max_seconds=options.max_file_seconds)
    duration = len(x) / ANALYSIS_RATE
    windows = pipeline_audio.clip_grid(duration, options.clip_seconds, options.clip_seconds)
    windows = windows or [(0, 0.0, round(duration, 3))]  # a short file is one (short) clip
    analysis = pipeline_descriptors.analyze(x, ANALYSIS_RATE)
    tags = tag_song(x, ANALYSIS_RATE, taggers) if taggers else None
    out = []
    for index, start, end in windows:
        samples = x[int(round(start * ANALYSIS_RATE)):int(round(end * ANALYSIS_RATE))]
        fields = {"descriptors": pipeline_descriptors.clip_descriptors(analysis, start, end)}
        if tags is not None:
            fields |= {"tag_probs": to_row(tags.clip(start, end)),
                       "tag_embeddings": to_row(tags.clip_embeddings(start, end))}
        out.append((index, start, end, samples, fields))
    return out


def _plan_folder(source: str, options: LibraryOptions) -> _Plan:
    root = Path(source)
    files, ignored = _audio_files(root)
    if not files:
        raise ZeroShotError(f"{root}: no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))}) in this folder")
    rel = [p.relative_to(root).as_posix() for p in files]
    stats = [(r, p.stat().st_size, p.stat().st_mtime_ns) for r, p in zip(rel, files)]

    def clips(model: MMVA, out: _Collected, progress: bool) -> Iterator[Batch]:
        encoder = model.encoder("music")
        taggers = encoder.row_taggers  # tag each file once for an encoder that reads the tags
        for path, name in tqdm(list(zip(files, rel)), desc="embedding library", unit="file", disable=not progress):
            try:
                file_clips = _file_clips(path, options, taggers)
            except pipeline_audio.AudioError as e:
                out.failures.append(LibraryFailure(name, e.error_type, e.message))
                continue
            except (ValueError, OSError) as e:  # analysis of a degenerate signal; unreadable file
                out.failures.append(LibraryFailure(name, type(e).__name__, str(e)))
                continue
            for index, start, end, samples, fields in file_clips:
                row = {"audio": pipeline_audio.encode_flac(samples, ANALYSIS_RATE), **fields}
                prepared = encoder.prepare(row)  # our own FLAC bytes: a failure here is a bug, so it raises
                out.add(f"{name}#{index}", "", fields["descriptors"], (float("nan"), float("nan")),
                        {"kind": "file", "path": name, "start_s": start, "end_s": end})
                yield prepared

    return _Plan("folder", str(root.resolve()), [str(root.resolve()), stats, asdict(options)], clips, ignored)


def _is_dataset_dir(p: Path) -> bool:
    """A run or built dataset folder: its README declares the music config (an audio folder's
    own README does not)."""
    readme = p / "README.md"
    return readme.is_file() and f"config_name: {MUSIC}" in readme.read_text(encoding="utf-8", errors="replace")


LIBRARY_KINDS: dict[str, tuple[Callable[[str], bool], Callable[[str, LibraryOptions], _Plan]]] = {
    # name: (does this source look like it, plan); tried in order
    "dataset": (lambda s: Path(s).is_dir() and _is_dataset_dir(Path(s)), _plan_dataset),
    "folder": (lambda s: Path(s).is_dir(), _plan_folder),
    "hub": (lambda s: not Path(s).exists() and bool(_HUB_ID.match(s)) and not s.startswith(("runs/", "./")),
            _plan_dataset),
}


def library_kind(source: str) -> str:
    """Which of :data:`LIBRARY_KINDS` ``source`` is; ZeroShotError when none fits."""
    for name, (detect, _) in LIBRARY_KINDS.items():
        if detect(source):
            return name
    raise ZeroShotError(f"no music library at {source!r}: give a pipeline run folder, a built dataset "
                        "folder, a Hugging Face dataset id (owner/name) or a folder of audio files")


def cache_key(model_id: str, plan: _Plan) -> str:
    payload = json.dumps([CACHE_VERSION, plan.kind, model_id, plan.content_key], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def load_library(source: str | os.PathLike, model: MMVA, *, options: LibraryOptions | None = None,
                 cache_dir: str | os.PathLike | None = DEFAULT_CACHE, batch_size: int = 32,
                 progress: bool = False) -> MusicLibrary:
    """The library at ``source`` as ``model`` sees it: from the cache, or embedded and cached.

    ``cache_dir=None`` turns the cache off (always embeds, writes nothing).
    """
    source = str(source)
    options = options or LibraryOptions()
    if options.clip_seconds <= 0:
        raise ZeroShotError(f"clip_seconds must be > 0 (got {options.clip_seconds})")
    with hf_progress(progress):
        plan = LIBRARY_KINDS[library_kind(source)][1](source, options)
    mhash = model_hash(model)
    path = Path(cache_dir) / f"{cache_key(mhash, plan)}.npz" if cache_dir is not None else None
    if path is not None and path.is_file():
        return read_cache(path)
    got = _Collected()
    va, emb = encode_prepared(model, "music", plan.clips(model, got, progress), batch_size)
    lib = MusicLibrary(plan.source, plan.kind, got.ids, va, emb, got.captions, got.descriptors,
                       np.asarray(got.annotated, dtype=np.float32).reshape(-1, 2), got.origins, mhash,
                       got.failures, plan.ignored)
    if not len(lib):
        raise ZeroShotError(f"{source}: no clip could be used ({len(lib.failures)} failures: "
                            + "; ".join(f"{f.item}: {f.message}" for f in lib.failures[:3]) + ")")
    if path is not None:
        write_cache(lib, path)
        lib.cache_path = str(path)
    return lib


# -- cache ------------------------------------------------------------------------------------

_META_FIELDS = ("source", "kind", "ids", "captions", "descriptors", "origins", "model_hash", "ignored")


def write_cache(lib: MusicLibrary, path: Path) -> None:
    """Arrays plus a JSON string in one ``.npz``, written atomically (read back without pickle)."""
    meta = {k: getattr(lib, k) for k in _META_FIELDS}
    meta["failures"] = [asdict(f) for f in lib.failures]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, va=lib.va, embedding=lib.embedding, annotated_va=lib.annotated_va, meta=np.array(json.dumps(meta)))
    tmp.replace(path)


def read_cache(path: Path) -> MusicLibrary:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        arrays = {k: z[k] for k in ("va", "embedding", "annotated_va")}
    failures = [LibraryFailure(**f) for f in meta.pop("failures")]
    return MusicLibrary(**meta, **arrays, failures=failures, from_cache=True, cache_path=str(path))


def resolve_library(library: MusicLibrary | str | os.PathLike, model: MMVA, **load_kwargs) -> MusicLibrary:
    """``library`` itself (checked to be ``model``'s embedding) or loaded from a source."""
    if isinstance(library, MusicLibrary):
        if library.model_hash != model_hash(model):
            raise ZeroShotError(f"the library {library.source} was embedded by another model: "
                                "load it again with this one (load_library(source, model))")
        return library
    return load_library(library, model, **load_kwargs)
