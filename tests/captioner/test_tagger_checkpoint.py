"""The TensorFlow checkpoint reader, on the musicnn wheel's own checkpoints and on broken copies."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from captioner.tagger import api
from captioner.tagger.checkpoint import Checkpoint, CheckpointError, _varint
from captioner.tagger.model import Musicnn, load_weights

MODELS = ("MTT_musicnn", "MSD_musicnn")


@pytest.fixture(scope="module", params=MODELS)
def prefix(request):
    return api.checkpoint_prefix(request.param)


def test_every_tensor_reads_with_its_shape_and_the_entries_tile_the_data_file(prefix):
    ckpt = Checkpoint(prefix)
    tensors = ckpt.read_all()
    assert set(tensors) == set(ckpt.entries) and len(tensors) > 0
    for name, array in tensors.items():
        assert array.shape == ckpt.entries[name].shape, name
        assert np.isfinite(array).all(), name
    # The byte ranges follow one another with no gap or overlap and end where the file does.
    spans = sorted((e.offset, e.size) for e in ckpt.entries.values())
    assert spans[0][0] == 0
    assert all(a + n == b for (a, n), (b, _) in zip(spans, spans[1:]))
    assert spans[-1][0] + spans[-1][1] == os.path.getsize(prefix + ".data-00000-of-00001")


def test_the_model_uses_exactly_the_non_optimizer_tensors(prefix):
    ckpt = Checkpoint(prefix)
    tensors = ckpt.read_all()
    model = load_weights(Musicnn(), tensors)
    n_model = sum(t.numel() for k, t in model.state_dict().items() if not k.endswith("num_batches_tracked"))
    optimizer = [k for k in tensors if k.endswith(("/Adam", "/Adam_1")) or k.endswith("_power")]
    assert n_model == sum(a.size for k, a in tensors.items() if k not in optimizer)
    # Adam keeps two slots per trained variable: what is left is the model's.
    assert len(optimizer) == 2 + 2 * sum(1 for k in tensors if k not in optimizer and "moving_" not in k)


def test_load_weights_refuses_a_missing_an_extra_or_a_misshapen_tensor(prefix):
    tensors = Checkpoint(prefix).read_all()
    missing = {k: v for k, v in tensors.items() if k != "dense_1/bias"}
    with pytest.raises(ValueError, match="no dense_1/bias"):
        load_weights(Musicnn(), missing)
    with pytest.raises(ValueError, match="left unused.*dense_2/kernel"):
        load_weights(Musicnn(), {**tensors, "dense_2/kernel": np.zeros((3, 3), np.float32)})
    bad = {**tensors, "conv2d_2/kernel": tensors["conv2d_2/kernel"][:-1]}
    with pytest.raises(ValueError, match="conv2d_2/kernel: checkpoint shape"):
        load_weights(Musicnn(), bad)


def test_unknown_or_missing_files_give_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint index"):
        Checkpoint(tmp_path / "nothing")
    (tmp_path / "notes.index").write_bytes(b"just some text, not a table" * 4)
    with pytest.raises(CheckpointError, match="not a TensorFlow checkpoint index"):
        Checkpoint(tmp_path / "notes")
    (tmp_path / "tiny.index").write_bytes(b"abc")
    with pytest.raises(CheckpointError, match="not a TensorFlow checkpoint index"):
        Checkpoint(tmp_path / "tiny")
    with pytest.raises(KeyError, match="no/such/tensor"):
        Checkpoint(api.checkpoint_prefix("MTT_musicnn")).read("no/such/tensor")


def _copy(prefix: str, folder) -> str:
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copyfile(prefix + suffix, folder / ("ckpt" + suffix))
    return str(folder / "ckpt")


def test_a_truncated_data_file_or_a_compressed_block_is_refused(tmp_path):
    copy = _copy(api.checkpoint_prefix("MTT_musicnn"), tmp_path)
    ckpt = Checkpoint(copy)
    last = max(ckpt.entries.values(), key=lambda e: e.offset)
    os.truncate(copy + ".data-00000-of-00001", last.offset + last.size - 4)
    with pytest.raises(CheckpointError, match="data file ends"):
        ckpt.read(last.name)
    # The index block's trailer byte says "uncompressed" (0); any other value is refused.
    index = bytearray((tmp_path / "ckpt.index").read_bytes())
    footer = bytes(index[-48:])
    pos = _varint(footer, _varint(footer, 0)[1])[1]  # skip the metaindex handle
    index_offset, pos = _varint(footer, pos)
    index_size, _ = _varint(footer, pos)
    index[index_offset + index_size] = 1  # snappy
    (tmp_path / "ckpt.index").write_bytes(bytes(index))
    with pytest.raises(CheckpointError, match="compressed index block"):
        Checkpoint(copy)
