"""The shard writer: HF-loadable, deterministic, bounded, and atomic."""
from __future__ import annotations

import io
import os
import pickle
import random

import apache_beam as beam
import datasets
import numpy as np
import pyarrow as pa
import pytest
import pyarrow.parquet as pq
import soundfile as sf
from PIL import Image

from dataset_card import schema
from pipeline import writer
from pipeline.beam_options import beam_options

DESC = {"tempo_bpm": 120.0, "beat_strength": 1.5, "key": "C", "mode": "major", "key_strength": 0.8,
        "loudness_db": -20.0, "dynamic_range_db": 10.0, "brightness": 1500.0, "onset_rate": 2.0}


def flac(seconds: float = 0.5, sr: int = 16000, f: float = 440.0) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32), sr, format="FLAC")
    return buf.getvalue()


def music_row(i: int, split: str = "train") -> dict:
    return {"clip_id": f"s{i % 7}-{i}", "song_id": f"s{i % 7}", "source": "test", "start_s": 0.0, "end_s": 0.5,
            "audio": {"bytes": flac(f=200 + 10 * i), "path": f"s{i % 7}-{i}.flac"}, "valence": 0.5, "arousal": 0.25,
            "valence_std": 0.0, "arousal_std": 0.0, "caption": f"caption {i}", "captioner": "test",
            "descriptors": DESC, "license": "CC0", "split": split}


def image_row(i: int) -> dict:
    buf = io.BytesIO()
    Image.new("RGB", (40, 40), (i * 20 % 255, 100, 50)).save(buf, format="PNG")
    return {"image_id": f"img{i}", "image": {"bytes": buf.getvalue(), "path": f"img{i}.png"},
            "source": "test", "valence": 0.1 * i, "arousal": 0.5, "split": "train"}


def run_writer(out: str, rows: list[tuple[str, dict]], max_bytes: int = writer.MAX_SHARD_BYTES) -> list:
    with beam.Pipeline(options=beam_options()) as p:
        shards = p | beam.Create(rows) | writer.WriteTables(out, max_bytes)
        shards | beam.Map(lambda s: open(os.path.join(out, "infos.txt"), "a").write(s.path + "\n"))
    return sorted(open(os.path.join(out, "infos.txt")).read().split())


def test_same_rows_in_any_order_give_identical_bytes(tmp_path):
    rows = [("music", music_row(i)) for i in range(12)]
    a, b = tmp_path / "a", tmp_path / "b"
    run_writer(str(a), rows, max_bytes=8000)
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    run_writer(str(b), shuffled, max_bytes=8000)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*.parquet"))
    assert len(files_a) > 1, "the small shard bound should have split the table"
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*.parquet"))
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes()


def test_packed_rows_come_back_equal_and_smaller_than_their_dict(tmp_path):
    """Light rows are staged packed: values in column order, no names repeated per row."""
    import sys

    row = writer.stage_media(str(tmp_path), "music", {**music_row(3), "audio": {"bytes": None, "path": "x.flac"}},
                             "audio", flac())
    packed = writer.pack_row("music", row)
    assert isinstance(packed, bytes) and writer.unpack_row("music", packed) == row
    assert isinstance(writer.unpack_row("music", packed)[writer.STAGED]["audio"], tuple)
    as_objects = sys.getsizeof(row) + sum(sys.getsizeof(v) for v in row.values())
    assert len(packed) < as_objects  # even counting only the top level of the dict
    # no column or descriptor name travels with the values
    assert len(packed) < 0.8 * len(pickle.dumps(row, protocol=pickle.HIGHEST_PROTOCOL))


def test_packing_keeps_what_the_schema_does_not_describe():
    """A missing column, a struct with other keys and extra keys come back as they were."""
    row = {"clip_id": "1-9", "descriptors": {"tempo_bpm": 90.0}, "audio": None, "note": [1, 2]}
    assert writer.unpack_row("music", writer.pack_row("music", row)) == row


def test_every_planned_shard_exists_even_if_empty():
    assert writer.shard_count(0, 10) == 1
    assert writer.shard_count(25, 10) == 3
    counts = [writer.shard_of(f"id{i}", 3) for i in range(300)]
    assert set(counts) == {0, 1, 2}


