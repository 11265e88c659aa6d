"""pipeline.audio: decoding every format we meet, ranges, resampling, errors, clip grid, clip VA."""
from __future__ import annotations

import io
import pickle
import sys

import numpy as np
import pytest
import soundfile as sf

from pipeline import audio
from pipeline.audio import AudioError, clip_grid, clip_va, decode, encode_flac, is_silent, probe
from pipeline.types import VACurve
from tests import audiogen as g

FFMPEG_FORMATS = ("m4a", "webm", "opus")
needs_ffmpeg = pytest.mark.skipif(not g.has_ffmpeg(), reason="ffmpeg CLI needed to write m4a/webm/opus")


def _fmt_param(fmt: str):
    return pytest.param(fmt, marks=needs_ffmpeg) if fmt in FFMPEG_FORMATS else fmt


def peak_hz(x: np.ndarray, sr: int) -> float:
    """Frequency of the strongest spectral peak (Hann window, zero padded)."""
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=4 * len(x)))
    return float(np.argmax(spec) * sr / (4 * len(x)))


def rms_db(x: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-12)


# --- formats and rates -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [_fmt_param(f) for f in g.FORMATS])
@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_decode_formats_and_rates(tmp_path, fmt, sr):
    x = g.tone(440.0, 2.0, sr, amp=0.5)
    path = g.write(tmp_path / f"a.{fmt}", g.stereo(x, x), sr)
    info = probe(str(path))
    assert info.channels == 2
    # Opus in webm goes through FFmpeg, which decodes at 48k; libsndfile keeps Ogg Opus's input rate
    assert info.sample_rate == (48000 if fmt == "webm" else sr) or (fmt == "opus" and info.sample_rate == 48000)
    y = decode(str(path), 16000)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) / 16000 - 2.0) < 0.06  # codecs pad a frame or so
    assert abs(peak_hz(y[1600:-1600], 16000) - 440.0) < 2.0
    assert abs(rms_db(y[1600:-1600]) - rms_db(x)) < 1.0  # lossy codecs at these rates: < 1 dB


def test_probe_reads_header_and_accepts_bytes(tmp_path):
    data = g.to_bytes(g.tone(440.0, 3.0, 44100), 44100, "flac")
    (tmp_path / "a.flac").write_bytes(data)
    for src in (str(tmp_path / "a.flac"), tmp_path / "a.flac", data):
        info = probe(src)
        assert info == audio.AudioInfo(3.0, 44100, 1, "flac")


def test_probe_does_not_decode(tmp_path, monkeypatch):
    path = g.write(tmp_path / "a.wav", g.tone(440.0, 1.0, 8000), 8000)
    monkeypatch.setattr(audio, "_read", lambda *a: pytest.fail("probe decoded the audio"))
    assert probe(str(path)).duration_s == pytest.approx(1.0)


def test_decode_bytes_equals_decode_path(tmp_path):
    data = g.to_bytes(g.music_like_song(3.0, 22050), 22050, "mp3")
    (tmp_path / "a.mp3").write_bytes(data)
    np.testing.assert_array_equal(decode(data, 22050), decode(str(tmp_path / "a.mp3"), 22050))


# --- resampling and downmix --------------------------------------------------------------------


@pytest.mark.parametrize("freq", [1000.0, 15000.0])
def test_resample_48k_to_44k_keeps_frequency_and_level(tmp_path, freq):
    x = g.tone(freq, 2.0, 48000, amp=0.5)
    y = decode(str(g.write(tmp_path / "a.wav", x, 48000)), 44100)
    assert len(y) == 2 * 44100
    assert abs(peak_hz(y, 44100) - freq) < 1.0
    assert abs(rms_db(y[4410:-4410]) - rms_db(x)) < 0.1


def test_resample_removes_content_above_new_nyquist(tmp_path):
    # 23 kHz fits at 48 kHz but not at 44.1 kHz: it must vanish, not alias to 21.1 kHz.
    x = g.tone(23000.0, 2.0, 48000, amp=0.5)
    y = decode(str(g.write(tmp_path / "a.wav", x, 48000)), 44100)
    assert rms_db(y[4410:-4410]) < rms_db(x) - 60


