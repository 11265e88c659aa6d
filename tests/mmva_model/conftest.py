"""Fixtures for MMVA tests: a small demo dataset made once per session by the real pipeline."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e_helpers import run_pipeline

# 8 songs (6 train / 1 validation / 1 test) x 20 s -> 4 s clips; 60 images; pairs from VA.
DEMO_FLAGS = ("--source", "demo", "--demo_songs", "8", "--demo_song_seconds", "20",
              "--demo_images", "60", "--pairs_per_clip", "3")


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    """A pipeline run folder (data/, README.md) with music, images and pairs in every split."""
    tmp = tmp_path_factory.mktemp("mmva-demo")
    run_pipeline(tmp, *DEMO_FLAGS, output="run")
    return tmp / "run"


@pytest.fixture
def feature_cache(tmp_path) -> Path:
    """A per-test feature cache folder (tests never share cached features by accident)."""
    return tmp_path / "features"


def copy_run_with(run: Path, dest: Path, table: str, split: str, change) -> Path:
    """A copy of pipeline run ``run`` whose ``table``/``split`` shard is rewritten by ``change``.

    ``change(rows: list[dict]) -> list[dict]`` edits the rows; the shard keeps its schema (and so
    its Hugging Face features metadata), so only the edited values differ.
    """
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    shutil.copytree(run, dest)
    (path,) = (dest / "data" / table).glob(f"{split}-*.parquet")
    original = pq.read_table(path)
    rows = change(original.to_pylist())
    schema = original.schema
    if rows and set(rows[0]) != set(schema.names):  # a column dropped on purpose
        schema = pa.schema([f for f in schema if f.name in rows[0]], metadata=schema.metadata)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return dest
