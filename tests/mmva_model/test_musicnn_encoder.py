"""The `musicnn` music encoder: the pipeline's stored tagger embeddings as frozen features, the clip's
own audio tagged where a row has none, and a model that trains on them."""
from __future__ import annotations

import numpy as np
import pytest

from mmva_model import train
from mmva_model.config import EncoderConfig
from mmva_model.data import load_table
from mmva_model.encoders import build_encoder

MUSICNN = "model.music={name: musicnn, frozen: true}"


def _rows(run, split="train", n=None):
    table = load_table(str(run), "music", split)
    return [table.row(i) for i in range(len(table) if n is None else n)]


def test_stored_embeddings_are_the_features_and_their_width_is_known(demo_data):
    enc = build_encoder(EncoderConfig("musicnn"))
    row = _rows(demo_data, n=1)[0]
    assert len(row["tag_embeddings"]["mtt"]) == len(row["tag_embeddings"]["msd"]) == 200
    x = enc.prepare(row)
    assert x["musicnn"].shape == (400,) and x["descriptors"].shape == (8,)
    expected = np.concatenate([row["tag_embeddings"]["mtt"], row["tag_embeddings"]["msd"]]).astype(np.float32)
    np.testing.assert_array_equal(x["musicnn"].numpy(), expected)
    assert enc.out_dim == 400 + 32
    tags = build_encoder(EncoderConfig("musicnn", options={"layer": "tags", "models": ["MSD_musicnn"],
                                                           "descriptors": False}))
    assert tags.out_dim == 50
    np.testing.assert_array_equal(tags.prepare(row)["musicnn"].numpy(), np.float32(row["tag_probs"]["msd"]))
    out = tags(tags.collate([tags.prepare(row)]))
    assert out.shape == (1, 50)


def test_a_row_without_embeddings_is_tagged_from_its_own_audio(demo_data):
    """The fallback is the same tagger on the clip's decoded audio: its patches sit on the clip's own
    grid, not the song's, and the audio went through the codec, so the vectors are not equal; each
    is nearer its own clip's stored vector than any other clip's."""
    enc = build_encoder(EncoderConfig("musicnn", options={"descriptors": False}))
    rows = _rows(demo_data, "train")[::3][:8]
    stored = np.stack([enc.prepare(r)["musicnn"].numpy() for r in rows])
    tagged = np.stack([enc.prepare({**r, "tag_embeddings": None})["musicnn"].numpy() for r in rows])
    assert np.isfinite(tagged).all() and not np.array_equal(tagged, stored)
    z = lambda a: (a - stored.mean(0)) / (stored.std(0) + 1e-6)  # noqa: E731
    a, b = z(stored), z(tagged)
    cos = (b @ a.T) / np.linalg.norm(b, axis=1)[:, None] / np.linalg.norm(a, axis=1)[None, :]
    assert (cos.argmax(axis=1) == np.arange(len(rows))).all(), np.round(cos, 2)


def test_bad_options_are_named():
    for options, match in (({"layer": "logits"}, "layer must be one of"), ({"models": ["VGG"]}, "models must be"),
                           ({"n_mels": 96}, "unknown options")):
        with pytest.raises(ValueError, match=match):
            build_encoder(EncoderConfig("musicnn", options=options))


def test_mmva_trains_on_the_musicnn_features(demo_data, tmp_path):
    result = train.run(["--config", "tiny", "--data", str(demo_data), "--output_dir", str(tmp_path / "out"),
                        "--set", MUSICNN, "--set", "train.steps=10", "--cache_dir", str(tmp_path / "features"),
                        "--no_progress"])
    assert result.step == 10 and result.best_step is not None
    assert "name: musicnn" in (result.output_dir / "best" / "config.yaml").read_text()
    scores = [v for v in result.validation.values() if isinstance(v, float)]
    assert scores and all(np.isfinite(scores))