def test_shards_respect_bound_and_sort_rows(tmp_path):
    rows = [("music", music_row(i)) for i in range(20)]
    paths = run_writer(str(tmp_path), rows, max_bytes=12000)
    total = 0
    for rel in paths:
        t = pq.read_table(tmp_path / rel)
        ids = t.column("clip_id").to_pylist()
        assert ids == sorted(ids)
        total += t.num_rows
        assert "huggingface" in {k.decode() for k in t.schema.metadata}
    assert total == 20
    assert all(p.endswith(f"-of-{len(paths):05d}.parquet") for p in paths)


def test_written_folder_loads_with_datasets_and_decodes_media(tmp_path):
    rows = [("music", music_row(i, split)) for i, split in enumerate(["train"] * 4 + ["test"] * 2)]
    rows += [("images", image_row(i)) for i in range(3)]
    paths = run_writer(str(tmp_path), rows)
    shards = [writer.ShardInfo(p.split("/")[1], os.path.basename(p).split("-")[0], 0, 1, 0, p) for p in paths]
    (tmp_path / "README.md").write_text(writer.dataset_readme(shards))
    music = datasets.load_dataset(str(tmp_path), "music")
    assert set(music) == {"train", "test"} and music["train"].num_rows == 4
    assert isinstance(music["train"].features["audio"], datasets.Audio)
    clip = music["train"][0]["audio"]
    samples = clip.get_all_samples()
    assert samples.sample_rate == 16000 and samples.data.shape[-1] == 8000
    images = datasets.load_dataset(str(tmp_path), "images")["train"]
    assert isinstance(images.features["image"], datasets.Image)
    assert images[0]["image"].size == (40, 40)


def test_failures_file_is_sorted_and_typed(tmp_path):
    from pipeline.types import Failure

    fails = [Failure("b", "decode", "silent", "m"), Failure("a", "download", "http_404", "m", 1, "song")]
    with beam.Pipeline(options=beam_options()) as p:
        p | beam.Create(fails) | writer.WriteFailures(str(tmp_path))
    t = pq.read_table(tmp_path / "failures" / "failures.parquet")
    assert t.schema == schema.FAILURE_SCHEMA
    assert t.column("item_id").to_pylist() == ["a", "b"]


def test_atomic_write_leaves_no_temp_files(tmp_path):
    target = tmp_path / "x" / "y.bin"
    writer.write_atomic(str(target), b"123")
    writer.write_atomic(str(target), b"456")
    assert target.read_bytes() == b"456"
    assert os.listdir(target.parent) == ["y.bin"]


def _staged_rows(out, n: int) -> list[dict]:
    """Music rows with their FLAC staged, as the pipeline's stages hand them to the writer."""
    rows = []
    for i in range(n):
        row = music_row(i)
        data = row["audio"]["bytes"]
        row["audio"] = {"bytes": None, "path": row["audio"]["path"]}
        rows.append(writer.stage_media(str(out), "music", row, "audio", data))
    return rows


