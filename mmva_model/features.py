"""Encoder inputs for training and evaluation, live or from the frozen-feature cache.

``PreparedRows`` runs each encoder's ``prepare`` on a table row (DataLoader workers). Streams
turn a batch sampler's index lists into ``{modality: frozen outputs}`` on the device:

- :class:`LiveStream` prepares rows and runs the frozen parts (backbones) every step;
- :class:`CachedStream` indexes tensors computed once by :func:`build_cache` and stored under
  ``<cache_dir>/<data fingerprint>-<modality>-<encoder>-<feature fingerprint>/``: a change of
  data, encoder, options, frozen weights or inference form gives a new key, never stale features.

:mod:`mmva_model.feature_cache` holds how an entry is laid out on disk (chunk files and a
completion marker, so a killed caching run resumes where it stopped).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from dataset_card.schema import IMAGES, MUSIC
from mmva_model.data import DataError, SplitData, TableSplit, _name_rows
from mmva_model.encoders.base import Batch, Encoder
from mmva_model.feature_cache import CacheEntry
from mmva_model.media import MediaError
from mmva_model.threads import available_cores, torch_threads

TABLE_MODALITIES = {MUSIC: ("music", "caption"), IMAGES: ("image",)}
DEFAULT_CACHE = "runs/cache/mmva-features"
Frozen = dict[str, Batch]


class PreparedRows(Dataset):
    """Row ``i`` of a table split prepared by the encoders of the table's modalities.

    With ``collect_errors`` an undecodable row yields ``(i, None, message)`` instead of raising,
    so a cache pass can name every bad row at once.
    """

    def __init__(self, split: TableSplit, encoders: dict[str, Encoder], collect_errors: bool = False):
        self.split, self.encoders, self.collect_errors = split, encoders, collect_errors

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int):
        try:
            row = self.split.row(i)
            return i, {m: enc.prepare(row) for m, enc in self.encoders.items()}, None
        except (MediaError, KeyError, TypeError, ValueError) as e:
            message = f"{self.split.ids[i]}: {type(e).__name__}: {e}"
            if self.collect_errors:
                return i, None, message
            raise DataError(f"table {self.split.table!r} ({self.split.split}) row {message}") from e


def collate_prepared(encoders: dict[str, Encoder]):
    """DataLoader collate for PreparedRows items: (row indices, {modality: batch}, error messages)."""

    def collate(items):
        errors = [msg for _, _, msg in items if msg]
        good = [(i, p) for i, p, msg in items if not msg]
        idx = torch.tensor([i for i, _ in good], dtype=torch.long)
        batch = {m: enc.collate([p[m] for _, p in good]) for m, enc in encoders.items()} if good else {}
        return idx, batch, errors
    return collate


def own_generator(seed: int = 0) -> torch.Generator:
    """A DataLoader generator: iterating a loader must not consume the global torch RNG, or a
    run that (re)builds the cache or resumes would draw other dropout masks than one that did not."""
    return torch.Generator().manual_seed(seed)


def _to(batch: Batch, device: torch.device) -> Batch:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def run_frozen(encoders: dict[str, Encoder], batch: dict[str, Batch], device: torch.device) -> Frozen:
    """Each modality's frozen part on ``device`` (no gradients)."""
    with torch.no_grad():
        return {m: enc.frozen(_to(batch[m], device)) for m, enc in encoders.items()}


def table_encoders(model, table: str) -> dict[str, Encoder]:
    """The model's encoders that read ``table`` (music -> music + caption, images -> image)."""
    return {m: model.encoder(m) for m in TABLE_MODALITIES[table]}


class LiveStream:
    """Prepared rows (DataLoader with ``batch_sampler``) -> frozen parts on ``device``, per step."""

    def __init__(self, split: TableSplit, encoders: dict[str, Encoder], batch_sampler: Iterable,
                 device: torch.device, num_workers: int = 0, seed: int = 0):
        self.encoders, self.device = encoders, device
        self.loader = DataLoader(PreparedRows(split, encoders), batch_sampler=batch_sampler,
                                 num_workers=num_workers, collate_fn=collate_prepared(encoders),
                                 generator=own_generator(seed),
                                 persistent_workers=num_workers > 0)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, Frozen]]:
        for idx, batch, _ in self.loader:
            yield idx, run_frozen(self.encoders, batch, self.device)


