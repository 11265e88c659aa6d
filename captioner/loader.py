"""The job's clip loader: read, decode and prepare clips in worker processes, batch them by length.

The GPU process should only run the model: each loader worker reads its share of the row groups
that hold this rank's clips (only those, and only the columns the backend uses), decodes the audio and, for backends with a ``preparer`` (audio-llm), resamples
and computes the model's features. Workers hand over one clip at a time; the main process
groups clips of one length into batches (:func:`~captioner.audio_prep.bucket_by_length`), so
a batch holds no audio padding. A clip that cannot be decoded or prepared travels as a failure
result, never as an exception.

With ``workers=0`` the same code runs in the calling process. Memory: one row group per worker
plus the DataLoader's prefetch and the length buckets.
"""
from __future__ import annotations

import io
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pyarrow.parquet as pq
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from captioner.audio_prep import AUDIO_CORRUPT, PreparedClip, bucket_by_length
from captioner.base import CaptionResult, ClipForCaption
from captioner.content import from_row


@dataclass
class LoadedBatch:
    """Clips ready for ``caption`` (one length when prepared), and clips that already failed."""

    clips: list[Any] = field(default_factory=list)
    failed: list[CaptionResult] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.clips) + len(self.failed)


def decode_audio(data: bytes) -> tuple[np.ndarray, int]:
    """Mono-or-multichannel float32 samples and rate of WAV (stdlib) or any soundfile format (FLAC)."""
    if data[:4] == b"RIFF":  # PCM WAV needs nothing beyond the standard library
        with wave.open(io.BytesIO(data)) as w:
            width, channels, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
            raw = w.readframes(w.getnframes())
        if width not in (2, 4):
            raise ValueError(f"WAV with {8 * width}-bit samples; 16- or 32-bit PCM expected")
        x = np.frombuffer(raw, dtype=f"<i{width}").astype(np.float32) / float(2 ** (8 * width - 1))
        return x.reshape(-1, channels), rate
    import soundfile as sf

    return sf.read(io.BytesIO(data), dtype="float32")


class ClipSource(IterableDataset):
    """Iterates this rank's wanted clips, each worker its own row groups; picklable for workers."""

    def __init__(self, shards: Sequence[Path], wanted: set[str], needs_audio: bool,
                 prepare: Callable[[ClipForCaption], Any] | None, captioner_id: str):
        # only the row groups holding wanted clips: shards are sorted by clip id, so a rank's share
        # of a shard is a run of row groups, and the others are never read
        self.units = [(str(p), g) for p in shards for g in row_groups_with(pq.ParquetFile(p), wanted)]
        self.wanted, self.needs_audio, self.prepare, self.captioner_id = wanted, needs_audio, prepare, captioner_id
        self.columns = ["clip_id", "descriptors", "valence", "arousal", "tag_probs"] + (["audio"] if needs_audio else [])

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        for path, group in self.units[worker::workers]:
            shard = pq.ParquetFile(path)
            columns = [c for c in self.columns if c in shard.schema_arrow.names]  # older runs lack tag_probs
            rows = shard.read_row_group(group, columns=columns).to_pylist()
            for row in rows:
                if row["clip_id"] in self.wanted:
                    yield self._load(row)

    def _load(self, row: dict) -> Any:
        samples, rate = None, 0
        if self.needs_audio:
            try:
                samples, rate = decode_audio((row["audio"] or {}).get("bytes") or b"")
            except Exception as e:  # noqa: BLE001 - any decoder error is this clip's failure row
                return CaptionResult(row["clip_id"], None, self.captioner_id, AUDIO_CORRUPT,
                                     f"cannot decode the audio: {type(e).__name__}: {str(e)[:200]}", attempts=0)
        clip = ClipForCaption(row["clip_id"], samples, rate, row["descriptors"], row["valence"], row["arousal"],
                              from_row(row.get("tag_probs")))
        return self.prepare(clip) if self.prepare else clip


def row_groups_with(shard: pq.ParquetFile, wanted: set[str]) -> list[int]:
    """Indices of the row groups of ``shard`` that hold at least one of the ``wanted`` clip ids."""
    ids = shard.read(columns=["clip_id"]).column("clip_id").to_pylist()
    groups, start = [], 0
    for i in range(shard.metadata.num_row_groups):
        n = shard.metadata.row_group(i).num_rows
        if any(c in wanted for c in ids[start:start + n]):
            groups.append(i)
        start += n
    return groups


def _one(item: Any) -> Any:  # DataLoader collate for single items: hand them over unchanged
    return item


def _length(item: Any) -> int:
    """The batching key: audio tokens of a prepared clip; failures batch among themselves."""
    if isinstance(item, CaptionResult):
        return -1
    return item.n_audio_tokens if isinstance(item, PreparedClip) else 0


def batches(shards: Sequence[Path], wanted: set[str], captioner: Any, batch_size: int,
            workers: int = 0) -> Iterator[LoadedBatch]:
    """This rank's clips as :class:`LoadedBatch` es of at most ``batch_size``, one length each."""
    source = ClipSource(shards, wanted, getattr(captioner, "needs_audio", True),
                        getattr(captioner, "preparer", None), captioner.id)
    items = DataLoader(source, batch_size=None, collate_fn=_one, num_workers=workers,
                       prefetch_factor=2 * batch_size if workers else None)
    for batch in bucket_by_length(items, batch_size, key=_length):
        failed = [x for x in batch if isinstance(x, CaptionResult)]
        yield LoadedBatch([x for x in batch if not isinstance(x, CaptionResult)], failed)