def test_stereo_is_mean_downmixed(tmp_path):
    sr = 22050
    left, right = g.tone(440.0, 1.0, sr, 0.5), g.tone(660.0, 1.0, sr, 0.3)
    y = decode(str(g.write(tmp_path / "lr.wav", g.stereo(left, right), sr)), sr)
    np.testing.assert_allclose(y, (left + right) / 2, atol=2e-4)  # 16-bit wav quantisation


def test_opposite_channels_cancel(tmp_path):
    x = g.tone(440.0, 1.0, 22050, 0.5)
    y = decode(str(g.write(tmp_path / "opp.wav", g.stereo(x, -x), 22050)), 22050)
    assert np.abs(y).max() < 1e-4
    assert is_silent(y)


# --- time ranges -------------------------------------------------------------------------------


def _impulses(sr: int, times=(1.0, 5.0, 12.0), seconds: float = 20.0) -> np.ndarray:
    x = np.zeros(int(seconds * sr), np.float32)
    for t in times:
        x[int(t * sr)] = 0.9
    return x


def _peak_times(y: np.ndarray, sr: int, near=(1.0, 8.0)) -> list[float]:
    out = []
    for t in near:
        lo = int((t - 0.2) * sr)
        out.append((lo + int(np.argmax(np.abs(y[lo:lo + int(0.4 * sr)])))) / sr)
    return out


@pytest.mark.parametrize("fmt", [_fmt_param(f) for f in ("wav", "flac", "mp3", "ogg", "m4a")])
def test_range_is_sample_aligned(tmp_path, fmt):
    # mp3/aac streams start at a timestamp after 0 (encoder delay): ranges must still count
    # from the first decoded sample, as a full decode does.
    sr = 44100
    path = g.write(tmp_path / f"imp.{fmt}", _impulses(sr), sr)
    y = decode(str(path), sr, start_s=4.0, end_s=13.0)
    assert len(y) == 9 * sr
    for got, want in zip(_peak_times(y, sr), (1.0, 8.0)):
        assert abs(got - want) < 1e-3
    full = decode(str(path), sr)
    np.testing.assert_allclose(_peak_times(full, sr, (5.0, 12.0)), (5.0, 12.0), atol=1e-3)


def test_range_past_the_end_is_empty(tmp_path):
    path = g.write(tmp_path / "a.wav", g.tone(440.0, 2.0, 8000), 8000)
    with pytest.raises(AudioError) as e:
        decode(str(path), 8000, start_s=5.0, end_s=8.0)
    assert e.value.error_type == "empty"


# --- errors ------------------------------------------------------------------------------------


def test_too_long_is_refused_before_decoding(tmp_path, monkeypatch):
    path = g.write(tmp_path / "a.flac", g.tone(440.0, 45.0, 8000), 8000)
    monkeypatch.setattr(audio, "_read", lambda *a: pytest.fail("decoded a song that is too long"))
    with pytest.raises(AudioError) as e:
        decode(str(path), 8000, max_seconds=30)
    assert e.value.error_type == "too_long"
    assert "--max_song_seconds" in str(e.value) and "45.0 s long" in str(e.value)


def test_max_seconds_applies_to_the_range(tmp_path):
    path = g.write(tmp_path / "a.flac", g.tone(440.0, 45.0, 8000), 8000)
    assert len(decode(str(path), 8000, start_s=15.0, end_s=45.0, max_seconds=30)) == 30 * 8000
    assert len(decode(str(path), 8000, start_s=15.0, max_seconds=30)) == 30 * 8000


@needs_ffmpeg
def test_too_long_without_duration_in_header(tmp_path):
    path = g.write(tmp_path / "a.webm", g.tone(440.0, 12.0, 48000), 48000)
    assert probe(str(path)).duration_s is None  # streamed webm: no duration to check up front
    with pytest.raises(AudioError) as e:
        decode(str(path), 16000, max_seconds=5)
    assert e.value.error_type == "too_long" and "--max_song_seconds" in str(e.value)
    assert abs(len(decode(str(path), 16000, max_seconds=20)) / 16000 - 12.0) < 0.05


@pytest.mark.parametrize("data", [b"<html><body>Not found</body></html>", b"ID3" + bytes(range(256)) * 8,
                                  b"RIFF\x00\x00\x00\x00WAVEfmt garbage"])