class CachedStream:
    """Index lists -> slices of cached frozen outputs, on ``device``."""

    def __init__(self, cached: Frozen, batch_sampler: Iterable, device: torch.device):
        self.cached = {m: _to(b, device) for m, b in cached.items()}
        self.batch_sampler, self.device = batch_sampler, device

    def __iter__(self) -> Iterator[tuple[torch.Tensor, Frozen]]:
        for indices in self.batch_sampler:
            idx = torch.as_tensor(indices, dtype=torch.long, device=self.device)
            yield idx, select(self.cached, idx)


def select(cached: Frozen, idx: torch.Tensor) -> Frozen:
    """Rows ``idx`` of cached frozen outputs (float16-stored inputs back to float32)."""
    return {m: {k: _widen(v.index_select(0, idx)) for k, v in b.items()} for m, b in cached.items()}


def _widen(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.dtype == torch.float16 else t


def entry_folder(cache_dir: str | Path, split: TableSplit, modality: str, encoder: Encoder) -> Path:
    """Where ``encoder``'s cached outputs for ``split`` live."""
    name = f"{split.fingerprint}-{modality}-{encoder.registry_name}-{encoder.feature_fingerprint()}"
    return Path(cache_dir) / name


@dataclass
class CacheBatch:
    """One batch of a caching pass: the rows asked for, the outputs of those prepared, the failures."""

    rows: list[int]
    outputs: dict[str, Batch]  # frozen outputs, or prepared inputs when the backbones run elsewhere
    errors: list[str]


class CacheCollate:
    """Collate for a caching pass. On a CPU run the frozen parts run here, in the DataLoader worker
    that prepared the batch, on one thread: processes, not threads, share the cores, so a batch's
    features never depend on how many threads or workers there were (EfficientNet's do depend on
    the batch, which is why batches are fixed by ``feature_cache.FEATURE_BATCH``)."""

    def __init__(self, encoders: dict[str, Encoder], frozen_here: bool):
        self.encoders, self.frozen_here = encoders, frozen_here
        self.collate = collate_prepared(encoders)

    def __call__(self, items) -> CacheBatch:
        _, batch, errors = self.collate(items)
        if self.frozen_here and batch:
            batch = frozen_for_cache(self.encoders, batch, torch.device("cpu"))
        return CacheBatch([i for i, _, _ in items], batch, errors)


def frozen_for_cache(encoders: dict[str, Encoder], batch: dict[str, Batch], device: torch.device) -> Frozen:
    """Frozen parts in inference mode, on the CPU on one thread (see :class:`CacheCollate`)."""
    threads = torch_threads(1) if device.type == "cpu" else contextlib.nullcontext()
    with threads, torch.inference_mode():
        out = {m: enc.frozen(_to(batch[m], device)) for m, enc in encoders.items()}
    # Inference-mode tensors cannot take part in autograd later: hand out ordinary ones.
    return {m: {k: v.clone() if v.is_inference() else v for k, v in b.items()} for m, b in out.items()}


def build_cache(split: TableSplit, encoders: dict[str, Encoder], *, cache_dir: str | Path = DEFAULT_CACHE,
                workers: int | None = None, device: torch.device | None = None, progress: bool = True,
                load: bool = True) -> Frozen:
    """Frozen outputs of every row for each encoder, from the cache or computed once and stored.

    ``workers`` processes prepare rows and, on the CPU, run the frozen parts (default: every core
    this process may use; 0: this process). With ``load=False`` nothing is read back (a caching
    pass whose memory stays bounded by the batches in flight). Undecodable rows stop the run with
    a DataError naming all of them, after every chunk without them has been stored.
    """
    device = device or torch.device("cpu")
    entries = {m: CacheEntry(entry_folder(cache_dir, split, m, enc), len(split)) for m, enc in encoders.items()}
    todo = {m: enc for m, enc in encoders.items() if not entries[m].complete()}
    if todo:
        _fill(split, todo, {m: entries[m] for m in todo}, device=device, progress=progress,
              workers=available_cores() if workers is None else workers)
    return {m: entry.load() for m, entry in entries.items()} if load else {}


def _fill(split: TableSplit, encoders: dict[str, Encoder], entries: dict[str, CacheEntry], *,
          workers: int, device: torch.device, progress: bool) -> None:
    """Compute the chunks some entry lacks, store each as it completes, then mark the entries done."""
    first = next(iter(entries.values()))
    have = set.intersection(*(e.valid_chunks() for e in entries.values()))
    missing = [k for k in range(first.n_chunks) if k not in have]
    here = device.type == "cpu"
    if workers and missing:
        warm_up(split, encoders, device, first.chunk_rows(missing[0]).start)
    loader = DataLoader(PreparedRows(split, encoders, collect_errors=True), batch_sampler=first.batches(missing),
                        num_workers=workers, collate_fn=CacheCollate(encoders, frozen_here=here),
                        generator=own_generator(), prefetch_factor=2 if workers else None)
    bar = tqdm(total=len(split), initial=len(split) - sum(len(first.chunk_rows(k)) for k in missing),
               desc=f"caching {'+'.join(encoders)} features ({split.table}/{split.split})",
               disable=not progress, unit="row", smoothing=0.1)
    errors: list[str] = []
    chunk: _Chunk | None = None
    for cb in loader:
        outputs = cb.outputs if here or not cb.outputs else frozen_for_cache(encoders, cb.outputs, device)
        chunk = chunk or _Chunk(first.chunk_of(cb.rows[0]))
        chunk.add(cb, {m: {k: v.cpu() for k, v in b.items()} for m, b in outputs.items()})
        errors += cb.errors
        if chunk.rows == len(first.chunk_rows(chunk.index)):
            chunk.store(entries)
            chunk = None
        bar.update(len(cb.rows))
    bar.close()
    if errors:
        raise DataError(f"table {split.table!r} ({split.split}): {len(errors)} rows cannot be "
                        f"decoded: {_name_rows(errors)}")
    for entry in entries.values():
        entry.finish()


def warm_up(split: TableSplit, encoders: dict[str, Encoder], device: torch.device, row: int = 0) -> None:
    """One row through every step in this process (before the workers fork, so that they inherit
    its one-time set-ups instead of each doing them again: librosa's lazily imported modules alone
    cost 1.5-5 CPU seconds per process; the folded EfficientNet; oneDNN's kernels)."""
    _, prepared, _ = PreparedRows(split, encoders, collect_errors=True)[row]
    if prepared is not None:
        frozen_for_cache(encoders, {m: encoders[m].collate([prepared[m]]) for m in encoders}, device)


@dataclass
class _Chunk:
    """The outputs of one chunk's batches as they arrive (batches come in order, chunk by chunk)."""

    index: int
    rows: int = 0
    failed: bool = False
    outputs: list[Frozen] = field(default_factory=list)

    def add(self, cb: CacheBatch, outputs: Frozen) -> None:
        self.rows += len(cb.rows)
        self.failed |= bool(cb.errors)
        self.outputs.append(outputs)

    def store(self, entries: dict[str, CacheEntry]) -> None:
        """Write the chunk to every entry, unless a row failed (the run then stops, naming it)."""
        if self.failed:
            return
        for m, entry in entries.items():
            entry.write_chunk(self.index, {k: torch.cat([o[m][k] for o in self.outputs])
                                           for k in self.outputs[0][m]})


def build_split_cache(model, data: SplitData, *, frozen_only: bool = False, **kwargs) -> dict[str, Frozen]:
    """:func:`build_cache` for each table of a split (``kwargs`` go to it), keyed by table.

    With ``frozen_only``, a table whose encoders all train stays live: its cache would hold
    nothing but preprocessed inputs.
    """
    out = {}
    for table, split in ((MUSIC, data.music), (IMAGES, data.images)):
        encoders = table_encoders(model, table)
        if frozen_only and not any(enc.cfg.frozen for enc in encoders.values()):
            continue
        out[table] = build_cache(split, encoders, **kwargs)
    return out
