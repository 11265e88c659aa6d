"""Download stage against the loopback server: success, cache, errors, retries, ranges, cookies."""
from __future__ import annotations

import io
import logging
import os
import pickle
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from pipeline import download
from pipeline.download import (
    DownloadError,
    DownloadOptions,
    Downloader,
    build_params,
    cache_key,
    redact_text,
    redact_url,
)

SR = 16000
TONE_S = 20.0


class ClockOfDownloads:
    """Stands in for ``pipeline.download``'s ``time``: records the waits it is asked for, waits none.

    Tests check how long the downloader *decided* to wait, which a loaded machine cannot blur.
    """

    def __init__(self):
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)

    def __getattr__(self, name):
        return getattr(time, name)


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    clock = ClockOfDownloads()
    monkeypatch.setattr(download, "time", clock)
    monkeypatch.setattr(download, "_GATES", {})  # gates remember reserved slots across tests
    return clock.sleeps


def wav_bytes(seconds: float = 2.0, sr: int = SR) -> bytes:
    """A 440 Hz tone whose amplitude rises linearly from 0 to 0.9: amplitude tells the time."""
    t = np.arange(int(seconds * sr)) / sr
    x = (0.9 * t / seconds * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def opts(tmp_path, **kw) -> DownloadOptions:
    base = dict(cache_dir=str(tmp_path / "cache"), timeout_s=5.0, retries=3, backoff_s=0.001)
    return DownloadOptions(**{**base, **kw})


def cache_files(tmp_path) -> list[str]:
    root = tmp_path / "cache"
    return sorted(os.listdir(root)) if root.exists() else []


# -- success and cache -------------------------------------------------------------------------

def test_http_download_returns_the_served_bytes(http_server, tmp_path):
    body = wav_bytes()
    url = http_server.add("/songs/a.wav", body)
    got = Downloader(opts(tmp_path)).fetch(url)
    assert (got.from_cache, got.attempts, got.offset_s) == (False, 1, 0.0)
    assert open(got.path, "rb").read() == body
    assert os.path.dirname(got.path) == str(tmp_path / "cache")
    assert os.path.basename(got.path) == cache_key(url) + ".wav"  # hash, never the URL's name
    assert not [f for f in cache_files(tmp_path) if f.startswith(".tmp-")]


def test_second_fetch_is_a_cache_hit_also_for_a_fresh_downloader(http_server, tmp_path):
    url = http_server.add("/b.wav", wav_bytes())
    first = Downloader(opts(tmp_path)).fetch(url)
    n = http_server.requests("/b.wav")
    again = Downloader(opts(tmp_path)).fetch(url)
    assert http_server.requests("/b.wav") == n  # nothing downloaded twice
    assert (again.path, again.from_cache, again.attempts) == (first.path, True, 0)


def test_file_url_is_fetched_through_ytdlp_into_the_cache(tmp_path):
    src = tmp_path / "song.wav"
    src.write_bytes(wav_bytes())
    got = Downloader(opts(tmp_path)).fetch(src.as_uri())
    assert got.path != str(src) and got.path.startswith(str(tmp_path / "cache"))
    assert open(got.path, "rb").read() == src.read_bytes()


def test_html_page_with_audio_tag_is_followed(http_server, tmp_path):
    body = wav_bytes()
    http_server.add("/media/song.wav", body)
    page = http_server.add_audio_page("/song.html", "/media/song.wav")
    got = Downloader(opts(tmp_path)).fetch(page)
    assert open(got.path, "rb").read() == body


def test_image_url_is_fetched_too(http_server, tmp_path):
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, "JPEG")
    url = http_server.add("/img/0001.jpg", buf.getvalue(), "image/jpeg")
    got = Downloader(opts(tmp_path)).fetch(url)
    assert got.path.endswith(".jpg") and open(got.path, "rb").read() == buf.getvalue()


def test_local_path_is_returned_in_place(tmp_path):
    src = tmp_path / "song.wav"
    src.write_bytes(wav_bytes())
    got = Downloader(opts(tmp_path)).fetch(str(src), start_s=1.0, end_s=2.0)
    assert (got.path, got.from_cache, got.attempts, got.offset_s) == (str(src), False, 0, 0.0)
    with pytest.raises(DownloadError) as err:
        Downloader(opts(tmp_path)).fetch(str(tmp_path / "missing.wav"))
    assert (err.value.error_type, err.value.transient) == ("not_found", False)


