"""Make ``musicnn_reference.json``: the ORIGINAL musicnn's outputs on ``musicnn_inputs``. Not a test.

Run once, outside the project, in a throwaway environment that has TensorFlow (the project does
not depend on it); the tests only read the numbers it wrote. How the committed file was made::

    python3.11 -m venv /tmp/tfenv
    /tmp/tfenv/bin/python -m pip install "tensorflow==2.21.*" tf_keras "librosa==0.11.*" soundfile soxr
    /tmp/tfenv/bin/python -m pip install --no-deps musicnn==0.1.0
    cd /work/main && TF_USE_LEGACY_KERAS=1 /tmp/tfenv/bin/python -m tests.captioner.make_musicnn_reference

(TensorFlow 2.21.0, tf_keras, librosa 0.11.0, numpy 2.4.6, CPU.) What it records, per model:

- ``random``: probabilities and penultimate features of ``random_patches()`` fed straight into
  musicnn's own graph (``musicnn.models.define_model``, weights restored by ``tf.train.Saver``
  from the wheel's checkpoint, ``is_training=False``);
- ``signals``: probabilities of the first patch of each of ``signals()``, its spectrogram made by
  the extractor's librosa call and compression kept in float32 (no float16 cast);
- ``extractor``: ``musicnn.extractor.extractor(wav, model, input_length=3, extract_features=False)``
  as shipped (float16 cast included) on ``quiet_song()`` written as a 16 kHz float WAV, and
  ``extractor_float32``: the same patches with the cast left out, fed to the same graph;
- ``max_mel``: the largest mel value of each signal, to show float16 did not overflow (< 6.55).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
import tensorflow as tf
from musicnn import extractor as mx  # disables eager execution, as the extractor needs
from musicnn import models

from tests.captioner import musicnn_inputs as inputs

OUT = Path(__file__).with_name("musicnn_reference.json")
MODELS = ("MTT_musicnn", "MSD_musicnn")


def run_graph(model: str, patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """musicnn's own graph on (n, 187, 96) patches: (sigmoid probabilities, penultimate)."""
    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, 187, 96])
        is_training = tf.compat.v1.placeholder(tf.bool)
        out = models.define_model(x, is_training, model, 50)
        probs = tf.nn.sigmoid(out[0])
    with tf.compat.v1.Session() as sess:
        tf.compat.v1.train.Saver().restore(sess, os.path.join(os.path.dirname(models.__file__), model) + "/")
        p, pen = sess.run([probs, out[-1]], feed_dict={x: patches, is_training: False})
    return p, pen


def float32_logmel(y: np.ndarray) -> tuple[np.ndarray, float]:
    """The extractor's spectrogram without its float16 cast."""
    mel = librosa.feature.melspectrogram(y=y, sr=16000, hop_length=256, n_fft=512, n_mels=96).T
    return np.log10(10000 * mel + 1), float(mel.max())


def main() -> None:
    ref = {"tensorflow": tf.__version__, "librosa": librosa.__version__, "numpy": np.__version__,
           "max_mel": {}, "models": {}}
    sig_patches = []
    for name, y in inputs.signals().items():
        spec, ref["max_mel"][name] = float32_logmel(y)
        sig_patches.append(spec[:187])
    song = inputs.quiet_song()
    song_spec, ref["max_mel"]["quiet_song"] = float32_logmel(song)
    n = (len(song_spec) - 187) // 187 + 1
    song_patches = np.stack([song_spec[i * 187:(i + 1) * 187] for i in range(n)])
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "quiet_song.wav")
        sf.write(wav, song, 16000, subtype="FLOAT")
        for model in MODELS:
            p, pen = run_graph(model, inputs.random_patches())
            taggram, _ = mx.extractor(wav, model=model, input_length=3, extract_features=False)
            ref["models"][model] = {
                "random": p.tolist(), "random_penultimate": pen.tolist(),
                "signals": run_graph(model, np.stack(sig_patches))[0].tolist(),
                "extractor": np.asarray(taggram).tolist(),
                "extractor_float32": run_graph(model, song_patches)[0].tolist(),
            }
    OUT.write_text(json.dumps(ref, indent=1) + "\n")
    print(f"wrote {OUT}; max mel {ref['max_mel']}")


if __name__ == "__main__":
    main()
