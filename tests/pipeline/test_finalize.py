"""``finalize`` leaves only this run's shards, on local folders and on object stores alike."""
from __future__ import annotations

import json

import pytest
from apache_beam.io.filesystems import FileSystems

from pipeline import graph
from pipeline.run import finalize
from pipeline.writer import STAGING_DIR, join, write_atomic
from tests.pipeline import fake_store

KEPT = "data/music/train-00000-of-00001.parquet"


def _leftovers(out: str) -> None:
    """A manifest naming one shard, plus what runs leave behind: staged media, stale shards, temps."""
    manifest = {"shards": [{"table": "music", "split": "train", "index": 0, "count": 1, "rows": 1, "path": KEPT}],
                "clip_audio_seconds": 1.0, "failures": 0}
    write_atomic(join(out, graph.MANIFEST), json.dumps(manifest).encode())
    for rel in (KEPT, "data/music/train-00000-of-00002.parquet", "data/music/x.parquet.tmp-1",
                f"{STAGING_DIR}/music/1-9.bin", f"{STAGING_DIR}/music/1-10.bin", f"{STAGING_DIR}/images/7.bin",
                "failures/failures.parquet.tmp-2"):
        write_atomic(join(out, rel), b"x")


def test_finalize_removes_staged_media_on_an_object_store(tmp_path, monkeypatch):
    monkeypatch.setenv(fake_store.ROOT_ENV, str(tmp_path))
    out = f"{fake_store.SCHEME}://bucket/run"
    _leftovers(out)
    assert not FileSystems.exists(join(out, STAGING_DIR)), "a prefix is no object: the old check never fired"
    finalize(out)
    assert fake_store.keys() == sorted(join(out, rel) for rel in (KEPT, graph.MANIFEST, "README.md"))


def test_finalize_removes_the_staging_folder_locally(tmp_path):
    out = str(tmp_path / "run")
    _leftovers(out)
    finalize(out)
    found = sorted(str(p.relative_to(out)) for p in (tmp_path / "run").rglob("*") if p.is_file())
    assert found == sorted([KEPT, graph.MANIFEST, "README.md"])
    assert not (tmp_path / "run" / STAGING_DIR).exists()


@pytest.mark.parametrize("rel", ["data/music", STAGING_DIR])
def test_fake_store_has_no_folders(tmp_path, monkeypatch, rel):
    monkeypatch.setenv(fake_store.ROOT_ENV, str(tmp_path))
    write_atomic(f"{fake_store.SCHEME}://b/{rel}/a.bin", b"x")
    assert FileSystems.exists(f"{fake_store.SCHEME}://b/{rel}/a.bin")
    assert not FileSystems.exists(f"{fake_store.SCHEME}://b/{rel}")