def test_missing_file_url_is_permanent_not_found(tmp_path):
    with pytest.raises(DownloadError) as err:
        Downloader(opts(tmp_path)).fetch((tmp_path / "missing.wav").as_uri())
    assert (err.value.error_type, err.value.transient, err.value.attempts) == ("not_found", False, 1)


# -- errors and retries ------------------------------------------------------------------------

def test_404_is_permanent_with_a_one_line_message_without_secrets(http_server, tmp_path):
    url = http_server.add("/gone.wav", b"", status=404) + "?token=SECRET123"
    with pytest.raises(DownloadError) as err:
        Downloader(opts(tmp_path)).fetch(url)
    e = err.value
    assert (e.error_type, e.transient, e.attempts) == ("http_404", False, 1)
    msg = str(e)
    assert "404" in msg and redact_url(url) in msg
    assert "SECRET123" not in msg and "\n" not in msg
    assert http_server.requests("/gone.wav") == 1
    assert cache_files(tmp_path) == []


def test_500_twice_then_success_is_retried(http_server, tmp_path):
    body = wav_bytes()
    url = http_server.add("/flaky.wav", body, fail_first=2)
    got = Downloader(opts(tmp_path, retries=3)).fetch(url)
    assert got.attempts == 3
    assert open(got.path, "rb").read() == body


def test_429_then_200_is_retried(http_server, tmp_path):
    url = http_server.add("/busy.wav", wav_bytes(), status_sequence=[429, 200])
    assert Downloader(opts(tmp_path)).fetch(url).attempts == 2


def test_429_forever_gives_up_as_transient_after_all_retries(http_server, tmp_path):
    url = http_server.add("/always-busy.wav", wav_bytes(), status=429)
    with pytest.raises(DownloadError) as err:
        Downloader(opts(tmp_path, retries=2)).fetch(url)
    assert (err.value.error_type, err.value.transient, err.value.attempts) == ("http_429", True, 3)
    assert http_server.requests("/always-busy.wav") == 3


def test_retry_after_header_is_honoured(http_server, tmp_path, waits):
    url = http_server.add("/slow-down.wav", wav_bytes(), status_sequence=[429, 200],
                          headers={"Retry-After": "7"})
    got = Downloader(opts(tmp_path, backoff_s=0.001)).fetch(url)
    assert got.attempts == 2 and waits == [7.0]  # the server's wait, not the 1 ms backoff


def test_slow_server_times_out_as_transient(http_server, tmp_path):
    # The body would arrive after 2 s: a timeout error (not a success) shows the 0.5 s limit applied.
    url = http_server.add("/slow.wav", wav_bytes(), delay_s=2.0)
    with pytest.raises(DownloadError) as err:
        Downloader(opts(tmp_path, timeout_s=0.5, retries=0)).fetch(url)
    assert (err.value.error_type, err.value.transient, err.value.attempts) == ("timeout", True, 1)


