"""Encoder inputs for training and evaluation, live or from the frozen-feature cache.

``PreparedRows`` runs each encoder's ``prepare`` on a table row (DataLoader workers). Streams
turn a batch sampler's index lists into ``{modality: frozen outputs}`` on the device:

- :class:`LiveStream` prepares rows and runs the frozen parts (backbones) every step;
- :class:`CachedStream` indexes tensors computed once by :func:`build_cache` and stored as
  safetensors under ``<cache_dir>/<data fingerprint>-<modality>-<encoder fingerprint>``: a
  change of data, encoder, options or frozen weights gives a new key, never stale features.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from dataset_card.schema import IMAGES, MUSIC
from mmva_model.data import DataError, SplitData, TableSplit, _name_rows
from mmva_model.encoders.base import Batch, Encoder
from mmva_model.media import MediaError

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


def cache_path(cache_dir: str | Path, split: TableSplit, modality: str, encoder: Encoder) -> Path:
    return Path(cache_dir) / f"{split.fingerprint}-{modality}-{encoder.registry_name}-{encoder.fingerprint()}.safetensors"


def build_cache(split: TableSplit, encoders: dict[str, Encoder], *, cache_dir: str | Path = DEFAULT_CACHE,
                batch_size: int = 64, num_workers: int = 0, device: torch.device | None = None,
                progress: bool = True) -> Frozen:
    """Frozen outputs of every row for each encoder, from the cache or computed once and stored.

    Undecodable rows stop the run with a DataError naming all of them.
    """
    device = device or torch.device("cpu")
    paths = {m: cache_path(cache_dir, split, m, enc) for m, enc in encoders.items()}
    out = {m: load_file(str(p)) for m, p in paths.items() if p.is_file()}
    todo = {m: enc for m, enc in encoders.items() if m not in out}
    if not todo:
        return out
    loader = DataLoader(PreparedRows(split, todo, collect_errors=True), batch_size=batch_size,
                        num_workers=num_workers, collate_fn=collate_prepared(todo), generator=own_generator())
    parts: dict[str, list[Batch]] = {m: [] for m in todo}
    errors: list[str] = []
    desc = f"caching {'+'.join(todo)} features ({split.table}/{split.split})"
    for _, batch, errs in tqdm(loader, desc=desc, disable=not progress, unit="batch"):
        errors += errs
        if batch:
            for m, frozen in run_frozen(todo, batch, device).items():
                parts[m].append({k: v.cpu() for k, v in frozen.items()})
    if errors:
        raise DataError(f"table {split.table!r} ({split.split}): {len(errors)} rows cannot be "
                        f"decoded: {_name_rows(errors)}")
    for m, chunks in parts.items():
        out[m] = {k: _storage(torch.cat([c[k] for c in chunks])) for k in chunks[0]}
        paths[m].parent.mkdir(parents=True, exist_ok=True)
        tmp = paths[m].with_suffix(".tmp")
        save_file(out[m], str(tmp))
        tmp.replace(paths[m])  # atomic: a killed run never leaves a half-written cache entry
    return out


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


def _storage(t: torch.Tensor) -> torch.Tensor:
    """Large float inputs (log-mel patches) are stored as float16: half the disk, same ranks."""
    if t.is_floating_point() and t[0].numel() > 16384:
        return t.half().contiguous()
    return t.contiguous()
