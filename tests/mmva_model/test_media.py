"""Decoding clips for the encoders: every codec the pipeline stores, to the same samples."""
from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from dataset_card.codecs import AudioFormat, encode
from mmva_model.media import MediaError, _is_ogg_opus, decode_audio

RATE = 16000


def _tone(seconds: float = 2.0, rate: int = 44100) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 1250 * t)).astype(np.float32)


def test_opus_decodes_through_ffmpeg_to_libsndfiles_samples():
    data = encode(_tone(), 44100, AudioFormat("opus", 48000))
    assert _is_ogg_opus(data)  # so FFmpeg decodes it first
    ours = decode_audio(data, RATE, 2.0)
    x, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)  # libsndfile's own decoding
    theirs = decode_audio(_wav(x[:, 0], sr), RATE, 2.0)
    # Two conformant Opus decoders (FFmpeg's and libsndfile's libopus) agree to float32 rounding;
    # 1e-5 leaves room for the resampler, far below the codec's own error (~1e-2).
    assert ours.shape == (2 * RATE,) and np.abs(ours - theirs).max() < 1e-5


def test_flac_and_padding_to_the_clip_length():
    x = _tone(1.0)
    out = decode_audio(encode(x, 44100, AudioFormat("flac", 44100)), RATE, 2.0)
    assert out.shape == (2 * RATE,) and not out[RATE + 100:].any() and np.abs(out[:RATE]).max() > 0.2


def test_bytes_that_are_not_audio_name_both_decoders_stably():
    with pytest.raises(MediaError) as first:
        decode_audio(b"not audio at all", RATE)
    with pytest.raises(MediaError) as again:
        decode_audio(b"not audio at all", RATE)
    assert "soundfile:" in str(first.value) and "torchcodec:" in str(first.value)
    assert str(first.value) == str(again.value)  # no object addresses in the message


def _wav(x: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, rate, format="WAV", subtype="FLOAT")
    return buf.getvalue()