def test_truncated_body_is_transient_and_leaves_no_file(http_server, tmp_path):
    body = wav_bytes()
    url = http_server.add("/cut.wav", body, truncate_to=len(body) // 3)
    with pytest.raises(DownloadError) as err:
        Downloader(opts(tmp_path, retries=1)).fetch(url)
    assert (err.value.error_type, err.value.transient, err.value.attempts) == ("truncated", True, 2)
    assert cache_files(tmp_path) == []


def test_unsupported_scheme_is_permanent(tmp_path):
    with pytest.raises(DownloadError) as err:
        Downloader(opts(tmp_path)).fetch("ftp2://x/song.wav")
    assert (err.value.error_type, err.value.transient, err.value.attempts) == ("unsupported_url", False, 1)


def test_download_error_pickles_with_its_fields():
    e = DownloadError("http_429", "http_429: HTTP 429 - http://h/x", transient=True, attempts=4)
    back = pickle.loads(pickle.dumps(e))
    assert (back.error_type, back.transient, back.attempts, str(back)) == \
        ("http_429", True, 4, str(e))


# -- time ranges -------------------------------------------------------------------------------

def test_time_range_fetch_holds_about_the_requested_audio(http_server, tmp_path):
    url = http_server.add("/long.wav", wav_bytes(TONE_S))
    d = Downloader(opts(tmp_path))
    got = d.fetch(url, start_s=5.0, end_s=8.5)
    assert got.offset_s == 5.0
    x, sr = sf.read(got.path, dtype="float32")
    assert sr == SR and abs(len(x) / sr - 3.5) < 0.3
    # the tone's amplitude grows with time: the first 50 ms say where the cut starts
    head = x[: sr // 20]
    start_est = np.sqrt(2) * np.sqrt(np.mean(head ** 2)) / 0.9 * TONE_S
    assert abs(start_est - 5.0) < 0.3
    assert any(r.headers.get("Range") for r in http_server.log("/long.wav"))  # ffmpeg seeked
    n = http_server.requests("/long.wav")
    assert d.fetch(url, start_s=5.0, end_s=8.5).from_cache and http_server.requests("/long.wav") == n
    other = d.fetch(url, start_s=1.0, end_s=2.0)
    assert not other.from_cache and other.path != got.path


def test_time_range_fetch_gives_up_on_a_stalled_server(http_server, tmp_path):
    # yt-dlp's socket_timeout does not reach ffmpeg; build_params passes -rw_timeout for it.
    # Without the limit ffmpeg would wait out the 3 s stall and succeed: the failure is the check.
    url = http_server.add("/stall.wav", wav_bytes(TONE_S), delay_s=3.0, delay_from=1)
    with pytest.raises(DownloadError) as err:
        Downloader(opts(tmp_path, timeout_s=0.5, retries=0)).fetch(url, start_s=2.0, end_s=4.0)
    assert (err.value.error_type, err.value.transient) == ("ffmpeg_failed", True)
    assert cache_files(tmp_path) == []


def test_time_range_on_file_url_fetches_whole_file_with_offset_zero(tmp_path):
    src = tmp_path / "song.wav"
    src.write_bytes(wav_bytes(4.0))
    got = Downloader(opts(tmp_path)).fetch(src.as_uri(), start_s=1.0, end_s=2.0)
    assert got.offset_s == 0.0
    assert open(got.path, "rb").read() == src.read_bytes()


# -- cookies, per-host limits, leftovers ---------------------------------------------------------

def test_cookies_are_sent_never_logged_and_the_file_is_left_alone(http_server, tmp_path, caplog):
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n"
                       "127.0.0.1\tFALSE\t/\tFALSE\t0\tsessionid\tCOOKIEVALUE42\n"
                       "a malformed line COOKIEVALUE43\n")
    before = cookies.read_bytes()
    o = opts(tmp_path, cookies_file=str(cookies))
    jar = build_params(o)["cookiefile"]
    assert "COOKIEVALUE42" in jar.getvalue() and "COOKIEVALUE43" not in jar.getvalue()
    url = http_server.add("/private.wav", wav_bytes())
    with caplog.at_level(logging.DEBUG):
        Downloader(o).fetch(url)
    assert "sessionid=COOKIEVALUE42" in {r.headers.get("Cookie") for r in http_server.log("/private.wav")}
    assert cookies.read_bytes() == before  # yt-dlp rewrites a cookiefile path on close; not ours
    assert "COOKIEVALUE" not in caplog.text


def test_missing_cookies_file_is_a_configuration_error(tmp_path):
    with pytest.raises(ValueError, match="cookies file"):
        Downloader(opts(tmp_path, cookies_file=str(tmp_path / "nope.txt")))


def test_build_params_quiet_no_internal_retries_and_options_passed():
    p = build_params(DownloadOptions(cache_dir="/c", timeout_s=7.0, bandwidth_limit="2M"),
                     outtmpl="/c/x.%(ext)s", section=(1.0, 2.0))
    assert p["quiet"] and p["no_warnings"] and p["noprogress"] and p["logger"] is not None
    assert (p["retries"], p["extractor_retries"], p["socket_timeout"]) == (0, 0, 7.0)
    assert p["ratelimit"] == 2 * 1024 ** 2 and p["format"] == "bestaudio/best"
    assert p["enable_file_urls"] and p["force_keyframes_at_cuts"] is False
    assert list(p["download_ranges"]({}, None)) == [{"start_time": 1.0, "end_time": 2.0}]


def test_max_per_host_limits_concurrency(http_server, tmp_path):
    urls = [http_server.add(f"/c{i}.wav", wav_bytes(0.5), delay_s=0.15) for i in range(3)]
    d = Downloader(opts(tmp_path, max_per_host=1))
    threads = [threading.Thread(target=d.fetch, args=(u,)) for u in urls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert http_server.peak_concurrency == 1
    assert len([f for f in cache_files(tmp_path) if f.endswith(".wav")]) == 3


def test_min_interval_spaces_download_starts(http_server, tmp_path, waits):
    urls = [http_server.add(f"/r{i}.wav", wav_bytes(0.5)) for i in range(3)]
    d = Downloader(opts(tmp_path, max_per_host=3, min_interval_per_host_s=30.0))
    threads = [threading.Thread(target=d.fetch, args=(u,)) for u in urls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(http_server.requests(f"/r{i}.wav") for i in range(3))
    # Three runs asking at about the same time get slots 0, 30 and 60 s on: the second and third
    # wait about one and two intervals (less the few seconds at most between their arrivals).
    first, second = sorted(waits)
    assert 25.0 < first <= 30.0 and 55.0 < second <= 60.0


def test_host_gate_reserves_start_slots_in_order(monkeypatch):
    from pipeline.download import _HostGate

    class Clock:  # virtual time: a wait moves it on
        now = 100.0

        def monotonic(self):
            return self.now

        def sleep(self, seconds):
            self.now += seconds

    clock = Clock()
    monkeypatch.setattr(download, "time", clock)
    gate, starts = _HostGate(4), []
    for _ in range(3):
        gate.wait_turn(0.1)
        starts.append(clock.now)
    clock.now += 5.0  # a late caller starts at once: the interval counts from the last start
    gate.wait_turn(0.1)
    starts.append(clock.now)
    assert starts == pytest.approx([100.0, 100.1, 100.2, 105.2])


def test_leftovers_of_a_killed_run_do_not_break_a_later_fetch(http_server, tmp_path):
    body = wav_bytes()
    url = http_server.add("/again.wav", body)
    key = cache_key(url)
    root = tmp_path / "cache"
    root.mkdir()
    stale = root / f".tmp-{key}-deadbeef.wav.part"
    stale.write_bytes(body[:100])
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    fresh = root / f".tmp-{key}-cafebabe.wav.part"  # may belong to a live download elsewhere
    fresh.write_bytes(body[:100])
    (root / f"{key}.wav").write_bytes(body[:100])  # media moved in, sidecar never written
    got = Downloader(opts(tmp_path)).fetch(url)
    assert not got.from_cache and open(got.path, "rb").read() == body
    assert not stale.exists() and fresh.exists()
    assert Downloader(opts(tmp_path)).fetch(url).from_cache


def test_redaction_helpers():
    assert redact_url("https://u:p@h.example/a/b.mp3?sig=abc#t=1") == "https://h.example/a/b.mp3"
    assert redact_text("failed on https://h/x?token=abc now") == "failed on https://h/x now"
    assert redact_text("at https://alice:pw@h/x.mp3 and http://u:p@ss@h2/y#k") == "at https://h/x.mp3 and http://h2/y"
    assert cache_key("u", 1, 2) == cache_key("u", 1.0, 2.0) != cache_key("u")


def test_object_store_urls_go_through_beam_filesystems_and_the_cache(tmp_path, monkeypatch):
    from apache_beam.io.filesystems import FileSystems

    data, opened = wav_bytes(), []

    def fake_open(path, *a, **kw):  # stands in for gs://, which needs apache-beam[gcp] and a bucket
        opened.append(path)
        return io.BytesIO(data)

    monkeypatch.setattr(FileSystems, "open", staticmethod(fake_open))
    d = Downloader(opts(tmp_path))
    got = d.fetch("gs://bucket/songs/a.wav", start_s=1.0, end_s=2.0)
    assert open(got.path, "rb").read() == data and got.path.endswith(".wav")
    assert got.offset_s == 0.0  # whole file: the decoder cuts the range
    again = Downloader(opts(tmp_path)).fetch("gs://bucket/songs/a.wav", start_s=1.0, end_s=2.0)
    assert again.from_cache and opened == ["gs://bucket/songs/a.wav"]


def test_object_store_without_its_filesystem_is_a_clear_permanent_error(tmp_path, monkeypatch):
    from apache_beam.io.filesystems import FileSystems

    def no_filesystem(path, *a, **kw):  # what Beam says for gs:// without apache-beam[gcp]
        raise ValueError(f"Unable to get filesystem from specified path, please use the correct path: {path}")

    monkeypatch.setattr(FileSystems, "open", staticmethod(no_filesystem))
    with pytest.raises(DownloadError) as e:
        Downloader(opts(tmp_path)).fetch("gs://bucket/a.wav")
    assert e.value.error_type == "unsupported_url" and not e.value.transient and e.value.attempts == 1
