"""Bad input through the real pipeline: every song, row and image ends as rows or as one failure.

One manifest mixes good audio in four formats, HTTP faults served by the loopback server, audio
that cannot be used and rows that cannot be read; it is run once (module fixture) and each case
is checked against the music rows or the ``failures`` row it produced. A hypothesis test builds
random small mixes of the same kinds and checks the invariant alone; a second small run does the
same for images.
"""
from __future__ import annotations

import functools
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pipeline import audio as audio_mod
from pipeline.download import cache_key
from pipeline.summary import RunSummary
from tests import audiogen
from tests.e2e_helpers import (
    IMAGE_HEADER,
    MANIFEST_HEADER,
    check_images_land,
    check_songs_land,
    decode_flac,
    long_quiet_flac,
    offline,
    peak_hz,
    read_failures,
    read_table,
    run_pipeline,
    wav_bytes,
    write_csv,
)
from tests.httpserver import LoopbackServer

OUT_SR = 16000
CLIP_S = 4.0
SONG_S = 12.5  # three 4 s clips (0-4, 4-8, 8-12); a wrong decode length changes the count
RETRIES = 3  # the pipeline's default --download_retries
TRANSIENT = {"truncated", "timeout", "connection", "network", "http_5xx", "http_429", "http_408", "empty",
             "ffmpeg_failed"}

# song_id: (tone Hz, native rate, format, channels) of the good songs
GOOD = {
    "wav44": (440.0, 44100, "wav", 1),
    "flac8": (330.0, 8000, "flac", 2),
    "ogg48": (550.0, 48000, "ogg", 1),
    "mp3-22": (660.0, 22050, "mp3", 1),
}
# song_id: (stage, error_type) of the songs that must fail as a whole
SONG_FAILS = {
    "missing": ("download", "http_404"),
    "slow": ("download", "timeout"),
    "notaudio": ("decode", "undecodable"),
    "silent": ("decode", "silent"),
    "short": ("cut", "too_short"),
    "toolong": ("decode", "too_long"),
    "nan-va": ("read_manifest", "bad_va"),
    "loud": ("read_manifest", "bad_va"),
    "no-va": ("read_manifest", "no_va"),
}
# ids (or raw cells) of rows rejected by line: manifest name + line -> error type
BAD_ID_ROWS = ("../evil", "a b", "é")
RANGE = (2.5, 12.5)  # whole 4 s clips inside it: 4-8 and 8-12
STEP_HZ = (300.0, 500.0, 700.0, 900.0)  # the ranged song's tone in 0-4, 4-8, 8-12, 12-15 s


def tone_song(freq: float, seconds: float, sr: int, channels: int = 1) -> np.ndarray:
    """A tone with a soft click every half second (so the descriptors see some rhythm)."""
    x = audiogen.tone(freq, seconds, sr, 0.5) + audiogen.click_track(120, seconds, sr, amp=0.2, freq=3000.0)
    x = np.clip(x, -1, 1).astype(np.float32)
    return audiogen.stereo(x, 0.5 * x) if channels == 2 else x


def stepped_song(sr: int = 16000) -> np.ndarray:
    """15 s whose tone tells the time: STEP_HZ[k] in [4k, 4k+4) s."""
    parts = [audiogen.tone(f, 4.0 if k < 3 else 3.0, sr, 0.5) for k, f in enumerate(STEP_HZ)]
    return np.concatenate(parts).astype(np.float32)


def tail_burst_song(sr: int = 16000) -> np.ndarray:
    """Silent 0-12 s, then a loud half second: the song is not silent, each of its clips is."""
    x = audiogen.silence(SONG_S, sr)
    x[int(12.0 * sr):] = audiogen.tone(440.0, SONG_S - 12.0, sr, 0.5)
    return x


def half_silent_song(sr: int = 16000) -> np.ndarray:
    """A tone in 0-4 s and silence after it: clip 0 is kept, clips 1 and 2 fail as silent."""
    x = audiogen.silence(SONG_S, sr)
    x[: int(4.0 * sr)] = tone_song(440.0, 4.0, sr)
    return x


