"""`--audio_codec/--audio_sample_rate/--audio_bitrate` reach the stored clips; impossible ones stop the run."""
from __future__ import annotations

import io

import pytest
import soundfile as sf

from dataset_card.codecs import codec_of
from pipeline.run import main
from tests.e2e_helpers import pipeline_args, read_table, run_pipeline

DEMO = ("--demo_songs", "1", "--demo_song_seconds", "12", "--demo_images", "0")


@pytest.mark.parametrize("flags, codec, rate, suffix", [
    (("--audio_codec", "mp3", "--audio_bitrate", "48"), "mp3", 16000, ".mp3"),
    (("--audio_codec", "opus"), "opus", 48000, ".opus"),
    (("--audio_codec", "flac", "--audio_sample_rate", "8000"), "flac", 8000, ".flac"),
])
def test_the_chosen_codec_is_what_the_music_table_holds(tmp_path, flags, codec, rate, suffix):
    run_pipeline(tmp_path, *DEMO, *flags)
    rows = read_table(tmp_path / "out", "music")
    assert rows
    for r in rows:
        data = r["audio"]["bytes"]
        x, sr = sf.read(io.BytesIO(data), dtype="float32")
        assert codec_of(data) == codec and r["audio"]["path"] == r["clip_id"] + suffix
        assert sr == rate and len(x) == int(round((r["end_s"] - r["start_s"]) * rate))


@pytest.mark.parametrize("flags, message", [
    (("--audio_codec", "opus", "--audio_sample_rate", "44100"), "--audio_sample_rate 44100: opus takes 48000"),
    (("--audio_codec", "flac", "--audio_bitrate", "96"), "--audio_bitrate applies to lossy codecs"),
])
def test_an_impossible_format_stops_the_run_naming_the_flag(tmp_path, capsys, flags, message):
    assert main(pipeline_args(tmp_path, *DEMO, *flags)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out" / "data").exists()
