"""The ORIGINAL musicnn (TensorFlow) timed on bench_tagger's patches, for the port's comparison. Not
collected by ``make bench``: TensorFlow is not a project dependency. Run it in the throwaway
environment that ``tests/captioner/make_musicnn_reference.py`` describes::

    TF_USE_LEGACY_KERAS=1 /tmp/tfenv/bin/python -m tests.benchmarks.tagger_tensorflow_speed

It builds musicnn's own graph (``musicnn.models.define_model``, weights from the wheel) in a
session with one intra-op and one inter-op thread, and times it on the 15 patches of
bench_tagger's 45 s song (spectrogram by the extractor's librosa call, float32), fed one patch per
``session.run`` (as ``musicnn.extractor`` does: ``BATCH_SIZE = 1``) and all 15 at once. Writes
``runs/bench/tagger_tensorflow.json``, which bench_tagger then prints beside the port's figures.
"""
from __future__ import annotations

import os
import statistics
import time

import librosa
import numpy as np
import soxr
import tensorflow as tf
from musicnn import extractor  # noqa: F401  (disables eager execution, as musicnn's graph needs)
from musicnn import models

from tests import audiogen as g
from tests.benchmarks.records import machine, write_record

SONG_S, SONG_SR = 45.0, 44100  # bench_tagger's song
MODELS = ("MTT_musicnn", "MSD_musicnn")
REPEATS = 7


def _patches() -> np.ndarray:
    y = soxr.resample(g.music_like_song(SONG_S, SONG_SR), SONG_SR, 16000, quality="HQ")
    mel = librosa.feature.melspectrogram(y=y, sr=16000, hop_length=256, n_fft=512, n_mels=96).T
    spec = np.log10(10000 * mel + 1)
    return np.stack([spec[s:s + 187] for s in range(0, len(spec) - 186, 187)]).astype(np.float32)


def _time(run, n_patches: int) -> dict:
    run()  # warm-up
    cpu, wall = [], []
    for _ in range(REPEATS):
        c0, w0 = time.process_time(), time.perf_counter()
        run()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return {"cpu_seconds": cpu, "wall_seconds": wall,
            "cpu_ms_per_patch": 1e3 * statistics.median(cpu) / n_patches,
            "wall_ms_per_patch": 1e3 * statistics.median(wall) / n_patches}


def _time_model(name: str, patches: np.ndarray) -> dict:
    tf.compat.v1.reset_default_graph()
    x = tf.compat.v1.placeholder(tf.float32, [None, 187, 96])
    is_training = tf.compat.v1.placeholder(tf.bool)
    probs = tf.nn.sigmoid(models.define_model(x, is_training, name, 50)[0])
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)
    out = {}
    with tf.compat.v1.Session(config=config) as sess:
        tf.compat.v1.train.Saver().restore(sess, os.path.join(os.path.dirname(models.__file__), name) + "/")
        for batch in (1, len(patches)):
            def run():
                for s in range(0, len(patches), batch):
                    sess.run(probs, {x: patches[s:s + batch], is_training: False})
            out[f"batch_{batch}"] = _time(run, len(patches))
    return out


def main() -> None:
    patches = _patches()
    record = {"benchmark": "tagger_tensorflow", "song_seconds": SONG_S, "patches": len(patches),
              "threads": 1, "repeats": REPEATS, "models": {m: _time_model(m, patches) for m in MODELS},
              "machine": machine(tensorflow=tf.__version__, numpy=np.__version__),
              "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    path = write_record("tagger_tensorflow.json", record)
    for name, runs in record["models"].items():
        print(name, "; ".join(f"{k}: {v['cpu_ms_per_patch']:.1f} ms CPU, {v['wall_ms_per_patch']:.1f} ms wall per patch"
                              for k, v in runs.items()))
    print(f"-> {path}")


if __name__ == "__main__":
    main()
