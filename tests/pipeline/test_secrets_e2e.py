"""Credentials never leave the command line: cookies and ``user:pass@`` URLs through a whole run.

One pipeline run fetches clips and images from the loopback server through URLs that carry a
user name and password, with a cookies file; some URLs answer 404 so failure rows name them.
Nothing the run or ``dataset_card build`` writes, logs or prints may hold the password or the
cookie value, while the failure messages still say which (redacted) URL failed.
"""
from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from PIL import Image

from dataset_card.build import build
from tests import audiogen as g
from tests.e2e_helpers import IMAGE_HEADER, read_failures, read_table, run_pipeline, wav_bytes, write_csv

SR = 16000
PASSWORD = "Pa55w0rdXYZ"
COOKIE = "COOKIEVALUE4711"
SECRETS = (PASSWORD, COOKIE)


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(buf, "PNG")
    return buf.getvalue()


def _with_credentials(url: str) -> str:
    return url.replace("http://", f"http://alice:{PASSWORD}@", 1)


def test_credentials_reach_no_output_log_failure_row_or_card(http_server, tmp_path, caplog, capfd):
    http_server.add("/clips/725-16.wav", wav_bytes(g.music_like_song(6.0, SR), SR))
    http_server.add("/img/ok.png", _png(), "image/png")
    base = _with_credentials(http_server.url("/clips/"))
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    clips_csv = inputs / "music_va.csv"
    clips_csv.write_text(",clip_id,valence,arousal\n0,725-16,0.3,0.7\n1,725-17,0.6,0.4\n")  # 725-17: 404
    images_csv = write_csv(inputs / "images.csv", IMAGE_HEADER, [
        ("ok", _with_credentials(http_server.url("/img/ok.png")), 0.5, 0.5, "demo", "unit"),
        ("gone", _with_credentials(http_server.url("/img/gone.png")), 0.5, 0.5, "demo", "unit"),
    ])
    cookies = inputs / "cookies.txt"
    cookies.write_text(f"# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tsessionid\t{COOKIE}\n")
    caplog.set_level(logging.DEBUG, logger="pipeline")
    caplog.set_level(logging.DEBUG, logger="dataset_card")
    summary = run_pipeline(tmp_path, "--source", "clips", "--input", base, "--clips_csv", str(clips_csv),
                           "--images_csv", str(images_csv), "--cookies", str(cookies))
    build(tmp_path / "out", tmp_path / "hub")
    console = capfd.readouterr()
    out = tmp_path / "out"
    # the credentialed URLs and the cookie did work
    assert [r["clip_id"] for r in read_table(out, "music")] == ["725-16"] and summary.rows["images"]
    assert f"sessionid={COOKIE}" in {r.headers.get("Cookie") for r in http_server.log("/clips/725-16.wav")}

    leaks = []
    for path in tmp_path.rglob("*"):  # run.json, README.md, failures, shards, cache sidecars, the card...
        if path.is_file() and path.parent != inputs:
            data = path.read_bytes()
            leaks += [f"{path.relative_to(tmp_path)}: {s}" for s in SECRETS if s.encode() in data]
    text = caplog.text + console.out + console.err
    leaks += [f"logs/console: {s}" for s in SECRETS if s in text]
    assert leaks == []

    # failure rows still say which URL failed, without its credentials
    failures = {f["item_id"]: f["message"] for f in read_failures(out)}
    assert http_server.url("/img/gone.png") in failures["gone"]
    assert [m for k, m in failures.items() if k.startswith("725")] and all(
        http_server.url("/clips/725-17.wav") in m for k, m in failures.items() if k.startswith("725"))
    assert not [m for m in failures.values() if "alice" in m]
    # run.json and the card record the input URL without them
    run_json = (out / "run.json").read_text()
    card = (tmp_path / "hub" / "README.md").read_text()
    for text in (run_json, card):
        assert http_server.url("/clips/") in text and "alice" not in text
    assert '"cookies": "<set>"' in run_json
