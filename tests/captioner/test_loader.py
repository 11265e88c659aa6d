"""The job's loader (decode + prepare in workers, batches of one length) and the audio-llm job."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
import soundfile as sf

from captioner import job, loader
from captioner.audio_prep import AUDIO_CORRUPT, PreparedClip
from captioner.base import CaptionerConfig, ClipForCaption, build
from captioner.merge import music_shards
from tests.captioner.audio_run import wav_bytes, write_music_run
from tests.captioner.tiny_models import tiny_qwen2_audio


@pytest.fixture(scope="module")
def tiny_audio_dir(tmp_path_factory):
    return tiny_qwen2_audio(tmp_path_factory.mktemp("tiny-qwen2-audio"))


@pytest.fixture(scope="module")
def captioner(tiny_audio_dir):
    return build(CaptionerConfig("audio-llm", str(tiny_audio_dir), {"max_new_tokens": 4, "do_sample": False,
                                                                   "retries": 0}))


def test_decode_wav_with_the_standard_library_and_flac_with_soundfile():
    x = (0.5 * np.sin(np.arange(8000) / 10)).astype(np.float32)
    y, rate = loader.decode_audio(wav_bytes(x, 8000))
    assert rate == 8000 and y.shape == (8000, 1) and np.abs(y[:, 0] - x).max() < 1e-4
    buf = io.BytesIO()
    sf.write(buf, x, 8000, format="FLAC")
    z, rate = loader.decode_audio(buf.getvalue())
    assert rate == 8000 and np.abs(z - x).max() < 1e-4
    with pytest.raises(Exception):
        loader.decode_audio(b"RIFF....garbage")


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_prepares_every_wanted_clip_once_in_batches_of_one_length(tmp_path, captioner, workers):
    ids = write_music_run(tmp_path, 9, seconds=2.0, corrupt=(4,))
    ids += write_music_run(tmp_path / "short", 3, seconds=1.5, first_song=2000)  # a second length
    shards = music_shards(tmp_path) + music_shards(tmp_path / "short")
    wanted = set(ids) - {ids[0]}
    seen, failed = [], []
    for batch in loader.batches(shards, wanted, captioner, batch_size=3, workers=workers):
        assert 0 < len(batch) <= 3
        assert all(isinstance(c, PreparedClip) for c in batch.clips)
        assert len({c.n_audio_tokens for c in batch.clips}) <= 1  # one length per batch
        seen += [c.clip_id for c in batch.clips]
        failed += batch.failed
    assert sorted(seen + [f.clip_id for f in failed]) == sorted(wanted)  # each wanted clip exactly once
    assert [(f.clip_id, f.error_type) for f in failed] == [(ids[4], AUDIO_CORRUPT)]
    assert "cannot decode" in failed[0].message


def test_loader_without_a_preparer_hands_over_plain_clips(tmp_path):
    ids = write_music_run(tmp_path, 4, seconds=1.0)
    descriptor = build(CaptionerConfig("descriptor"))
    batches = list(loader.batches(music_shards(tmp_path), set(ids), descriptor, batch_size=8))
    clips = [c for b in batches for c in b.clips]
    assert sorted(c.clip_id for c in clips) == sorted(ids)
    assert all(isinstance(c, ClipForCaption) and c.samples is None for c in clips)  # no audio read


def test_audio_llm_job_records_every_clip_and_corrupt_audio_as_a_failure(tmp_path, tiny_audio_dir):
    ids = write_music_run(tmp_path, 6, seconds=2.0, corrupt=(2,))
    result = job.run(["--input", str(tmp_path), "--backend", "audio-llm", "--model", str(tiny_audio_dir),
                      "--batch_size", "4", "--max_new_tokens", "4", "--retries", "0", "--no_progress",
                      "--loader_workers", "1"])
    assert (result.total_clips, result.captioned + result.rejected) == (6, 6)
    summary = json.loads((tmp_path / "captions/summary.json").read_text())
    assert summary["clips"] == 6 and summary["rejects"][ids[2]]["error_type"] == AUDIO_CORRUPT
    assert summary["captioner"].startswith("audio-llm/")