@pytest.mark.parametrize("n", [0, 1, 7])
def test_incremental_row_groups_give_the_bytes_of_one_whole_table_write(tmp_path, monkeypatch, n):
    monkeypatch.setattr(writer, "MAX_ROW_GROUP_BYTES", 3 * len(flac()) + 3 * 300)  # a few rows per group
    rows = _staged_rows(tmp_path / "out", n)
    got = tmp_path / "got.parquet"
    writer.write_parquet(str(got), "music", list(reversed(rows)))
    full = sorted((writer.unstage(r) for r in rows), key=lambda r: r["clip_id"])
    arrow_schema = schema.arrow_schema("music")
    avg = max(1, sum(writer.row_bytes(r) for r in full) // max(1, n))
    expected = tmp_path / "expected.parquet"
    group = max(1, writer.MAX_ROW_GROUP_BYTES // avg)
    pq.write_table(pa.Table.from_pylist(full, schema=arrow_schema), str(expected),
                   row_group_size=group, **writer._encoding(arrow_schema))
    assert got.read_bytes() == expected.read_bytes()
    assert pq.ParquetFile(got).num_row_groups == max(1, -(-n // group))
    assert n < 7 or pq.ParquetFile(got).num_row_groups > 1


def test_writer_reads_media_back_one_row_group_at_a_time(tmp_path, monkeypatch):
    rows = _staged_rows(tmp_path / "out", 8)
    avg = sum(writer.row_bytes(r) for r in rows) // 8
    monkeypatch.setattr(writer, "MAX_ROW_GROUP_BYTES", 3 * avg)  # 3 rows per group
    events = []
    real_read, real_write = writer._read_staged, pq.ParquetWriter.write_table
    monkeypatch.setattr(writer, "_read_staged", lambda rs, c: events.append(f"read{len(rs)}") or real_read(rs, c))
    monkeypatch.setattr(pq.ParquetWriter, "write_table",
                        lambda self, t, **kw: events.append(f"write{t.num_rows}") or real_write(self, t, **kw))
    writer.write_parquet(str(tmp_path / "x.parquet"), "music", rows)
    assert events == ["read3", "write3", "read3", "write3", "read2", "write2"]
    assert all(writer.STAGED in r for r in rows), "the caller's light rows are left as they were"


def test_a_staged_file_that_changed_size_is_an_error_not_a_short_row(tmp_path):
    rows = _staged_rows(tmp_path / "out", 2)
    uri, _ = rows[1][writer.STAGED]["audio"]
    with open(uri, "ab") as fh:
        fh.write(b"x")
    with pytest.raises(IOError, match="bytes, .* expected"):
        writer.write_parquet(str(tmp_path / "x.parquet"), "music", rows)
    assert not (tmp_path / "x.parquet").exists()


def _stage_bundle(out: str, elements: list[tuple[str, dict]]) -> list:
    """What StageRows emits for one bundle of ``elements``, run by hand."""
    fn = writer.StageRows(out)
    fn.start_bundle()
    emitted = [kv for e in elements for kv in fn.process(e)]
    fn.finish_bundle()
    return emitted


def test_rows_are_staged_one_file_per_bundle_and_read_back_equal(tmp_path):
    """Only addresses cross the shuffles; the writer gets the very rows back, in the order asked."""
    out = str(tmp_path)
    first = [("music", music_row(i)) for i in range(5)]
    second = [("music", music_row(i)) for i in range(5, 8)]
    emitted = _stage_bundle(out, first) + _stage_bundle(out, second)
    assert [k for k, _ in emitted] == [("music", r["clip_id"]) for _, r in first + second]
    assert len(list((tmp_path / writer.STAGING_DIR / writer.ROWS_DIR).iterdir())) == 2
    refs = [ref for _, (tag, ref) in emitted]
    assert all(tag == "row" for _, (tag, _) in emitted) and len({file for file, _, _ in refs}) == 2
    refs.reverse()
    assert writer.read_rows(out, "music", refs) == [r for _, r in reversed(first + second)]


def test_a_staged_rows_file_cut_short_is_an_error_naming_it(tmp_path):
    emitted = _stage_bundle(str(tmp_path), [("music", music_row(i)) for i in range(3)])
    (path,) = (tmp_path / writer.STAGING_DIR / writer.ROWS_DIR).iterdir()
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(IOError, match=f"{path.name}.*expected"):
        writer.read_rows(str(tmp_path), "music", [ref for _, (_, ref) in emitted])


def test_rows_with_media_inline_are_written_as_well(tmp_path):
    """Rows that carry their bytes (nothing staged) take the plain path, same file."""
    staged = _staged_rows(tmp_path / "out", 3)
    inline = [writer.unstage(r) for r in staged]
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    writer.write_parquet(str(a), "music", staged)
    writer.write_parquet(str(b), "music", inline)
    assert a.read_bytes() == b.read_bytes()


def test_media_past_the_binary_types_2_gib_are_refused_by_name():
    rows = [{writer.STAGED: {"audio": ("mem://a", 2**30)}}, {writer.STAGED: {"audio": ("mem://b", 2**30)}}]
    with pytest.raises(ValueError, match="2 GiB"):
        writer._read_staged(rows, "audio")
