"""Clip codecs (`--audio_codec`): byte-stable, sample-exact, and decodable by `datasets`."""
from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile as sf
from threadpoolctl import threadpool_limits

from dataset_card import codecs
from dataset_card.build import build
from dataset_card.codecs import CODECS, AudioFormat, codec_of, encode
from tests.dataset_card.fakerun import make_rows, write_run

ROOT = Path(__file__).resolve().parents[2]
FORMATS = [AudioFormat("flac"), AudioFormat("opus"), AudioFormat("mp3"), AudioFormat("opus", 48000, 32),
           AudioFormat("mp3", 22050, 64), AudioFormat("mp3", 8000, 24), AudioFormat("flac", 16000)]


def music_like(seconds: float = 3.0, sr: int = 44100) -> np.ndarray:
    """Two tones and a little noise: enough for a lossy encoder to make real decisions."""
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(1)
    x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 1320 * t) + 0.02 * rng.standard_normal(len(t))
    return x.astype(np.float32)


@pytest.mark.parametrize("fmt", FORMATS, ids=str)
def test_every_codec_decodes_sample_exact_at_its_rate(fmt):
    x = music_like()
    data = encode(x, 44100, fmt)
    rate = fmt.resolved(44100).sample_rate
    y, sr = sf.read(io.BytesIO(data), dtype="float32")
    assert sr == rate and len(y) == round(3.0 * rate)  # encoder delay and padding trimmed by the decoder
    assert codec_of(data) == fmt.codec
    from torchcodec.decoders import AudioDecoder  # what `datasets` decodes with

    s = AudioDecoder(data).get_all_samples()
    assert s.sample_rate == rate and s.data.shape[-1] == len(y)


def test_lossy_round_trip_keeps_the_music():
    x = music_like()
    for fmt in (AudioFormat("opus"), AudioFormat("mp3")):
        y, sr = sf.read(io.BytesIO(encode(x, 44100, fmt)), dtype="float32")
        spectrum = np.abs(np.fft.rfft(y))
        freqs = np.fft.rfftfreq(len(y), 1 / sr)
        top = sorted(freqs[np.argsort(spectrum)[-2:]])
        assert top == pytest.approx([220, 1320], abs=1.0), fmt  # both tones where they were
        # the level survives within 0.5 dB (a codec that dropped or boosted a band would not)
        level = lambda a: 10 * np.log10(np.mean(np.square(a, dtype=np.float64)))  # noqa: E731
        assert level(y) == pytest.approx(level(x), abs=0.5), fmt


@pytest.mark.parametrize("fmt", FORMATS[:3], ids=str)
def test_same_bytes_across_runs_processes_and_thread_counts(fmt, tmp_path):
    x = music_like()
    with threadpool_limits(limits=1):
        one = encode(x, 44100, fmt)
    with threadpool_limits(limits=2):
        two = encode(x, 44100, fmt)
    np.save(tmp_path / "x.npy", x)
    script = (f"import sys, numpy as np; from dataset_card.codecs import AudioFormat, encode; "
              f"x = np.load({str(tmp_path / 'x.npy')!r}); "
              f"sys.stdout.buffer.write(encode(x, 44100, AudioFormat({fmt.codec!r})))")
    other = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, check=True,
                           env={"OMP_NUM_THREADS": "2", "PATH": "/usr/bin:/bin"}).stdout
    assert one == two == other  # libsndfile numbers Ogg streams at random: the serial is fixed


def test_ogg_checksum_matches_libsndfiles_own():
    buf = io.BytesIO()
    sf.write(buf, music_like(1.0, 48000), 48000, format="OGG", subtype="OPUS")
    raw = buf.getvalue()
    segments = raw[26]
    page = bytearray(raw[:27 + segments + sum(raw[27:27 + segments])])
    written = int.from_bytes(page[22:26], "little")
    page[22:26] = bytes(4)
    assert codecs._ogg_crc(bytes(page)) == written
    fixed = codecs._fixed_ogg_serial(raw)
    assert fixed != raw and int.from_bytes(fixed[14:18], "little") == codecs.OGG_SERIAL
    assert len(sf.read(io.BytesIO(fixed))[0]) == 48000  # libogg checks every page's checksum


@pytest.mark.parametrize("fmt, message", [
    (dict(codec="wav"), "--audio_codec"),
    (dict(codec="opus", sample_rate=24000), "--audio_sample_rate 24000: opus takes 48000"),
    (dict(codec="mp3", sample_rate=96000), "--audio_sample_rate"),
    (dict(codec="flac", kbps=128), "--audio_bitrate applies to lossy codecs"),
    (dict(codec="opus", kbps=500), "--audio_bitrate 500: opus takes 6-256"),
])
def test_impossible_formats_name_the_flag(fmt, message):
    with pytest.raises(ValueError, match=message):
        AudioFormat(**fmt)


def test_defaults_are_filled_in_for_the_analysis_rate():
    assert AudioFormat("flac").resolved(44100) == AudioFormat("flac", 44100)
    assert AudioFormat("opus").resolved(44100) == AudioFormat("opus", 48000, CODECS["opus"].default_kbps)
    assert AudioFormat("mp3").resolved(37000).sample_rate == 44100  # the next rate MP3 has
    assert "Opus" in AudioFormat("opus").resolved(44100).describe()


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_load_dataset_decodes_every_codec(codec, tmp_path):
    fmt = AudioFormat(codec)
    rows = make_rows()
    for r in rows["music"]:
        r["audio"] = {"bytes": encode(music_like(1.0, 8000), 8000, fmt), "path": f"{r['clip_id']}{fmt.extension}"}
    built = build(write_run(tmp_path / "run", rows))  # validated: every clip decodes to its length
    assert f"Clips are stored as **{CODECS[codec].label}**" in (built.out_dir / "README.md").read_text()
    music = datasets.load_dataset(str(built.out_dir), "music", cache_dir=str(tmp_path / "cache"))
    rate = fmt.resolved(8000).sample_rate
    for row in music["train"]:
        samples = row["audio"].get_all_samples()
        assert samples.sample_rate == rate and samples.data.shape[-1] == rate  # 1 s clips
