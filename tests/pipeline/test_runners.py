"""The same graph on other Beam runners gives byte-identical output."""
from __future__ import annotations

import pytest

from pipeline import run as run_mod
from tests.e2e_helpers import offline, shard_bytes

DEMO = ["--demo_songs", "3", "--demo_song_seconds", "20", "--demo_images", "8", "--no_progress",
        "--captioner", "descriptor"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    base = tmp_path_factory.mktemp("ref")
    cache = str(base / "cache")
    with offline():  # module-scoped: runs before the autouse guard, so guard it here
        run_mod.run(["--output", str(base / "out"), "--cache_dir", cache, *DEMO])
    return shard_bytes(str(base / "out")), cache


def _same_as_reference(reference, tmp_path, *runner_args):
    expected, cache = reference
    out = str(tmp_path / "out")
    summary = run_mod.run(["--output", out, "--cache_dir", cache, *DEMO, *runner_args])
    got = shard_bytes(out)
    assert sorted(got) == sorted(expected)
    assert got == expected
    return summary


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
