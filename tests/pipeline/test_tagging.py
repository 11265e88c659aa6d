"""Content tags per song: one tagger pass over a song's patches, a clip the mean of those it covers."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline import tagging
from tests import audiogen as g

MODELS = tagging.TAGGERS["musicnn"]


def test_a_clip_is_the_mean_of_the_patches_centred_in_it():
    probs = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 50), np.float32)  # patch k: all k
    tags = tagging.SongTags(3.0, {"MTT_musicnn": probs})
    assert tags.clip(0.0, 10.0)["MTT_musicnn"][0] == pytest.approx((0 + 1 + 2) / 3)  # centres 1.5, 4.5, 7.5
    assert tags.clip(4.5, 7.5)["MTT_musicnn"][0] == 1.0  # a window's start is inside, its end is not
    assert tags.clip(10.0, 11.0)["MTT_musicnn"][0] == 3.0  # no centre inside: the nearest patch (10.5)
    assert tags.clip_embeddings(0.0, 10.0) is None  # embeddings not kept


def test_a_clips_embedding_averages_the_same_patches_as_its_probabilities():
    song = g.music_like_song(10.0, 44100)
    tags = tagging.tag_song(song, 44100, MODELS)
    assert all(e.shape == (3, 200) and e.dtype == np.float32 for e in tags.embeddings.values())
    emb = tags.clip_embeddings(3.0, 10.0)  # centres 1.5, 4.5, 7.5 s: patches 1 and 2
    for m in MODELS:
        np.testing.assert_array_equal(emb[m], tags.embeddings[m][1:].mean(axis=0, dtype=np.float64).astype(np.float32))
    # the penultimate layer is what the output layer reads: the same forward pass as the probabilities
    from captioner.tagger import frontend, load_tagger, torch_threads

    with torch_threads(1):  # as tag_song computes the front end
        patches = frontend.grid_patches(frontend.resample_to_16k(song, 44100), 0, 3)
    out = load_tagger("MSD_musicnn").forward(patches)
    np.testing.assert_array_equal(out.penultimate, tags.embeddings["MSD_musicnn"])
    np.testing.assert_array_equal(out.probabilities, tags.probabilities["MSD_musicnn"])


def test_no_models_no_tags():
    assert tagging.tag_song(np.zeros(44100, np.float32), 44100, ()) is None


def test_a_song_is_tagged_once_for_both_models_and_short_songs_too():
    song = g.music_like_song(10.0, 44100)
    tags = tagging.tag_song(song, 44100, MODELS)
    assert set(tags.probabilities) == set(MODELS)
    assert all(p.shape == (3, 50) and p.dtype == np.float32 for p in tags.probabilities.values())  # 3 x 2.992 s
    assert tags.patch_s == pytest.approx(187 * 256 / 16000)
    short = tagging.tag_song(song[:44100], 44100, MODELS)  # 1 s: padded to one patch
    assert all(p.shape == (1, 50) for p in short.probabilities.values())


def test_tags_do_not_depend_on_the_callers_thread_count():
    import torch

    song = g.music_like_song(7.0, 22050)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = tagging.tag_song(song, 22050, MODELS).probabilities
        torch.set_num_threads(2)
        two = tagging.tag_song(song, 22050, MODELS).probabilities
    finally:
        torch.set_num_threads(before)
    assert all(np.array_equal(one[m], two[m]) for m in MODELS)


def test_missing_weights_name_the_flag(monkeypatch):
    from captioner.tagger import weights

    def missing(name):
        raise weights.TaggerWeightsMissing("the musicnn package (trained tagger weights) is not installed")

    monkeypatch.setattr(weights, "checkpoint_prefix", missing)
    with pytest.raises(ValueError, match="--tagger none"):
        tagging.tagger_models("musicnn")
    assert tagging.tagger_models("none") == ()


def test_tagging_only_the_clips_span_gives_the_same_clip_tags():
    """The patches of the span are those of the whole song's grid, computed from the samples they cover:
    the same STFT frames and mel products, summed over different batch sizes, so equal to float32
    rounding (1e-6 of a probability)."""
    song = g.music_like_song(24.0, 22050)
    whole = tagging.tag_song(song, 22050, MODELS)
    part = tagging.tag_song(song, 22050, MODELS, span_s=(9.5, 19.5))
    assert part.first == 3 and len(part.probabilities["MTT_musicnn"]) == 4  # patches 3..6 of 8
    for start in (9.5, 11.0, 12.5):
        a, b = whole.clip(start, start + 7), part.clip(start, start + 7)
        for m in MODELS:
            np.testing.assert_allclose(b[m], a[m], rtol=0, atol=1e-6)
