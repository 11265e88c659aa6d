"""The demo source: determinism, VA curves, write-once files, and content that follows VA."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import librosa
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from pipeline.ids import split_of
from pipeline.sources.base import SONG_SOURCES
from pipeline.sources.demo import (
    ANNOTATION_START_S,
    CURVE_PERIOD_S,
    ENSEMBLES,
    KEY_NAMES,
    LICENSE,
    SYNTH_RATE,
    QUADRANT_ENSEMBLES,
    DemoSource,
    compose,
    compose_song,
    demo_song_plan,
    ensemble_for,
    render_audio,
    song_va_curve,
    split_targets,
    stratified_va,
    synthesize_image,
    synthesize_song,
    va_trajectory,
)
from pipeline.sources.demo_soundfont import render as render_notes

SR = 22050  # analysis rate of the audio checks (the synthesiser runs at any rate)


def _opts(tmp_path: Path, **kw) -> argparse.Namespace:
    base = dict(cache_dir=str(tmp_path), demo_songs=5, demo_song_seconds=8.0, demo_images=6,
                demo_image_size=48, seed=0)
    base.update(kw)
    return argparse.Namespace(**base)


def _path(uri: str) -> Path:
    parsed = urlparse(uri)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(uri)


def _constant(valence: float, arousal: float, pick: int = 0, seconds: float = 12.0,
              seed: int = 0) -> np.ndarray:
    """Audio rendered from a constant VA trajectory by ensemble ``pick`` of its VA quadrant."""
    t = np.arange(0.0, seconds + CURVE_PERIOD_S, CURVE_PERIOD_S)
    return render_audio(t, np.full(len(t), valence), np.full(len(t), arousal), seconds, SR,
                        np.random.default_rng(seed), ensemble_for(valence, arousal, pick).name)


def _features(y: np.ndarray, sr: int = SR) -> dict[str, float]:
    rms = librosa.feature.rms(y=y)[0]
    return {
        "rms_db": float(20 * np.log10(np.sqrt(np.mean(y.astype(np.float64) ** 2)))),
        "onset_rate": len(librosa.onset.onset_detect(y=y, sr=sr)) / (len(y) / sr),
        "log_centroid": float(np.log(np.sum(librosa.feature.spectral_centroid(y=y, sr=sr)[0] * rms)
                                     / np.sum(rms))),
    }


# Krumhansl-Kessler key profiles: major-minus-minor best correlation of a clip's mean chroma.
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def _mode_score(y: np.ndarray) -> float:
    c = librosa.feature.chroma_stft(y=y, sr=SR).mean(axis=1)
    best = lambda prof: max(np.corrcoef(c, np.roll(prof, k))[0, 1] for k in range(12))  # noqa: E731
    return best(_MAJOR) - best(_MINOR)


# ----------------------------------------------------------------------------- songs


def test_song_is_bit_identical_for_the_same_id_and_seed():
    y1, c1 = synthesize_song("demo001", 3, 8.0, SR)
    y2, c2 = synthesize_song("demo001", 3, 8.0, SR)
    assert y1.dtype == np.float32 and len(y1) == 8 * SR
    assert y1.tobytes() == y2.tobytes() and c1 == c2
    y3, c3 = synthesize_song("demo001", 4, 8.0, SR)
    y4, _ = synthesize_song("demo002", 3, 8.0, SR)
    assert not np.array_equal(y1, y3) and c1 != c3
    assert not np.array_equal(y1, y4)


def test_curve_is_2hz_from_annotation_start_and_in_unit_range():
    y, curve = synthesize_song("demo000", 0, 12.0, SR)
    assert curve.times_s[0] == ANNOTATION_START_S and curve.period_s == CURVE_PERIOD_S
    assert np.allclose(np.diff(curve.times_s), 0.5)
    assert curve.span[1] <= 12.0 and curve.span[1] > 12.0 - 0.5
    assert len(curve.valence) == len(curve.arousal) == len(curve.times_s) == 14
    for values in (curve.valence, curve.arousal):
        assert 0.0 <= min(values) and max(values) <= 1.0
    assert curve == song_va_curve("demo000", 0, 12.0)  # the cheap path gives the same curve
    assert song_va_curve("demo000", 0, 12.0, annotation_start_s=2.0).times_s[0] == 2.0
    with pytest.raises(ValueError, match="annotation start"):
        song_va_curve("demo000", 0, 5.2)


def test_va_varies_within_songs_and_songs_cover_the_four_quadrants():
    means = []
    for song in demo_song_plan(8):
        _, v, a = va_trajectory(song.song_id, 0, 30.0, song.quadrant)
        assert max(np.ptp(v), np.ptp(a)) > 0.1  # drift within the song
        assert np.abs(np.diff(v)).max() < 0.1 and np.abs(np.diff(a)).max() < 0.1  # smooth
        means.append((v.mean() > 0.5, a.mean() > 0.5))
    assert sorted(set(means)) == [(False, False), (False, True), (True, False), (True, True)]
    assert sorted(means).count((True, True)) == 2  # evenly: two songs per quadrant


def test_song_plan_gives_every_split_songs_of_opposite_quadrants():
    plan = demo_song_plan(8)
    assert [s.number for s in plan] == sorted(s.number for s in plan)
    assert all(split_of(s.song_id) == s.split for s in plan)
    by_split: dict[str, list[int]] = {}
    for song in plan:
        by_split.setdefault(song.split, []).append(song.quadrant)
    assert {k: len(v) for k, v in by_split.items()} == split_targets(8) == {
        "train": 4, "validation": 2, "test": 2}
    assert sorted(by_split["train"]) == [0, 1, 2, 3]
    for split in ("validation", "test"):  # quadrants q and 3 - q: both V and A differ
        q1, q2 = by_split[split]
        assert q1 ^ q2 == 3
    assert demo_song_plan(12)[:4] == plan[:4]  # a song's plan never changes with the count
    assert split_targets(2) == {"train": 2, "validation": 0, "test": 0}


# Each pick names one ensemble per quadrant, similar ones in the two quadrants of an arousal half
# (QUADRANT_ENSEMBLES): the VA relations must hold for each, not only on average.
PICKS = range(len(QUADRANT_ENSEMBLES[0]))


@pytest.mark.parametrize("pick", PICKS)
def test_audio_level_onsets_and_brightness_rise_with_arousal(pick):
    for valence in (0.2, 0.8):
        calm, mid, excited = (_features(_constant(valence, a, pick)) for a in (0.15, 0.5, 0.85))
        for key in ("rms_db", "onset_rate", "log_centroid"):
            assert calm[key] < mid[key] < excited[key], (valence, key, calm, mid, excited)
        assert excited["rms_db"] - calm["rms_db"] > 10.0
        assert excited["onset_rate"] > 3 * calm["onset_rate"]


@pytest.mark.parametrize("pick", PICKS)
def test_audio_tempo_rises_with_arousal(pick):
    slow = librosa.feature.tempo(y=_constant(0.5, 0.15, pick), sr=SR)[0]
    fast = librosa.feature.tempo(y=_constant(0.5, 0.85, pick), sr=SR)[0]
    assert fast > slow


@pytest.mark.parametrize("pick", PICKS)
def test_audio_mode_and_brightness_follow_valence(pick):
    for arousal in (0.2, 0.8):
        sad, happy = _constant(0.1, arousal, pick), _constant(0.9, arousal, pick)
        major, minor = _mode_score(happy), _mode_score(sad)
        assert minor < 0.0 < major and major - minor > 0.05
        assert _features(happy)["log_centroid"] > _features(sad)["log_centroid"] + 0.3


def test_songs_follow_their_own_curve_within_and_across_songs():
    rows = []
    for song in demo_song_plan(4):
        song_id = song.song_id
        y, _ = synthesize_song(song_id, 0, 20.0, SR, quadrant=song.quadrant, ensemble=song.ensemble)
        t, v, a = va_trajectory(song_id, 0, 20.0, song.quadrant)
        for start in np.arange(0.0, 16.01, 2.0):
            window = y[int(start * SR) : int((start + 4.0) * SR)]
            inside = (t >= start) & (t < start + 4.0)
            rows.append((a[inside].mean(), *_features(window).values()))
    arousal, rms_db, onset_rate, log_centroid = np.array(rows).T
    assert np.corrcoef(arousal, rms_db)[0, 1] > 0.9
    assert np.corrcoef(arousal, onset_rate)[0, 1] > 0.85
    assert np.corrcoef(arousal, log_centroid)[0, 1] > 0.6


def test_peaks_stay_below_one_with_a_fixed_level_mapping():
    loud, _ = synthesize_song("demo003", 0, 10.0, SR, quadrant=3)
    quiet, _ = synthesize_song("demo000", 0, 10.0, SR, quadrant=0)
    assert np.abs(loud).max() < 1.0 and np.abs(quiet).max() < 1.0
    assert _features(loud)["rms_db"] > _features(quiet)["rms_db"] + 6.0  # not normalised away
    for y in (loud, quiet):  # the song starts and ends without a click
        assert abs(float(y[0])) < 1e-3 and abs(float(y[-1])) < 1e-3


# ----------------------------------------------------------------------------- images


def test_image_is_deterministic_and_varies_with_seed():
    a = synthesize_image("demoimg0001", 0.3, 0.7, seed=0)
    b = synthesize_image("demoimg0001", 0.3, 0.7, seed=0)
    assert a.mode == "RGB" and a.size == (96, 96)
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != synthesize_image("demoimg0001", 0.3, 0.7, seed=1).tobytes()
    assert a.tobytes() != synthesize_image("demoimg0002", 0.3, 0.7, seed=0).tobytes()
    assert np.asarray(a).std() > 5  # not a flat colour


def test_image_colour_and_texture_follow_va():
    va = stratified_va(60, seed=0)
    images = [synthesize_image(f"demoimg{j:04d}", v, a, seed=0) for j, (v, a) in enumerate(va)]
    gray = np.stack([np.asarray(im.convert("L"), dtype=np.float64) for im in images])
    hsv = np.stack([np.asarray(im.convert("HSV"), dtype=np.float64) for im in images])
    brightness = gray.mean(axis=(1, 2))
    saturation = hsv[..., 1].mean(axis=(1, 2))
    texture = sum(np.abs(np.diff(gray, axis=ax)).mean(axis=(1, 2)) for ax in (1, 2))
    rgb = np.stack([np.asarray(im, dtype=np.float64) for im in images])
    warmth = (rgb[..., 0] - rgb[..., 2]).mean(axis=(1, 2))
    assert np.corrcoef(brightness, va[:, 0])[0, 1] > 0.7
    assert np.corrcoef(warmth, va[:, 0])[0, 1] > 0.7
    assert np.corrcoef(saturation, va[:, 1])[0, 1] > 0.7
    assert np.corrcoef(texture, va[:, 1])[0, 1] > 0.7


def test_image_va_is_stratified_uniform():
    va = stratified_va(60, seed=5)
    assert va.shape == (60, 2) and va.min() >= 0.0 and va.max() < 1.0
    for axis in range(2):
        assert np.array_equal(np.bincount((va[:, axis] * 10).astype(int), minlength=10), [6] * 10)
    assert abs(np.corrcoef(va.T)[0, 1]) < 0.5
    assert np.array_equal(va, stratified_va(60, seed=5))


# ----------------------------------------------------------------------------- the source


def test_demo_is_registered_and_reads_defaults_from_a_bare_namespace():
    assert SONG_SOURCES["demo"] is DemoSource
    src = DemoSource(argparse.Namespace())
    assert (src.n_songs, src.song_seconds, src.n_images, src.seed) == (8, 30.0, 120, 0)
    with pytest.raises(ValueError, match="demo_song_seconds"):
        DemoSource(argparse.Namespace(demo_song_seconds=5.0))


def test_items_write_songs_and_images_once(tmp_path):
    items = DemoSource(_opts(tmp_path)).items()
    assert [s.song_id for s in items.songs] == [p.song_id for p in demo_song_plan(5)]
    assert {split_of(s.song_id) for s in items.songs} == {"train", "validation", "test"}
    suffixes = set()
    for song in items.songs:
        assert song.source == "demo" and song.license == LICENSE and "GPL-2.0" in LICENSE
        assert song.uri.startswith("file://")
        path = _path(song.uri)
        assert path.is_file() and path.parent.name == "v2-seed0"
        suffixes.add(path.suffix)
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.frames) == (SYNTH_RATE, 1, 8 * SYNTH_RATE)
        if path.suffix in (".wav", ".flac"):
            assert info.subtype == "PCM_16"
        assert song.va_curve is not None and song.va_curve.times_s[0] == 5.0
    assert {".wav", ".flac"} <= suffixes
    manifest = json.loads((tmp_path / "demo-src" / "v2-seed0" / "songs.json").read_text())
    for entry, song, planned in zip(manifest["songs"], items.songs, demo_song_plan(5), strict=True):
        score = compose_song(song.song_id, 0, 8.0, planned.quadrant, planned.ensemble)
        assert entry["song_id"] == song.song_id and entry["file"] == _path(song.uri).name
        assert entry["instruments"] == list(planned.instruments) and entry["ensemble"] == planned.ensemble
        assert entry["key"] == score.key and entry["split"] == planned.split
        assert entry["tempo_bpm"][0] <= score.tempo_bpm(0.0, 8.0) <= entry["tempo_bpm"][1]
    assert len(items.images) == 6 and not items.failures and not items.pairs
    for image in items.images:
        path = Path(image.uri)
        assert image.source == "demo" and path.parent.name == "images"
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size == (48, 48)
        assert 0.0 <= image.valence <= 1.0 and 0.0 <= image.arousal <= 1.0

    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert not [p for p in files if p.name.endswith(".tmp")]
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    time.sleep(0.01)
    again = DemoSource(_opts(tmp_path)).items()  # a rerun reuses every file
    assert again == items
    assert {p: p.stat().st_mtime_ns for p in files} == mtimes
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == files


def test_images_cached_by_a_run_with_another_count_are_not_reused_under_new_labels(tmp_path):
    # Image j's VA depends on --demo_images; a cache from 6 images must not feed a 10-image run.
    DemoSource(_opts(tmp_path)).items()
    opts = _opts(tmp_path)
    opts.demo_images = 10
    for image in DemoSource(opts).items().images:
        with Image.open(image.uri) as im:
            expected = synthesize_image(image.image_id, image.valence, image.arousal, seed=0, size=48)
            assert im.convert("RGB").tobytes() == expected.tobytes()


def test_a_truncated_song_file_is_rewritten(tmp_path):
    items = DemoSource(_opts(tmp_path, demo_songs=1, demo_images=0)).items()
    path = _path(items.songs[0].uri)
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    DemoSource(_opts(tmp_path, demo_songs=1, demo_images=0)).items()
    assert path.read_bytes() == good


def test_same_seed_gives_the_same_files_and_another_seed_different_ones(tmp_path):
    first = DemoSource(_opts(tmp_path / "a")).items()
    second = DemoSource(_opts(tmp_path / "b")).items()
    other = DemoSource(_opts(tmp_path / "c", seed=1)).items()
    for x, y, z in zip(first.songs + first.images, second.songs + second.images,
                       other.songs + other.images):
        assert _path(x.uri).read_bytes() == _path(y.uri).read_bytes()
        assert _path(x.uri).read_bytes() != _path(z.uri).read_bytes()
        assert _path(z.uri).parent.name in ("v2-seed1", "images")
    assert [s.va_curve for s in first.songs] == [s.va_curve for s in second.songs]
    assert [s.va_curve for s in first.songs] != [s.va_curve for s in other.songs]


def test_mp3_song_decodes_to_the_synthesised_audio(tmp_path):
    if "MP3" not in sf.available_formats():
        pytest.skip("this libsndfile cannot write MP3")
    items = DemoSource(_opts(tmp_path, demo_images=0)).items()
    song = next(s for s in items.songs if s.uri.endswith(".mp3"))
    decoded, sr = sf.read(str(_path(song.uri)), dtype="float32")
    planned = {p.song_id: p for p in demo_song_plan(5)}[song.song_id]
    original, _ = synthesize_song(song.song_id, 0, 8.0, SYNTH_RATE, quadrant=planned.quadrant,
                                  ensemble=planned.ensemble)
    assert sr == SYNTH_RATE and len(decoded) == len(original)
    assert np.corrcoef(decoded, original)[0, 1] > 0.99  # aligned: no encoder delay left


# ----------------------------------------------------------------------------- instruments


def test_the_plan_names_each_songs_instruments_by_its_va_quadrant():
    plan = demo_song_plan(12)  # the pipeline's default demo
    assert all(p.ensemble in QUADRANT_ENSEMBLES[p.quadrant] for p in plan)
    assert all(p.instruments == ENSEMBLES[p.ensemble].instruments for p in plan)
    # What a tagger test checks: piano-only songs and songs with a drum kit, in every default run.
    assert {p.song_id for p in plan if p.instruments == ("piano",)} == {"demo000", "demo002", "demo037"}
    drums = {p.song_id for p in plan if "drums" in p.instruments}
    assert drums == {p.song_id for p in plan if p.quadrant >= 2}  # exactly the excited songs
    for quadrant, names in enumerate(QUADRANT_ENSEMBLES):
        for name in names:
            instruments = set(ENSEMBLES[name].instruments)
            calm_only = {"piano", "strings", "choir", "flute", "violin", "cello", "acoustic guitar"}
            if quadrant < 2:  # calm: no kit, no distortion, no synths
                assert instruments <= calm_only, name
            else:
                assert "drums" in instruments and instruments & {"distorted guitar", "synth lead",
                                                                   "electric guitar"}, name


def test_every_instrument_of_every_ensemble_sounds():
    # A program or bank the soundfont lacks renders silence, not an error: render each part alone.
    t = np.arange(0.0, 6.5, CURVE_PERIOD_S)
    for name, ensemble in ENSEMBLES.items():
        arousal = 0.8 if ensemble.drums else 0.3
        score = compose(t, np.full(len(t), 0.5), np.full(len(t), arousal), 6.0,
                        np.random.default_rng(0), name)
        parts = [inst for _, inst in ensemble.roles()]
        for k, (role, inst) in enumerate(ensemble.roles()):
            notes = [n for n in score.notes if n.part == k]
            assert notes, (name, role)
            y = render_notes(parts, notes, 6 * SR, SR)
            rms_db = 20 * np.log10(np.sqrt(np.mean(y.astype(np.float64) ** 2)) + 1e-12)
            assert rms_db > -45.0, (name, role, inst.name, rms_db)


def test_score_knows_the_tempo_key_and_mode_it_wrote():
    t = np.arange(0.0, 20.5, CURVE_PERIOD_S)
    for valence, arousal in ((0.05, 0.2), (0.95, 0.8)):
        score = compose(t, np.full(len(t), valence), np.full(len(t), arousal), 20.0,
                        np.random.default_rng(3))
        assert score.tempo_bpm(5.0, 15.0) == pytest.approx(60.0 + 110.0 * arousal)
        assert score.major_share(5.0, 15.0) == (0.0 if valence < 0.5 else 1.0)
        assert score.key == KEY_NAMES[score.tonic]
        assert all(c.end_s > c.start_s for c in score.chords)
        assert score.chords[0].degree == 0  # every progression starts on the tonic


def test_rendering_is_the_same_with_one_or_two_threads():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        one, _ = synthesize_song("demo001", 0, 6.0, SR)
    with threadpool_limits(limits=2):
        two, _ = synthesize_song("demo001", 0, 6.0, SR)
    assert one.tobytes() == two.tobytes()


def test_a_missing_soundfont_or_renderer_fails_naming_the_install(tmp_path, monkeypatch):
    import importlib.util
    import sys

    from pipeline.sources import demo_soundfont

    from pipeline.options import build_parser
    from pipeline.run import InputError, check_inputs

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(demo_soundfont.importlib.util, "find_spec",
                        lambda name, *a: None if name == "pretty_midi" else real_find_spec(name, *a))
    demo_soundfont.soundfont_bytes.cache_clear()
    try:
        with pytest.raises(demo_soundfont.SoundfontMissing, match="pip install --no-deps .*pretty-midi"):
            DemoSource(_opts(tmp_path, demo_songs=1, demo_images=0)).items()
        # The pipeline reports it as an unusable input: a message (main prints it), no traceback.
        opts = build_parser().parse_args(["--cache_dir", str(tmp_path / "run"), "--demo_songs", "1",
                                          "--demo_images", "0"])
        with pytest.raises(InputError, match="TimGM6mb.sf2, shipped by the pretty-midi wheel"):
            check_inputs(opts)
        monkeypatch.undo()
        monkeypatch.setitem(sys.modules, "tinysoundfont", None)  # an import of it fails
        with pytest.raises(demo_soundfont.SoundfontMissing, match="tinysoundfont==0.3.7"):
            demo_soundfont.check_installed()
    finally:
        demo_soundfont.soundfont_bytes.cache_clear()


def test_a_soundfont_with_other_bytes_is_refused(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from pipeline.sources import demo_soundfont

    (tmp_path / "TimGM6mb.sf2").write_bytes(b"RIFF not the pinned soundfont")
    monkeypatch.setattr(demo_soundfont.importlib.util, "find_spec",
                        lambda name, *a: SimpleNamespace(origin=str(tmp_path / "__init__.py")))
    demo_soundfont.soundfont_bytes.cache_clear()
    try:
        with pytest.raises(demo_soundfont.SoundfontMissing, match="not the pinned TimGM6mb"):
            demo_soundfont.soundfont_bytes()
    finally:
        demo_soundfont.soundfont_bytes.cache_clear()