def test_not_audio_is_undecodable(tmp_path, data):
    (tmp_path / "x.mp3").write_bytes(data)
    for call in (lambda: probe(str(tmp_path / "x.mp3")), lambda: decode(str(tmp_path / "x.mp3"), 16000)):
        with pytest.raises(AudioError) as e:
            call()
        assert e.value.error_type == "undecodable" and "not decodable audio" in str(e.value)


NOT_AUDIO = b"this is not an MP3 file\n" * 64  # the rehearsal's broken songs


@needs_ffmpeg
def test_not_audio_is_rejected_without_loading_torch(tmp_path):
    """A broken file must not cost a worker torch's import (~0.3 GB it keeps for the whole run)."""
    import subprocess

    (tmp_path / "x.mp3").write_bytes(NOT_AUDIO)
    code = ("import sys\nfrom pipeline.audio import AudioError, probe\n"
            "try:\n    probe(sys.argv[1])\nexcept AudioError as e:\n    print(e.error_type, e)\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.mp3")], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0].startswith("undecodable not decodable audio: ") and len(out[0]) > 40
    assert out[-1] == "False"


@needs_ffmpeg
@pytest.mark.parametrize("fmt", FFMPEG_FORMATS)
def test_ffmpeg_gate_passes_what_ffmpeg_decodes(tmp_path, monkeypatch, fmt):
    """The gate only rejects what torchcodec would reject: audio libsndfile cannot read goes through."""
    monkeypatch.delitem(sys.modules, "torch", raising=False)  # as in a fresh worker
    x = g.tone(440.0, 1.0, 44100, amp=0.5)
    path = g.write(tmp_path / f"a.{fmt}", g.stereo(x, x), 44100)
    assert audio._ffmpeg_rejects(str(path)) is None
    (tmp_path / "bad.mp3").write_bytes(NOT_AUDIO)
    assert audio._ffmpeg_rejects(str(tmp_path / "bad.mp3"))


def test_without_ffprobe_torchcodec_decides(tmp_path, monkeypatch):
    monkeypatch.setattr(audio.shutil, "which", lambda name: None)
    (tmp_path / "x.mp3").write_bytes(NOT_AUDIO)
    assert audio._ffmpeg_rejects(str(tmp_path / "x.mp3")) is None
    with pytest.raises(AudioError) as e:
        probe(str(tmp_path / "x.mp3"))
    assert e.value.error_type == "undecodable"


def test_empty_files(tmp_path):
    (tmp_path / "zero.wav").write_bytes(b"")
    header_only = io.BytesIO()
    sf.write(header_only, np.zeros(0, np.float32), 16000, format="WAV")
    (tmp_path / "hdr.wav").write_bytes(header_only.getvalue())
    for name in ("zero.wav", "hdr.wav"):
        with pytest.raises(AudioError) as e:
            decode(str(tmp_path / name), 16000)
        assert e.value.error_type == "empty"


def test_missing_file_is_not_bad_audio(tmp_path):
    with pytest.raises(FileNotFoundError):
        decode(str(tmp_path / "nope.wav"), 16000)


def test_audio_error_types_are_checked_and_pickle():
    e = pickle.loads(pickle.dumps(AudioError("silent", "below -60 dBFS")))
    assert (e.error_type, str(e)) == ("silent", "below -60 dBFS")
    with pytest.raises(ValueError):
        AudioError("weird", "x")


def test_range_must_be_forward(tmp_path):
    path = g.write(tmp_path / "a.wav", g.tone(440.0, 2.0, 8000), 8000)
    with pytest.raises(ValueError, match="end_s"):
        decode(str(path), 8000, start_s=1.5, end_s=1.0)


# --- silence -----------------------------------------------------------------------------------


def test_is_silent():
    sr = 8000
    assert is_silent(g.silence(1.0, sr))
    assert is_silent(np.zeros(0, np.float32))
    assert is_silent(g.noise(1.0, sr, amp=1e-4))  # about -85 dBFS
    assert not is_silent(g.tone(440.0, 1.0, sr, amp=0.01))  # -43 dBFS
    assert is_silent(g.tone(440.0, 1.0, sr, amp=0.01), threshold_db=-40.0)


# --- clip grid and clip VA ---------------------------------------------------------------------


