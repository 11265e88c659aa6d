"""Clips leave the cut stage with their FLAC staged; float audio only when the captioner reads it."""
from __future__ import annotations

import argparse
import io

import numpy as np
import pytest
import soundfile as sf

from pipeline.download import DownloadOptions
from pipeline.song import CutOptions
from pipeline.sources.demo import DemoSource
from pipeline.stages import SongsToClips, music_row
from pipeline.types import Clip
from pipeline.writer import STAGED, unstage


def _clips(tmp_path, keep_audio: bool) -> list[Clip]:
    opts = argparse.Namespace(cache_dir=str(tmp_path / "cache"), demo_songs=1, demo_song_seconds=12.0,
                              demo_images=0, seed=0)
    task = DemoSource(opts).items().songs[0]
    stage = SongsToClips(CutOptions(sample_rate=16000, clip_seconds=4.0, hop_seconds=4.0),
                         DownloadOptions(cache_dir=str(tmp_path / "dl")), None, str(tmp_path / "out"), keep_audio)
    stage.setup()
    (clips,) = [x for x in stage.process(task) if isinstance(x, list)]
    return clips


@pytest.mark.parametrize("keep_audio", [False, True])
def test_cut_stage_stages_flac_and_drops_samples_unless_needed(tmp_path, keep_audio):
    clips = _clips(tmp_path, keep_audio)
    assert clips
    for clip in clips:
        assert (clip.samples is not None) == keep_audio
        uri, size = clip.staged_audio
        row = music_row(clip, str(tmp_path / "out"))[1]
        assert row[STAGED]["audio"] == (uri, size)
        data = unstage(row)["audio"]["bytes"]
        assert len(data) == size
        audio, sr = sf.read(io.BytesIO(data), dtype="float32")
        assert sr == 16000 and len(audio) == int(4.0 * 16000)
        if keep_audio:  # the staged FLAC is the same audio the captioner gets (16-bit rounding)
            assert np.abs(audio - clip.samples).max() < 1e-3
