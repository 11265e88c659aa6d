"""The same graph on other Beam runners and worker counts gives byte-identical output.

The reference is the default command (no worker flags: one DirectRunner worker process per core),
given a matching file, so the joins of pairs with the written clips and images run everywhere too.
"""
from __future__ import annotations

import pytest

from pipeline import run as run_mod
from pipeline.beam_options import usable_cores
from tests.e2e_helpers import offline, read_failures, read_table, shard_bytes

DEMO = ["--demo_songs", "3", "--demo_song_seconds", "20", "--demo_images", "8", "--no_progress",
        "--captioner", "descriptor"]


def _matching_lines() -> list[str]:
    """Clip-image lines over ids that partly exist in the demo: kept pairs, unknown clips, unknown images."""
    clips = [f"demo{song:03d}-{i}" for song in range(12) for i in range(3, 7)]
    images = ["demoimg0000", "demoimg0005", "nosuchimage"]
    return [f"{c} {im} {(k % 10) / 10}" for k, (c, im) in enumerate((c, im) for c in clips for im in images)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    base = tmp_path_factory.mktemp("ref")
    cache = str(base / "cache")
    matching = base / "test_matching.txt"
    matching.write_text("\n".join(_matching_lines()) + "\n")
    args = [*DEMO, "--matching_file", f"test={matching}"]
    with offline():  # module-scoped: runs before the autouse guard, so guard it here
        summary = run_mod.run(["--output", str(base / "out"), "--cache_dir", cache, *args])
    if usable_cores() > 1:  # a user's plain command uses every core
        assert summary.beam_options["direct_num_workers"] == usable_cores()
        assert summary.beam_options["direct_running_mode"] == "multi_processing"
    return shard_bytes(str(base / "out")), cache, args, str(base / "out")


def test_every_matching_line_is_one_pair_row_or_one_failure(reference):
    *_, out = reference
    clips = {r["clip_id"] for r in read_table(out, "music")}
    images = {r["image_id"] for r in read_table(out, "images")}
    pairs = read_table(out, "pairs")
    failures = [f for f in read_failures(out) if f["kind"] == "pair"]
    lines = {tuple(line.split()[:2]) for line in _matching_lines()}
    assert pairs and failures
    assert sorted((r["music_clip_id"], r["image_id"]) for r in pairs) + sorted(
        tuple(f["item_id"].split("|")) for f in failures) == sorted(
        [ln for ln in lines if ln[0] in clips and ln[1] in images]) + sorted(
        [ln for ln in lines if not (ln[0] in clips and ln[1] in images)])
    assert {f["error_type"] for f in failures} == {"unknown_clip", "unknown_image"}
    both = [f for f in failures if f["item_id"].split("|")[0] not in clips and f["item_id"].endswith("|nosuchimage")]
    assert both and all(f["error_type"] == "unknown_clip" and " and image nosuchimage " in f["message"] for f in both)


def _same_as_reference(reference, tmp_path, *runner_args):
    expected, cache, args, _ = reference
    out = str(tmp_path / "out")
    summary = run_mod.run(["--output", out, "--cache_dir", cache, *args, *runner_args])
    got = shard_bytes(out)
    assert sorted(got) == sorted(expected)
    assert got == expected
    return summary


@pytest.mark.slow
def test_direct_one_worker_in_process(reference, tmp_path):
    s = _same_as_reference(reference, tmp_path, "--direct_num_workers=1")
    assert s.beam_options.get("direct_num_workers", 1) == 1 and "direct_running_mode" not in s.beam_options


@pytest.mark.slow
def test_direct_multi_processing_two_workers(reference, tmp_path):
    s = _same_as_reference(reference, tmp_path, "--direct_num_workers=2", "--direct_running_mode=multi_processing")
    assert s.beam_options["direct_num_workers"] == 2


@pytest.mark.slow
def test_portable_runner_loopback(reference, tmp_path):
    s = _same_as_reference(reference, tmp_path, "--runner=PortableRunner", "--job_endpoint=embed",
                           "--environment_type=LOOPBACK")
    assert s.runner == "PortableRunner"


@pytest.mark.slow
def test_dask_runner_local_cluster(reference, tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    clients = []

    class RecordedClient(distributed.Client):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            clients.append(self)

    monkeypatch.setattr(distributed, "Client", RecordedClient)  # the one DaskRunner opens
    # preload: workers import Beam through pipeline.beam_import before any task needs it.
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  preload=["pipeline.beam_import"]) as cluster:
        assert len(cluster.workers) == 2
        s = _same_as_reference(reference, tmp_path, "--runner=apache_beam.runners.dask.dask_runner.DaskRunner",
                               f"--dask_client_address={cluster.scheduler_address}")
        # Closed before its cluster goes: an open one logs a CancelledError traceback at exit.
        assert [c.status for c in clients] == ["closed"]
    assert s.runner.endswith("DaskRunner")
