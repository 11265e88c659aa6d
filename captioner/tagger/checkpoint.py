"""Read a TensorFlow (V2 bundle) checkpoint without TensorFlow: ``<prefix>.index`` + ``.data-*``.

The index is a LevelDB-layout table (sorted keys, prefix-compressed entries, uncompressed blocks,
a 48-byte footer ending in LevelDB's magic number). Its key ``""`` holds the bundle header; every
other key is a tensor name whose value is a ``BundleEntryProto`` (dtype, shape, shard, offset,
size). The data file holds the tensors' raw little-endian bytes at those offsets. The few protobuf
fields needed are decoded here by hand, so reading needs neither TensorFlow nor protobuf.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_BYTES = 48
_BLOCK_TRAILER_BYTES = 5  # compression type (1 byte) + masked crc32c (4 bytes)

# tensorflow/core/framework/types.proto: the numeric dtypes a checkpoint of a model holds.
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8,
           9: np.int64, 10: np.bool_, 17: np.uint16, 19: np.float16, 22: np.uint32, 23: np.uint64}


class CheckpointError(ValueError):
    """A file that is not a readable TensorFlow checkpoint, or an entry this reader cannot read."""


@dataclass(frozen=True)
class TensorEntry:
    """Where one tensor lives in the data file, and what it is."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise CheckpointError("truncated varint")
        b = buf[pos]
        value |= (b & 0x7F) << shift
        pos += 1
        if not b & 0x80:
            return value, pos
        shift += 7


def _proto_fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs of a serialized protobuf message; groups are not supported."""
    out, pos = [], 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise CheckpointError(f"unsupported protobuf wire type {wire}")
        out.append((field, value))
    return out


def _shape(buf: bytes) -> tuple[int, ...]:
    """TensorShapeProto: repeated ``dim`` (field 2), each with ``size`` (field 1)."""
    dims = []
    for field, value in _proto_fields(buf):
        if field == 3 and value:  # unknown_rank
            raise CheckpointError("tensor of unknown rank")
        if field == 2:
            dims.append(next((v for f, v in _proto_fields(value) if f == 1), 0))
    return tuple(dims)


def _entry(name: str, buf: bytes) -> TensorEntry:
    """BundleEntryProto: dtype=1, shape=2, shard_id=3, offset=4, size=5, crc32c=6, slices=7."""
    fields = dict(_proto_fields(buf))
    if 7 in fields:
        raise CheckpointError(f"{name}: partitioned (sliced) tensors are not supported")
    dtype_id = fields.get(1, 0)
    if dtype_id not in _DTYPES:
        raise CheckpointError(f"{name}: unsupported dtype id {dtype_id}")
    return TensorEntry(name=name, dtype=np.dtype(_DTYPES[dtype_id]).newbyteorder("<"),
                       shape=_shape(fields.get(2, b"")), shard=fields.get(3, 0),
                       offset=fields.get(4, 0), size=fields.get(5, 0))


def _block(data: bytes, handle: bytes) -> bytes:
    """The contents of the block a (varint offset, varint size) handle points at."""
    offset, pos = _varint(handle, 0)
    size, _ = _varint(handle, pos)
    end = offset + size
    if end + _BLOCK_TRAILER_BYTES > len(data):
        raise CheckpointError("block handle points past the end of the index file")
    if data[end] != 0:
        raise CheckpointError(f"compressed index block (type {data[end]}) is not supported")
    return data[offset:end]


def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    """Key/value pairs of one block (keys are stored as shared-prefix length + suffix)."""
    if len(block) < 4:
        raise CheckpointError("index block too short")
    n_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * n_restarts
    out, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        n_value, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        out.append((key, block[pos:pos + n_value]))
        pos += n_value
    return out


def read_index(index_path: str | Path) -> dict[str, TensorEntry]:
    """Every tensor entry of a checkpoint's ``.index`` file, by name."""
    data = Path(index_path).read_bytes()
    if len(data) < _FOOTER_BYTES or struct.unpack_from("<Q", data, len(data) - 8)[0] != _TABLE_MAGIC:
        raise CheckpointError(f"{index_path}: not a TensorFlow checkpoint index (no table magic)")
    footer = data[-_FOOTER_BYTES:]
    _, pos = _varint(footer, 0)  # metaindex handle: offset
    _, pos = _varint(footer, pos)  # ... and size (the metaindex block is empty in checkpoints)
    entries: dict[str, TensorEntry] = {}
    for _, data_handle in _block_entries(_block(data, footer[pos:])):
        for key, value in _block_entries(_block(data, data_handle)):
            if key:  # the empty key is the BundleHeaderProto
                name = key.decode("utf-8")
                entries[name] = _entry(name, value)
    return entries


class Checkpoint:
    """A TensorFlow checkpoint given by its prefix (``<prefix>.index``, ``<prefix>.data-*``)."""

    def __init__(self, prefix: str | Path):
        self.prefix = str(prefix)
        index = Path(self.prefix + ".index")
        if not index.is_file():
            raise CheckpointError(f"no checkpoint index at {index}")
        self.entries = read_index(index)
        shards = {e.shard for e in self.entries.values()}
        self._n_shards = max(shards) + 1 if shards else 1

    def _data_path(self, shard: int) -> Path:
        return Path(f"{self.prefix}.data-{shard:05d}-of-{self._n_shards:05d}")

    def names(self) -> list[str]:
        """Tensor names, sorted (the index's order)."""
        return sorted(self.entries)

    def read(self, name: str) -> np.ndarray:
        """One tensor as a native-endian numpy array of its checkpoint shape."""
        if name not in self.entries:
            raise KeyError(f"{name!r} is not in checkpoint {self.prefix}")
        e = self.entries[name]
        expected = int(np.prod(e.shape, dtype=np.int64)) * e.dtype.itemsize
        if e.size != expected:
            raise CheckpointError(f"{name}: {e.size} bytes stored, {expected} expected for {e.shape}")
        with open(self._data_path(e.shard), "rb") as f:
            f.seek(e.offset)
            raw = f.read(e.size)
        if len(raw) != e.size:
            raise CheckpointError(f"{name}: data file ends before the tensor does")
        return np.frombuffer(raw, dtype=e.dtype).astype(e.dtype.newbyteorder("="))\
            .reshape(e.shape)

    def read_all(self) -> dict[str, np.ndarray]:
        """Every tensor, by name."""
        return {name: self.read(name) for name in self.names()}