@dataclass
class BadRun:
    tmp: Path
    output: Path
    manifest: Path
    cache: Path
    server: LoopbackServer
    summary: RunSummary
    music: list[dict]
    failures: list[dict]
    decoded_paths: list[str]
    urls: dict[str, str]

    def rows_of(self, song_id: str) -> list[dict]:
        return sorted((r for r in self.music if r["song_id"] == song_id), key=lambda r: r["start_s"])

    def failures_of(self, item_id: str) -> list[dict]:
        return [f for f in self.failures if f["item_id"] == item_id]

    def line_of(self, raw_id: str) -> int:
        """Physical line of the first manifest record whose first cell is ``raw_id``."""
        for n, text in enumerate(self.manifest.read_text(encoding="utf-8").splitlines(), 1):
            if text.split(",", 1)[0] == raw_id:
                return n
        raise KeyError(raw_id)


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory) -> BadRun:
    tmp = tmp_path_factory.mktemp("bad_input")
    with offline(), LoopbackServer() as server, pytest.MonkeyPatch.context() as mp:
        decoded: list[str] = []
        real_read = audio_mod._read

        def spy_read(path, start_s, end_s):  # records every file whose samples get decoded
            decoded.append(os.fspath(path))
            return real_read(path, start_s, end_s)

        mp.setattr(audio_mod, "_read", spy_read)
        urls = {}
        for sid, (hz, sr, fmt, ch) in GOOD.items():
            urls[sid] = server.add(f"/good/{sid}.{fmt}", audiogen.to_bytes(tone_song(hz, SONG_S, sr, ch), sr, fmt),
                                   f"audio/{fmt}")
        song = wav_bytes(tone_song(440.0, SONG_S, 16000), 16000)
        urls["missing"] = server.add("/gone.wav", b"", status=404)
        urls["flaky"] = server.add("/flaky.wav", song, fail_first=2)
        urls["busy"] = server.add("/busy.wav", song, status_sequence=[429, 200])
        urls["slow"] = server.add("/slow.wav", song, delay_s=3.0)
        urls["cut"] = server.add("/cut.wav", song, truncate_to=len(song) // 3)
        urls["notaudio"] = server.add("/notaudio.wav", np.random.default_rng(7).bytes(50_000))
        urls["silent"] = server.add("/silent.wav", wav_bytes(audiogen.silence(SONG_S, 16000), 16000))
        urls["short"] = server.add("/short.wav", wav_bytes(tone_song(440.0, 2.0, 16000), 16000))
        urls["toolong"] = server.add("/long.flac", long_quiet_flac(3 * 3600.0), "audio/flac")
        urls["ranged"] = server.add("/stepped.wav", wav_bytes(stepped_song(), 16000))
        urls["tailburst"] = server.add("/tailburst.wav", wav_bytes(tail_burst_song(), 16000))
        urls["halfsilent"] = server.add("/halfsilent.wav", wav_bytes(half_silent_song(), 16000))
        rows = [
            *[(sid, urls[sid], None, None, 0.6, 0.4, "cc-by") for sid in GOOD],
            *[(sid, urls[sid], None, None, 0.5, 0.5, None)
              for sid in ("missing", "flaky", "busy", "slow", "cut", "notaudio", "silent", "short", "toolong",
                          "tailburst", "halfsilent")],
            ("ranged", urls["ranged"], RANGE[0], RANGE[1], 0.25, 0.75, None),
            ("wav44", urls["flac8"], None, None, 0.1, 0.1, None),  # duplicate id: second row fails
            ("nan-va", urls["wav44"], None, None, "nan", 0.5, None),
            ("loud", urls["wav44"], None, None, 0.5, 1.7, None),
            ("malformed", urls["wav44"], 1.0),  # 3 fields where the header has 7
            *[(bad, urls["wav44"], None, None, 0.5, 0.5, None) for bad in BAD_ID_ROWS],
            ("no-va", urls["wav44"], None, None, None, None, None),
        ]
        manifest = write_csv(tmp / "manifest.csv", MANIFEST_HEADER, rows)
        summary = run_pipeline(tmp, "--source", "manifest", "--input", str(manifest))
    out = tmp / "out"  # the server is stopped; its request log stays readable
    return BadRun(tmp, out, manifest, tmp / "cache", server, summary, read_table(out, "music"),
                  read_failures(out), decoded, urls)


# -- the invariant over the whole mixed run ------------------------------------------------------

def test_every_manifest_row_ends_in_exactly_one_place(bad_run):
    landed = check_songs_land(bad_run.manifest, bad_run.output)
    n_records = len(bad_run.manifest.read_text(encoding="utf-8").splitlines()) - 1
    assert len(landed) == n_records
    outcome = {(ln.line, ln.raw_id): ln.outcome for ln in landed.values()}
    assert outcome[(bad_run.line_of("tailburst"), "tailburst")] == "clip_failures"
    assert outcome[(bad_run.line_of("halfsilent"), "halfsilent")] == "rows"
    assert sorted(r for (_, r), o in outcome.items() if o == "rows") == sorted(
        [*GOOD, "flaky", "busy", "ranged", "halfsilent"])


def test_summary_counts_match_what_was_written(bad_run):
    s = bad_run.summary
    assert sum(sum(v.values()) for v in s.rows.values()) == len(bad_run.music)
    assert s.failures_total == len(bad_run.failures)
    listed = s.listed
    assert listed["songs"] + listed["rejected_rows"] == len(bad_run.manifest.read_text(encoding="utf-8").splitlines()) - 1
    assert (bad_run.output / "run.json").is_file()


# -- good audio in four formats ------------------------------------------------------------------

@pytest.mark.parametrize("song_id", sorted(GOOD))
def test_good_formats_become_resampled_clips(bad_run, song_id):
    hz = GOOD[song_id][0]
    rows = bad_run.rows_of(song_id)
    assert [(r["clip_id"], r["start_s"], r["end_s"]) for r in rows] == [
        (f"{song_id}-{i}", CLIP_S * i, CLIP_S * (i + 1)) for i in range(3)]
    assert [f["error_type"] for f in bad_run.failures_of(song_id)] == (["duplicate_id"] if song_id == "wav44" else [])
    for r in rows:
        x, sr = decode_flac(r["audio"]["bytes"])
        assert sr == OUT_SR and x.ndim == 1 and len(x) == int(CLIP_S * OUT_SR)
        assert peak_hz(x, sr) == pytest.approx(hz, abs=2.0)  # right rate in, right pitch out
        assert r["audio"]["path"] == f"{r['clip_id']}.flac"
        assert (r["valence"], r["arousal"], r["license"], r["source"]) == (
            pytest.approx(0.6), pytest.approx(0.4), "cc-by", "manifest")
        assert r["caption"] and r["split"] == rows[0]["split"]


# -- HTTP faults ---------------------------------------------------------------------------------

def one_failure(bad_run, item_id: str) -> dict:
    got = bad_run.failures_of(item_id)
    assert len(got) == 1, got
    return got[0]


def test_404_fails_at_download_after_one_attempt(bad_run):
    f = one_failure(bad_run, "missing")
    assert (f["kind"], f["stage"], f["error_type"], f["attempts"]) == ("song", "download", "http_404", 1)
    assert bad_run.server.requests("/gone.wav") >= 1


@pytest.mark.parametrize("song_id, path, bad_answers", [("flaky", "/flaky.wav", 2), ("busy", "/busy.wav", 1)])
def test_transient_http_errors_are_retried_into_clips(bad_run, song_id, path, bad_answers):
    assert len(bad_run.rows_of(song_id)) == 3
    assert not bad_run.failures_of(song_id)
    # the bad answers, then at least one good one for the download itself
    assert bad_run.server.requests(path) >= bad_answers + 1


def test_slow_server_times_out_after_every_retry(bad_run):
    f = one_failure(bad_run, "slow")
    assert (f["stage"], f["error_type"], f["attempts"]) == ("download", "timeout", RETRIES + 1)
    assert bad_run.server.requests("/slow.wav") == RETRIES + 1
    assert not bad_run.rows_of("slow")


def test_truncated_body_is_a_transient_download_failure(bad_run):
    f = one_failure(bad_run, "cut")
    assert f["stage"] == "download" and f["error_type"] in TRANSIENT
    assert f["attempts"] == RETRIES + 1  # transient, so retried to the limit
    assert not bad_run.rows_of("cut")
    assert not [p for p in os.listdir(bad_run.cache / "downloads") if p.startswith(cache_key(bad_run.urls["cut"]))]


# -- bad audio -----------------------------------------------------------------------------------

@pytest.mark.parametrize("song_id", ["notaudio", "silent", "short", "toolong"])
def test_unusable_audio_fails_at_its_stage(bad_run, song_id):
    f = one_failure(bad_run, song_id)
    assert (f["kind"], f["stage"], f["error_type"]) == ("song", *SONG_FAILS[song_id])
    assert not bad_run.rows_of(song_id)


def test_too_long_song_is_refused_before_decoding(bad_run):
    f = one_failure(bad_run, "toolong")
    assert "--max_song_seconds" in f["message"] and "10800.0 s long" in f["message"]
    key = cache_key(bad_run.urls["toolong"])
    decoded = {os.path.basename(p).split(".")[0] for p in bad_run.decoded_paths}
    assert cache_key(bad_run.urls["wav44"]) in decoded  # the spy saw the good songs being decoded
    assert key not in decoded


def test_clip_level_failures_stand_for_their_clips(bad_run):
    # every clip of "tailburst" is silent though the song is not: three clip failures, no song failure
    assert not bad_run.failures_of("tailburst") and not bad_run.rows_of("tailburst")
    assert sorted((f["item_id"], f["kind"], f["stage"], f["error_type"]) for f in bad_run.failures
                  if f["item_id"].startswith("tailburst-")) == [
        (f"tailburst-{i}", "clip", "cut", "silent") for i in range(3)]
    # "halfsilent": clip 0 is a row, clips 1 and 2 are failures
    assert [r["clip_id"] for r in bad_run.rows_of("halfsilent")] == ["halfsilent-0"]
    assert sorted(f["item_id"] for f in bad_run.failures if f["item_id"].startswith("halfsilent")) == [
        "halfsilent-1", "halfsilent-2"]


# -- manifest rows -------------------------------------------------------------------------------

@pytest.mark.parametrize("song_id", ["nan-va", "loud", "no-va"])
def test_bad_va_rows_fail_when_read(bad_run, song_id):
    f = one_failure(bad_run, song_id)
    assert (f["kind"], f["stage"], f["error_type"]) == ("song", *SONG_FAILS[song_id])
    assert f"manifest.csv:line{bad_run.line_of(song_id)}" in f["message"]


def test_duplicate_id_fails_the_second_row_only(bad_run):
    f = one_failure(bad_run, "wav44")
    assert (f["stage"], f["error_type"]) == ("read_manifest", "duplicate_id")
    assert "already on line 2" in f["message"]
    assert len(bad_run.rows_of("wav44")) == 3  # the first row's clips, from the wav (not the flac)
    assert peak_hz(decode_flac(bad_run.rows_of("wav44")[0]["audio"]["bytes"])[0], OUT_SR) == pytest.approx(440, abs=2)


@pytest.mark.parametrize("raw_id, error_type", [
    ("malformed", "malformed_row"), ("../evil", "bad_id"), ("a b", "bad_id"), ("é", "bad_id")])
def test_rows_without_a_usable_id_fail_by_line(bad_run, raw_id, error_type):
    f = one_failure(bad_run, f"manifest.csv:line{bad_run.line_of(raw_id)}")
    assert (f["stage"], f["error_type"]) == ("read_manifest", error_type)
    assert not [x for x in bad_run.failures if raw_id in (x["item_id"], x["item_id"].rsplit("-", 1)[0])]
    assert not [r for r in bad_run.music if r["song_id"] == raw_id]


def test_manifest_without_a_required_column_is_a_file_error(tmp_path):
    manifest = write_csv(tmp_path / "m.csv", ("song_id", "start_s", "valence", "arousal"), [("a", 0, 0.5, 0.5)])
    with pytest.raises(ValueError, match=r"m\.csv: missing column\(s\) \['url'\]"):
        run_pipeline(tmp_path, "--source", "manifest", "--input", str(manifest))
    half = write_csv(tmp_path / "half.csv", ("song_id", "url", "valence"), [("a", "http://127.0.0.1:9/a.wav", 0.5)])
    with pytest.raises(ValueError, match="only one of valence/arousal"):
        run_pipeline(tmp_path, "--source", "manifest", "--input", str(half))
    assert not (tmp_path / "out").exists()  # refused before the pipeline wrote anything


# -- time ranges ---------------------------------------------------------------------------------

def test_time_range_gives_clips_inside_it_only(bad_run):
    rows = bad_run.rows_of("ranged")
    start, end = RANGE
    whole = [i for i in range(10) if i * CLIP_S >= start and (i + 1) * CLIP_S <= end]
    assert [r["clip_id"] for r in rows] == [f"ranged-{i}" for i in whole] and len(whole) == 2
    for r, i in zip(rows, whole):
        assert start <= r["start_s"] and r["end_s"] <= end
        x, sr = decode_flac(r["audio"]["bytes"])
        assert len(x) == int(CLIP_S * OUT_SR)
        assert peak_hz(x, sr) == pytest.approx(STEP_HZ[i], abs=2.0)  # the audio of that time, not of 0 s
        assert (r["valence"], r["arousal"]) == (pytest.approx(0.25), pytest.approx(0.75))
    ranged = [rec for rec in bad_run.server.log("/stepped.wav") if "Range" in rec.headers]
    assert ranged, "the range should be fetched with HTTP Range requests (ffmpeg seeking)"


# -- property: random mixes keep the invariant ---------------------------------------------------

HSR = 8000
H_SONG_S = 9.0  # two 4 s clips


@functools.cache
def _h_bodies() -> dict[str, tuple[bytes, dict]]:
    """Route body and fault options per kind (built once: hypothesis examples share them)."""
    good = wav_bytes(tone_song(440.0, H_SONG_S, HSR), HSR)
    burst = audiogen.silence(H_SONG_S, HSR)
    burst[int(8.0 * HSR):] = audiogen.tone(440.0, 1.0, HSR, 0.5)
    return {
        "good": (good, {}),
        "http_404": (b"", {"status": 404}),
        "flaky": (good, {"fail_first": 1}),
        "truncated": (good, {"truncate_to": len(good) // 4}),
        "notaudio": (np.random.default_rng(3).bytes(20_000), {}),
        "silent": (wav_bytes(audiogen.silence(H_SONG_S, HSR), HSR), {}),
        "short": (wav_bytes(tone_song(440.0, 2.0, HSR), HSR), {}),
        "clips_silent": (wav_bytes(burst, HSR), {}),
    }


ROW_KINDS = ("nan_va", "no_va", "malformed")
H_KINDS = ("good", "http_404", "flaky", "truncated", "notaudio", "silent", "short", "clips_silent", *ROW_KINDS)
safe_ids = st.text(alphabet="abcxyz0189_.", min_size=1, max_size=3).filter(lambda s: s[0] not in "_.")
ids = st.one_of(safe_ids, safe_ids, safe_ids, st.just("same"), st.sampled_from(["../up", "a b", "é", "", "nan", "x/y"]))
entries = st.lists(st.tuples(st.sampled_from(H_KINDS), ids), min_size=3, max_size=6)


@settings(max_examples=4, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(entries)
def test_random_mixes_keep_every_row_in_one_place(mix):
    bodies = _h_bodies()
    with tempfile.TemporaryDirectory() as tmp, LoopbackServer() as server:
        rows = []
        for i, (kind, song_id) in enumerate(mix):
            body, faults = bodies["good" if kind in ROW_KINDS else kind]
            url = server.add(f"/s{i}.wav", body, **faults)
            if kind == "malformed":
                rows.append((song_id, url, 0.5))
            else:
                va = {"nan_va": ("nan", 0.5), "no_va": (None, None)}.get(kind, (0.5, 0.5))
                rows.append((song_id, url, None, None, *va, None))
        manifest = write_csv(Path(tmp) / "mix.csv", MANIFEST_HEADER, rows)
        run_pipeline(tmp, "--source", "manifest", "--input", str(manifest), "--sample_rate", str(HSR))
        landed = check_songs_land(manifest, Path(tmp) / "out")
        assert len(landed) == len(mix)
        for (kind, _), ln in zip(mix, sorted(landed.values(), key=lambda x: x.line)):
            if ln.outcome != "rows":
                continue
            assert kind in ("good", "flaky"), (kind, ln)  # only good audio can give rows
            assert [r["clip_id"] for r in sorted(ln.rows, key=lambda r: r["start_s"])] == [
                f"{ln.raw_id}-0", f"{ln.raw_id}-1"]


# -- images --------------------------------------------------------------------------------------

def _img_bytes(im: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


def _gradient(w: int = 64, h: int = 48) -> Image.Image:
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 255 // w, y * 255 // h, np.full_like(x, 128)], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


# image_id: (valence, arousal) expected in the images table
IMAGE_VA = {
    "http-jpg": (0.5, 0.5),  # iaps 5, 5
    "http-png": (0.5, 1.0),  # emotic 5.5, 10
    "local-png": (0.2, 0.8),  # unit
    "local-jpg": (0.5, 0.0),  # deam 0, -1
    "cmyk": (0.0, 1.0),  # naps 1, 9
    "gray": (0.25, 0.75),  # likert9 3, 7
}
# image_id: (stage, error_type)
IMAGE_FAILS = {
    "gone": ("image_download", "http_404"),
    "corrupt": ("image_decode", "undecodable"),
    "truncjpg": ("image_decode", "undecodable"),
    "iaps-hi": ("read_images", "bad_va"),
    "emotic-lo": ("read_images", "bad_va"),
    "badscale": ("read_images", "bad_scale"),
    "nofile": ("read_images", "missing_image"),
}


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad_images")
    with offline(), LoopbackServer() as server:
        song = server.add("/song.wav", wav_bytes(tone_song(440.0, 8.5, 16000), 16000))
        manifest = write_csv(tmp / "songs.csv", MANIFEST_HEADER, [("one", song, None, None, 0.5, 0.5, None)])
        g = _gradient()
        jpg = _img_bytes(g, "JPEG")
        (tmp / "imgs").mkdir()
        (tmp / "imgs" / "local.png").write_bytes(_img_bytes(g, "PNG"))
        (tmp / "imgs" / "local.jpg").write_bytes(jpg)
        (tmp / "imgs" / "gray.png").write_bytes(_img_bytes(g.convert("L"), "PNG"))
        (tmp / "imgs" / "trunc.jpg").write_bytes(jpg[: len(jpg) // 2])
        u = {
            "jpg": server.add("/i/a.jpg", jpg, "image/jpeg"),
            "png": server.add("/i/b.png", _img_bytes(g, "PNG"), "image/png"),
            "cmyk": server.add("/i/cmyk.jpg", _img_bytes(g.convert("CMYK"), "JPEG"), "image/jpeg"),
            "gone": server.add("/i/gone.jpg", b"", "image/jpeg", status=404),
            "corrupt": server.add("/i/corrupt.jpg", b"\xff\xd8\xff" + np.random.default_rng(5).bytes(4000),
                                  "image/jpeg"),
        }
        rows = [
            ("http-jpg", u["jpg"], 5.0, 5.0, "iaps", "iaps"),
            ("http-png", u["png"], 5.5, 10, "emotic", "emotic"),
            ("local-png", "imgs/local.png", 0.2, 0.8, "web", "unit"),
            ("local-jpg", str(tmp / "imgs" / "local.jpg"), 0, -1, "web", "deam"),
            ("cmyk", u["cmyk"], 1, 9, "naps", "naps"),
            ("gray", "imgs/gray.png", 3, 7, "web", "likert9"),
            ("gone", u["gone"], 5, 5, "iaps", "iaps"),
            ("corrupt", u["corrupt"], 5, 5, "iaps", "iaps"),
            ("truncjpg", "imgs/trunc.jpg", 5, 5, "iaps", "iaps"),
            ("iaps-hi", u["jpg"], 9.5, 5, "iaps", "iaps"),
            ("emotic-lo", u["png"], 5, 0.5, "emotic", "emotic"),
            ("badscale", u["jpg"], 50, 50, "web", "percent"),
            ("nofile", "imgs/nothing.png", 0.5, 0.5, "web", "unit"),
            ("http-jpg", u["png"], 1, 1, "iaps", "iaps"),  # duplicate id
            ("../x", u["jpg"], 5, 5, "iaps", "iaps"),  # bad id
            ("short-row", u["jpg"], 5),  # malformed
        ]
        images_csv = write_csv(tmp / "images.csv", IMAGE_HEADER, rows)
        summary = run_pipeline(tmp, "--source", "manifest", "--input", str(manifest),
                               "--images_csv", str(images_csv))
    return tmp / "out", images_csv, summary


def test_every_image_row_ends_in_exactly_one_place(image_run):
    output, images_csv, _ = image_run
    landed = check_images_land(images_csv, output)
    assert len(landed) == len(images_csv.read_text(encoding="utf-8").splitlines()) - 1
    assert sorted(ln.raw_id for ln in landed.values() if ln.outcome == "rows") == sorted(IMAGE_VA)
    assert check_songs_land(output.parent / "songs.csv", output)[2].outcome == "rows"


def test_images_are_rgb_with_normalised_va(image_run):
    output, _, _ = image_run
    rows = {r["image_id"]: r for r in read_table(output, "images")}
    assert set(rows) == set(IMAGE_VA)
    for image_id, (v, a) in IMAGE_VA.items():
        r = rows[image_id]
        assert (r["valence"], r["arousal"]) == (pytest.approx(v, abs=1e-6), pytest.approx(a, abs=1e-6)), image_id
        im = Image.open(io.BytesIO(r["image"]["bytes"]))
        assert im.mode == "RGB" and im.size == (64, 48), image_id
        assert r["image"]["path"] == f"{image_id}.{'png' if im.format == 'PNG' else 'jpg'}"
    assert rows["http-jpg"]["source"] == "iaps" and rows["cmyk"]["source"] == "naps"
    # CMYK converted, not reinterpreted: the gradient's blue channel stays near 128
    blue = np.asarray(Image.open(io.BytesIO(rows["cmyk"]["image"]["bytes"])))[..., 2]
    assert abs(float(blue.mean()) - 128) < 20


@pytest.mark.parametrize("image_id", sorted(IMAGE_FAILS))
def test_bad_images_fail_at_their_stage(image_run, image_id):
    output, _, _ = image_run
    got = [f for f in read_failures(output) if f["item_id"] == image_id]
    assert len(got) == 1, got
    assert (got[0]["kind"], got[0]["stage"], got[0]["error_type"]) == ("image", *IMAGE_FAILS[image_id])


def test_duplicate_bad_and_malformed_image_rows(image_run):
    output, images_csv, _ = image_run
    failures = read_failures(output)
    lines = images_csv.read_text(encoding="utf-8").splitlines()
    by_line = {f["item_id"]: f for f in failures if f["item_id"].startswith("images.csv:line")}
    dup = [f for f in failures if f["item_id"] == "http-jpg"]
    assert [(f["stage"], f["error_type"]) for f in dup] == [("read_images", "duplicate_id")]
    bad = next(i for i, t in enumerate(lines, 1) if t.startswith("../x"))
    short = next(i for i, t in enumerate(lines, 1) if t.startswith("short-row"))
    assert (by_line[f"images.csv:line{bad}"]["error_type"], by_line[f"images.csv:line{short}"]["error_type"]) == (
        "bad_id", "malformed_row")