def test_clip_grid_deam_excerpt_gives_imemnet_indices():
    grid = clip_grid(45.0, 10.0, 5 / 3, span=(15.0, 45.0))
    assert [i for i, _, _ in grid] == list(range(9, 22))
    assert grid[0] == (9, 15.0, 25.0)
    assert grid[1] == (10, 16.667, 26.667)
    assert grid[-1] == (21, 35.0, 45.0)


def test_clip_grid_without_span_and_edges():
    assert [i for i, _, _ in clip_grid(45.0, 10.0, 5 / 3, None)] == list(range(0, 22))
    assert clip_grid(9.99, 10.0, 5 / 3, None) == []
    assert clip_grid(10.0, 10.0, 5 / 3, None) == [(0, 0.0, 10.0)]
    # a span reaching past the song is cut at the song's end
    assert clip_grid(30.0, 10.0, 5.0, span=(20.0, 60.0)) == [(4, 20.0, 30.0)]
    # a span starting between grid points starts at the next one
    assert clip_grid(60.0, 10.0, 5.0, span=(12.0, 30.0)) == [(3, 15.0, 25.0), (4, 20.0, 30.0)]
    with pytest.raises(ValueError):
        clip_grid(45.0, 10.0, 0.0, None)


def _deam_curve() -> VACurve:
    times = tuple(15.0 + 0.5 * k for k in range(60))  # 15.0 .. 44.5 at 2 Hz, DEAM style
    return VACurve(times, tuple(k / 100 for k in range(60)), tuple(1 - k / 100 for k in range(60)))


def test_clip_va_means_and_population_std():
    curve = _deam_curve()
    v, a, vs, as_ = clip_va(curve, 15.0, 25.0)  # samples 15.0 .. 24.5: k = 0..19
    k = np.arange(20)
    assert v == pytest.approx(np.mean(k / 100))
    assert a == pytest.approx(np.mean(1 - k / 100))
    assert vs == pytest.approx(np.std(k / 100)) and as_ == pytest.approx(np.std(k / 100))
    # every DEAM clip of the grid has 20 samples
    for _, s, e in clip_grid(45.0, 10.0, 5 / 3, curve.span):
        t = np.array(curve.times_s)
        assert np.sum((t >= s - 1e-6) & (t < e - 1e-6)) == 20
        clip_va(curve, s, e)


def test_clip_va_outside_curve():
    with pytest.raises(ValueError, match="no VA sample"):
        clip_va(_deam_curve(), 0.0, 10.0)


# --- FLAC out ----------------------------------------------------------------------------------


def test_encode_flac_is_deterministic_and_lossless_at_16_bit():
    x = g.music_like_song(3.0, 16000)
    a, b = encode_flac(x, 16000), encode_flac(x.copy(), 16000)
    assert a == b and a[:4] == b"fLaC"
    y, sr = sf.read(io.BytesIO(a), dtype="float32")
    assert sr == 16000 and len(y) == len(x)
    assert np.abs(y - x).max() <= 1.0 / 32768 + 1e-7


def test_encode_flac_clips_out_of_range():
    y, _ = sf.read(io.BytesIO(encode_flac(np.array([2.0, -3.0, 0.5], np.float32), 8000)))
    assert y.max() <= 1.0 and y.min() >= -1.0 and y[2] == pytest.approx(0.5, abs=1e-4)


@pytest.mark.parametrize("channels", [2, 3])
def test_multichannel_downmix_block_by_block_equals_the_whole_mean(tmp_path, monkeypatch, channels):
    sr = 22050
    x = np.stack([g.tone(220.0 * (c + 1), 3.0, sr, 0.3) for c in range(channels)], axis=1)
    path = tmp_path / "multi.wav"
    sf.write(path, x, sr, subtype="FLOAT")
    monkeypatch.setattr(audio, "_READ_BLOCK", 1000)  # many blocks, the last a partial one
    for start, end in ((None, None), (0.5, 2.25), (1.0, None)):
        y = decode(str(path), sr, start_s=start, end_s=end)
        a = int(round((start or 0) * sr))
        b = len(x) if end is None else a + int(round((end - start) * sr))
        np.testing.assert_array_equal(y, x[a:b].T.mean(axis=0, dtype=np.float32))
