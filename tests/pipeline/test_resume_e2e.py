"""Killed midway, restarted: same bytes as an uninterrupted run, and nothing downloaded twice.

``python -m pipeline.run`` runs in a subprocess against slow loopback routes; once two downloads
are complete in the cache (their ``.json`` sidecar is written last) the whole process group gets
SIGKILL. A second run with the same output and cache must not fetch those songs again and must
write the same shards, byte for byte, as a fresh run in fresh folders.
"""
from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests import audiogen
from tests.e2e_helpers import (
    MANIFEST_HEADER,
    pipeline_args,
    read_failures,
    read_table,
    run_pipeline,
    shard_bytes,
    tmp_debris,
    wav_bytes,
    write_csv,
)

REPO = Path(__file__).resolve().parents[2]
SR = 16000
N_SONGS = 6
DELAY_S = 0.8  # per request: a download (probe + fetch) takes about 1.6 s, the run 10 s or more
KILL_AFTER = 2  # completed downloads before the kill
POLL_LIMIT_S = 120.0


def songs(server, delay_s: float) -> dict[str, str]:
    """Register the songs (replacing earlier routes of the same paths); returns song_id -> URL."""
    urls = {}
    for i in range(N_SONGS):
        x = audiogen.music_like_song(12.0 + 0.5 * i, SR, bpm=90 + 10 * i, minor=bool(i % 2), seed=i)
        urls[f"song{i}"] = server.add(f"/songs/{i}.wav", wav_bytes(x, SR), delay_s=delay_s)
    return urls


def manifest_for(tmp: Path, server, urls: dict[str, str]) -> Path:
    """The songs plus two rows that fail (a 404 and a bad id), so failures are part of the bytes."""
    rows = [(sid, url, None, None, 0.1 + 0.15 * i, 0.9 - 0.15 * i, "cc0") for i, (sid, url) in enumerate(urls.items())]
    rows.append(("gone", server.url("/gone.wav"), None, None, 0.5, 0.5, None))
    rows.append(("bad id", urls["song1"], None, None, 0.5, 0.5, None))
    return write_csv(tmp / "manifest.csv", MANIFEST_HEADER, rows)


def completed_downloads(cache: Path) -> dict[str, str]:
    """URL path -> sidecar file of every complete cache entry."""
    out = {}
    for sidecar in glob.glob(str(cache / "downloads" / "*.json")):
        with open(sidecar, encoding="utf-8") as f:
            out[urlsplit(json.load(f)["url"]).path] = sidecar
    return out


def start_run(tmp: Path, manifest: Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "pipeline.run", *pipeline_args(tmp, "--source", "manifest", "--input", str(manifest))]
    log = open(tmp / "killed-run.log", "wb")
    try:
        return subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        log.close()  # the child holds its own descriptor


def kill_after_downloads(proc: subprocess.Popen, cache: Path, tmp: Path) -> None:
    """Wait until KILL_AFTER downloads are complete, then SIGKILL the run's whole process group."""
    deadline = time.monotonic() + POLL_LIMIT_S
    try:
        while len(completed_downloads(cache)) < KILL_AFTER:
            if proc.poll() is not None:
                pytest.fail(f"the run ended (rc {proc.returncode}) before it could be killed:\n"
                            + (tmp / "killed-run.log").read_text(errors="replace")[-3000:])
            if time.monotonic() > deadline:
                pytest.fail(f"no {KILL_AFTER} downloads within {POLL_LIMIT_S} s")
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def test_killed_run_resumes_without_downloading_twice_and_writes_the_same_bytes(http_server, tmp_path):
    urls = songs(http_server, DELAY_S)
    manifest = manifest_for(tmp_path, http_server, urls)
    cache = tmp_path / "cache"

    kill_after_downloads(start_run(tmp_path, manifest), cache, tmp_path)
    done = completed_downloads(cache)
    assert KILL_AFTER <= len(done) < N_SONGS, f"killed too late to test resuming: {sorted(done)}"
    print(f"killed after {len(done)} of {N_SONGS} downloads")
    assert not (tmp_path / "out" / "run.json").exists(), "the killed run must not have finished"
    before = {path: http_server.requests(path) for path in (urlsplit(u).path for u in urls.values())}

    resumed = run_pipeline(tmp_path, "--source", "manifest", "--input", str(manifest))

    # (1) downloads completed before the kill were not fetched again; the others were fetched now
    after = {path: http_server.requests(path) for path in before}
    assert {p: after[p] for p in done} == {p: before[p] for p in done}
    assert all(after[p] > before[p] for p in before if p not in done)
    # (3) no unfinished atomic writes left in the output
    assert tmp_debris(tmp_path / "out") == []

    # (2) byte-identical to an uninterrupted run in fresh folders (same URLs, no delay this time)
    songs(http_server, 0.0)
    fresh = run_pipeline(tmp_path, "--source", "manifest", "--input", str(manifest),
                         output="fresh-out", cache="fresh-cache")
    got, want = shard_bytes(tmp_path / "out"), shard_bytes(tmp_path / "fresh-out")
    assert sorted(got) == sorted(want) and any(p.startswith("data/music/") for p in got)
    assert [p for p in got if got[p] != want[p]] == []

    # (4) run.json exists and its counts match the files and the uninterrupted run
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    music = read_table(tmp_path / "out", "music")
    assert record["rows"] == resumed.rows == fresh.rows
    assert sum(record["rows"]["music"].values()) == len(music) > 0
    assert {r["song_id"] for r in music} == set(urls)
    assert record["failures_total"] == len(read_failures(tmp_path / "out")) == fresh.failures_total == 2
    assert record["failures_by_reason"] == fresh.failures_by_reason
    assert record["listed"] == {"songs": N_SONGS + 1, "images": 0, "pairs": 0, "rejected_rows": 1}


def test_a_complete_rerun_fetches_nothing_and_writes_the_same_bytes(http_server, tmp_path):
    urls = songs(http_server, 0.0)
    manifest = manifest_for(tmp_path, http_server, urls)
    first = run_pipeline(tmp_path, "--source", "manifest", "--input", str(manifest))
    first_bytes = shard_bytes(tmp_path / "out")
    n_requests = len(http_server.log())
    assert n_requests >= N_SONGS

    second = run_pipeline(tmp_path, "--source", "manifest", "--input", str(manifest))

    # every song comes from the cache; only the 404 is asked again (failures are not cached:
    # a missing file may be there on the next run)
    again = {r.path for r in http_server.log()[n_requests:]}
    assert again == {"/gone.wav"}, f"the rerun fetched {sorted(again)} again"
    assert shard_bytes(tmp_path / "out") == first_bytes
    assert second.rows == first.rows and second.failures_by_reason == first.failures_by_reason
    assert tmp_debris(tmp_path / "out") == []


def test_a_rerun_clears_debris_of_writes_a_killed_run_left(http_server, tmp_path):
    urls = songs(http_server, 0.0)
    manifest = manifest_for(tmp_path, http_server, urls)
    out = tmp_path / "out"
    # what SIGKILL between FileSystems.create and rename in write_atomic leaves behind
    debris = [out / "data" / "music" / "train-00000-of-00001.parquet.tmp-0123456789abcdef0123456789abcdef",
              out / "failures" / "failures.parquet.tmp-0123456789abcdef0123456789abcdef"]
    for path in debris:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"PAR1 half a shard")
    run_pipeline(tmp_path, "--source", "manifest", "--input", str(manifest))
    assert tmp_debris(out) == []
