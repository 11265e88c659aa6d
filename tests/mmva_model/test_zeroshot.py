"""Zero-shot commands end to end: text2music, image2music (with a tiny MusicGen), video, and the
music library (dataset tables and audio folders, with its cache), on the demo pipeline run,
generated audio, images and videos, and tiny random-initialised checkpoints."""
from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from dataset_card.schema import DESCRIPTOR_FIELDS
from mmva_model.checkpoint import load_checkpoint, save_checkpoint
from mmva_model.config import load_config
from mmva_model.model import MMVA
from mmva_model.zeroshot import load_library, summarise_video, text2music
from mmva_model.zeroshot.__main__ import main
from mmva_model.zeroshot.library import LibraryOptions
from mmva_model.zeroshot.predict import encode_rows
from mmva_model.zeroshot.prompts import QUADRANTS, build_prompt
from pipeline import audio as pipeline_audio
from pipeline import descriptors as pipeline_descriptors
from tests.audiogen import C_MAJOR_PROGRESSION, click_track, progression

TEXT = "a calm, warm piano piece"


def make_checkpoint(path: Path, seed: int = 0, spread: float = 25.0,
                    constant_va: tuple[float, float] | None = None) -> Path:
    """An untrained tiny MMVA. ``spread`` scales the VA head's last layer so predictions spread
    over [0, 1] instead of sitting at 0.5; ``constant_va`` makes every prediction that VA."""
    torch.manual_seed(seed)
    model = MMVA(load_config("tiny"))
    last = model.va_heads[0].mlp[-1]
    with torch.no_grad():
        last.weight.mul_(spread)
        if constant_va is not None:
            last.weight.zero_()
            last.bias.copy_(torch.logit(torch.tensor(constant_va)))
    return save_checkpoint(model, path)


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def cli_json(capsys, *argv: str) -> dict:
    code, out, err = cli(capsys, *argv, "--json", "--quiet")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("zs-ckpt") / "ckpt")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("zs-cache")


@pytest.fixture(scope="module")
def demo_library(demo_data, ckpt, cache):
    """The demo run's music as the checkpoint sees it (embedded once; commands then hit the cache)."""
    return load_library(demo_data, load_checkpoint(ckpt).model, cache_dir=cache)


def brute_force_order(ids: list[str], va: np.ndarray, query: tuple[float, float]) -> list[str]:
    dist = {i: round(math.hypot(float(v) - query[0], float(a) - query[1]), 12) for i, (v, a) in zip(ids, va)}
    return sorted(ids, key=lambda i: (dist[i], i))


# -- text2music --------------------------------------------------------------------------------

def test_text2music_ranks_the_whole_library_by_va_distance_exactly(capsys, demo_data, ckpt, cache, demo_library):
    n = len(demo_library)
    doc = cli_json(capsys, "text2music", TEXT, "--checkpoint", ckpt, "--library", demo_data,
                   "--cache_dir", cache, "-k", n)
    assert doc["task"] == "text2music" and doc["by"] == "va" and doc["library"]["from_cache"]
    va, _ = encode_rows(load_checkpoint(ckpt).model, "caption", [{"caption": TEXT}])
    assert (doc["valence"], doc["arousal"]) == (float(va[0, 0]), float(va[0, 1]))  # the text's own VA
    got = [m["clip_id"] for m in doc["matches"]]
    assert got == brute_force_order(demo_library.ids, demo_library.va, (doc["valence"], doc["arousal"]))
    assert len(set(np.round(demo_library.va[:, 0], 3))) > 5  # the ranking is not decided by ties alone
    row = demo_library.index(got[0])
    first = doc["matches"][0]
    assert first["caption"] == demo_library.captions[row] and first["valence"] == float(demo_library.va[row, 0])
    assert first["annotated_valence"] == pytest.approx(float(demo_library.annotated_va[row, 0]))


def test_text2music_by_embedding_and_table_output(capsys, demo_data, ckpt, cache, demo_library):
    model = load_checkpoint(ckpt).model
    result = text2music(model, TEXT, demo_library, k=5, by="embedding")
    _, emb = encode_rows(model, "caption", [{"caption": TEXT}])
    cos = demo_library.embedding.astype(np.float64) @ emb[0].astype(np.float64)
    expected = sorted(range(len(cos)), key=lambda i: (-cos[i], demo_library.ids[i]))[:5]
    assert [m.clip_id for m in result.matches] == [demo_library.ids[i] for i in expected]

    code, out, err = cli(capsys, "text2music", TEXT, "--checkpoint", ckpt, "--library", demo_data,
                         "--cache_dir", cache, "-k", "3", "--quiet")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"text: {TEXT!r}" and "from cache" in lines[2]
    header = lines.index(next(line for line in lines if line.startswith("rank")))
    assert header == 4
    assert lines[header].split() == ["rank", "clip_id", "valence", "arousal", "va_dist", "cosine", "caption"]
    top3 = [m.clip_id for m in text2music(model, TEXT, demo_library, k=3).matches]
    assert [line.split()[1] for line in lines[header + 1:]] == top3


def test_user_errors_exit_2_without_traceback(capsys, demo_data, ckpt, tmp_path):
    cases = [
        (["text2music", TEXT, "--checkpoint", tmp_path / "none", "--library", demo_data], "no MMVA checkpoint"),
        (["text2music", TEXT, "--checkpoint", ckpt, "--library", tmp_path / "nolib"], "no music library"),
        (["text2music", "  ", "--checkpoint", ckpt, "--library", demo_data], "text is empty"),
        (["image2music", tmp_path / "missing.png", "--checkpoint", ckpt, "--library", demo_data], "no such image"),
    ]
    for argv, message in cases:
        code, out, err = cli(capsys, *argv, "--quiet", "--cache_dir", tmp_path / "cache")
        assert code == 2 and out == ""
        assert err.startswith("error: ") and message in err and "Traceback" not in err


# -- library and its cache ---------------------------------------------------------------------

def test_library_cache_is_reused_not_recomputed(demo_data, ckpt, cache, demo_library, monkeypatch, tmp_path):
    assert Path(demo_library.cache_path).is_file()
    model = load_checkpoint(ckpt).model

    def no_embedding(row):
        raise AssertionError("the cached library was embedded again")

    monkeypatch.setattr(model.encoder("music"), "prepare", no_embedding)
    again = load_library(demo_data, model, cache_dir=cache)
    assert again.from_cache and again.cache_path == demo_library.cache_path
    assert again.ids == demo_library.ids and np.array_equal(again.va, demo_library.va)
    assert np.array_equal(again.embedding, demo_library.embedding) and again.descriptors == demo_library.descriptors
    monkeypatch.undo()
    other = load_checkpoint(make_checkpoint(tmp_path / "other", seed=1)).model
    fresh = load_library(demo_data, other, cache_dir=cache)  # another model: another cache entry
    assert not fresh.from_cache and fresh.cache_path != demo_library.cache_path


@pytest.fixture
def audio_folder(tmp_path) -> Path:
    root = tmp_path / "music"
    (root / "sub").mkdir(parents=True)
    sr = 22050
    sf.write(root / "chords.wav", progression(C_MAJOR_PROGRESSION, 2.25, sr), sr)  # 9 s -> clips 0-4, 4-8
    sf.write(root / "sub" / "clicks.flac", click_track(120.0, 5.0, sr), sr)  # 5 s -> clip 0-4
    sf.write(root / "short.ogg", progression(C_MAJOR_PROGRESSION, 0.5, sr), sr)  # 2 s -> one short clip
    (root / "broken.mp3").write_bytes(b"this is not audio at all" * 10)
    (root / "notes.txt").write_text("not music")
    return root


def test_audio_folder_library_clips_descriptors_failures_and_cache(audio_folder, ckpt, tmp_path, monkeypatch):
    model = load_checkpoint(ckpt).model
    opts = LibraryOptions(clip_seconds=4.0)
    lib = load_library(audio_folder, model, options=opts, cache_dir=tmp_path / "cache")
    assert lib.kind == "folder" and not lib.from_cache
    assert lib.ids == ["chords.wav#0", "chords.wav#1", "short.ogg#0", "sub/clicks.flac#0"]
    assert [(f.item, f.error_type) for f in lib.failures] == [("broken.mp3", "undecodable")]
    assert lib.ignored == ["notes.txt"] and lib.info().failed == 1 and lib.info().ignored == 1
    assert lib.origins[1] == {"kind": "file", "path": "chords.wav", "start_s": 4.0, "end_s": 8.0}
    assert lib.origins[2]["end_s"] == pytest.approx(2.0)
    # descriptors are the pipeline's own, measured on the clip's window of the whole file
    x = pipeline_audio.decode(audio_folder / "chords.wav", 22050)
    want = pipeline_descriptors.clip_descriptors(pipeline_descriptors.analyze(x, 22050), 4.0, 8.0)
    assert lib.descriptors[1] == want and set(lib.descriptors[3]) == set(DESCRIPTOR_FIELDS)
    assert lib.descriptors[3]["tempo_bpm"] == pytest.approx(120.0, abs=2.0)
    assert lib.va.shape == (4, 2) and np.isnan(lib.annotated_va).all() and lib.captions == [""] * 4
    assert lib.audio(2, 8000).shape == (16000,)

    monkeypatch.setattr(model.encoder("music"), "prepare", lambda row: pytest.fail("re-embedded"))
    cached = load_library(audio_folder, model, options=opts, cache_dir=tmp_path / "cache")
    assert cached.from_cache and cached.ids == lib.ids and np.array_equal(cached.va, lib.va)
    assert cached.failures == lib.failures and cached.ignored == lib.ignored
    monkeypatch.undo()
    sf.write(audio_folder / "short.ogg", progression(C_MAJOR_PROGRESSION, 2.0, 22050), 22050)  # now 8 s
    changed = load_library(audio_folder, model, options=opts, cache_dir=tmp_path / "cache")
    assert not changed.from_cache and changed.ids[2:4] == ["short.ogg#0", "short.ogg#1"]


def test_an_audio_folder_is_tagged_once_per_file_for_the_musicnn_encoder(audio_folder, tmp_path, monkeypatch):
    """The musicnn encoder reads tag_embeddings from rows; a folder's rows get them as the pipeline's
    do (the file tagged once, a clip the mean of the patches centred in it), not per clip."""
    from pipeline.tagging import tag_song

    model = MMVA(load_config("tiny", ["model.music={name: musicnn, frozen: true}"])).eval()
    encoder, rows = model.encoder("music"), []
    prepare = encoder.prepare
    monkeypatch.setattr(encoder, "prepare", lambda row: rows.append(row) or prepare(row))
    monkeypatch.setattr(encoder, "tag_audio", lambda cell: pytest.fail("a clip tagged on its own"))
    lib = load_library(audio_folder, model, options=LibraryOptions(clip_seconds=4.0), cache_dir=tmp_path / "cache")
    assert lib.ids[:2] == ["chords.wav#0", "chords.wav#1"] and len(rows) == len(lib.ids)
    song = tag_song(pipeline_audio.decode(audio_folder / "chords.wav", 22050), 22050, encoder.models)
    for row, (start, end) in zip(rows[:2], [(0.0, 4.0), (4.0, 8.0)]):
        for model_name, key in (("MTT_musicnn", "mtt"), ("MSD_musicnn", "msd")):
            np.testing.assert_array_equal(np.float32(row["tag_embeddings"][key]),
                                          song.clip_embeddings(start, end)[model_name])
            np.testing.assert_array_equal(np.float32(row["tag_probs"][key]), song.clip(start, end)[model_name])


def test_text2music_on_an_audio_folder_lists_its_failures(capsys, audio_folder, ckpt, tmp_path):
    code, out, _ = cli(capsys, "text2music", TEXT, "--checkpoint", ckpt, "--library", audio_folder,
                       "--clip_seconds", "4", "--cache_dir", tmp_path / "cache", "--quiet", "-k", "2")
    assert code == 0
    assert "(folder, 4 clips, 1 failed, 1 ignored; embedded now" in out
    assert "failed: broken.mp3 (undecodable: " in out


# -- image2music -------------------------------------------------------------------------------

def write_image(path: Path, colour: tuple[int, int, int]) -> Path:
    rng = np.random.default_rng(sum(colour))
    pixels = np.clip(np.asarray(colour) + rng.integers(-20, 20, (40, 56, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def images(tmp_path) -> list[Path]:
    return [write_image(tmp_path / f"img{i}.png", c)
            for i, c in enumerate([(230, 40, 30), (20, 30, 200), (250, 240, 60), (10, 10, 10)])]


def test_image2music_prompts_follow_the_image_quadrant(capsys, demo_data, images, tmp_path):
    prompts = {}
    for key in QUADRANTS:
        va = (0.85 if key[0] else 0.15, 0.8 if key[1] else 0.2)
        ck = make_checkpoint(tmp_path / f"q{key}", constant_va=va)  # every image reads as this VA
        doc = cli_json(capsys, "image2music", images[0], "--checkpoint", ck, "--library", demo_data,
                       "--cache_dir", tmp_path / "cache", "-k", "3")
        r = doc["results"][0]
        assert (r["valence"], r["arousal"]) == pytest.approx(va, abs=1e-4)
        assert r["prompt"]["quadrant"] == QUADRANTS[key].name
        assert r["prompt"]["text"].startswith(", ".join(QUADRANTS[key].moods).capitalize())
        prompts[key] = r["prompt"]["text"]
    assert len(set(prompts.values())) == 4


def test_image2music_results_prompts_and_failures(capsys, demo_data, ckpt, cache, demo_library, images, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    doc = cli_json(capsys, "image2music", *images, bad, "--checkpoint", ckpt, "--library", demo_data,
                   "--cache_dir", cache, "-k", "4", "--prompt_neighbours", "3")
    assert doc["failed"] == 1 and len(doc["results"]) == 5
    assert doc["results"][4]["error"].startswith("undecodable image") and doc["results"][4]["prompt"] is None
    vas = set()
    for r in doc["results"][:4]:
        assert [m["clip_id"] for m in r["matches"]] == brute_force_order(
            demo_library.ids, demo_library.va, (r["valence"], r["arousal"]))[:4]
        near = [{"clip_id": m["clip_id"], "caption": m["caption"],
                 "descriptors": demo_library.descriptors[demo_library.index(m["clip_id"])]} for m in r["matches"][:3]]
        assert r["prompt"]["text"] == build_prompt(r["valence"], r["arousal"], near).text
        assert r["prompt"]["neighbours"] == [m["clip_id"] for m in r["matches"][:3]]
        vas.add((round(r["valence"], 4), round(r["arousal"], 4)))
    assert len(vas) == 4  # different images, different predictions
    code, out, _ = cli(capsys, "image2music", bad, "--checkpoint", ckpt, "--library", demo_data,
                       "--cache_dir", cache, "--quiet")
    assert code == 1 and "FAILED: undecodable image" in out and "1 images, 1 failed" in out


def tiny_musicgen(folder: Path) -> Path:
    """A random-initialised MusicGen (T5 text encoder, EnCodec, decoder) with its processor, built offline."""
    from transformers import (EncodecConfig, EncodecFeatureExtractor, MusicgenConfig, MusicgenDecoderConfig,
                              MusicgenForConditionalGeneration, MusicgenProcessor, T5Config, T5Tokenizer)

    words = ["calm", "warm", "peaceful", "music", "featuring", "piano", "tempo", "joyful", "sad", "tense", "and"]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(f"\u2581{w}", -2.0) for w in words]
    vocab += [(c, -5.0) for c in "abcdefghijklmnopqrstuvwxyz0123456789,.-\u2581"]
    tokenizer = T5Tokenizer(vocab=vocab, extra_ids=0)
    audio = EncodecConfig(target_bandwidths=[5.0], sampling_rate=8000, audio_channels=1, num_filters=4,
                          hidden_size=16, upsampling_ratios=[4, 4], codebook_size=32, codebook_dim=16,
                          num_lstm_layers=1)  # 500 frames/s, 2 codebooks
    decoder = MusicgenDecoderConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                    ffn_dim=32, num_codebooks=audio.num_quantizers, max_position_embeddings=512,
                                    pad_token_id=32, bos_token_id=32)
    text = T5Config(vocab_size=len(tokenizer), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2)
    config = MusicgenConfig(text_encoder=text.to_dict(), audio_encoder=audio.to_dict(), decoder=decoder.to_dict())
    config.pad_token_id = config.decoder_start_token_id = 32
    torch.manual_seed(0)
    MusicgenForConditionalGeneration(config).save_pretrained(folder)
    MusicgenProcessor(EncodecFeatureExtractor(feature_size=1, sampling_rate=8000), tokenizer).save_pretrained(folder)
    return folder


def test_image2music_generate_writes_musicgen_audio(capsys, demo_data, ckpt, cache, images, tmp_path):
    gen = tiny_musicgen(tmp_path / "musicgen")
    argv = ["image2music", *images[:2], "--checkpoint", ckpt, "--library", demo_data, "--cache_dir", cache,
            "--generate", "--seconds", "0.2", "--seed", "3"]
    doc = cli_json(capsys, *argv, "--musicgen_model", gen, "--out_dir", tmp_path / "out")
    assert doc["musicgen_model"] == str(gen)
    paths = [Path(r["audio_path"]) for r in doc["results"]]
    assert [p.name for p in paths] == ["000-img0.wav", "001-img1.wav"]
    for p in paths:
        info = sf.info(p)
        assert info.samplerate == 8000 and info.channels == 1 and 0.1 < info.duration < 0.4
    again = cli_json(capsys, *argv, "--musicgen_model", gen, "--out_dir", tmp_path / "out2")
    assert [Path(r["audio_path"]).read_bytes() for r in again["results"]] == [p.read_bytes() for p in paths]  # seeded

    code, _, err = cli(capsys, *argv, "--musicgen_model", tmp_path / "no-such-model", "--quiet")
    assert code == 2 and "no MusicGen folder" in err and "--musicgen_model" in err


# -- video -------------------------------------------------------------------------------------

COLOURS = [(230, 30, 30), (20, 20, 220), (240, 230, 40), (5, 5, 5), (30, 200, 60), (250, 250, 250)]


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """12 s, 10 fps, 64x48: six 2 s blocks of one colour each, with a 440 Hz sine soundtrack."""
    path = tmp_path_factory.mktemp("zs-video") / "blocks.mp4"
    fps, (w, h) = 10, (64, 48)
    frames = np.concatenate([np.broadcast_to(np.array(c, np.uint8), (2 * fps, h, w, 3)) for c in COLOURS])
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                    "-s", f"{w}x{h}", "-r", str(fps), "-i", "-", "-f", "lavfi", "-i", "sine=frequency=440:duration=12",
                    "-shortest", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)],
                   input=frames.tobytes(), check=True)
    return path


def probe(path: Path) -> dict[str, float]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,duration", "-of", "json",
                          str(path)], capture_output=True, check=True).stdout
    return {s["codec_type"]: float(s["duration"]) for s in json.loads(out)["streams"]}


def expected_selection(doc: dict, score) -> list[int]:
    """The greedy selection recomputed from the per-frame VA the command reported."""
    va = np.asarray(doc["frame_va"])
    segs = doc["segments"]
    scores = [score(va[s["first_frame"]:s["first_frame"] + s["n_frames"]].mean(axis=0)) for s in segs]
    order = sorted(range(len(segs)), key=lambda i: (-scores[i], i))
    chosen, total = [], 0.0
    for i in order:
        length = segs[i]["end_s"] - segs[i]["start_s"]
        if total + length <= doc["budget_seconds"] + 1e-9:
            chosen.append(i)
            total += length
    return sorted(chosen)


def test_video_arousal_summary_follows_the_reported_trajectory(capsys, video, ckpt, tmp_path):
    doc = cli_json(capsys, "video", video, "--checkpoint", ckpt, "--fps", "2", "--segment_seconds", "2",
                   "--budget_seconds", "5", "--out_dir", tmp_path)
    assert doc["mode"] == "arousal" and len(doc["frame_va"]) == 24 and len(doc["segments"]) == 6
    va = np.asarray(doc["frame_va"])
    # each segment is one colour block: frames inside it agree, neighbouring blocks differ
    blocks = va.reshape(6, 4, 2)
    assert np.abs(blocks - blocks[:, :1]).max() < 2e-3
    assert np.abs(np.diff(blocks[:, 0], axis=0)).max(axis=1).min() > 5e-3
    assert doc["selected"] == expected_selection(doc, lambda m: m[1]) and len(doc["selected"]) == 2
    assert doc["summary_seconds"] == pytest.approx(4.0) and doc["summary_seconds"] <= doc["budget_seconds"]
    assert [s["selected"] for s in doc["segments"]] == [i in doc["selected"] for i in range(6)]
    best = int(np.argmax(blocks[:, :, 1].mean(axis=1)))
    assert best in doc["selected"]
    plot = Path(doc["plot_path"])
    assert plot == tmp_path / "blocks-va.png" and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_video_match_target_renders_the_summary_with_its_own_audio(capsys, video, ckpt, tmp_path):
    target = (0.3, 0.7)
    out = tmp_path / "summary.mp4"
    doc = cli_json(capsys, "video", video, "--checkpoint", ckpt, "--target_va", *map(str, target),
                   "--budget_seconds", "6", "--render", out, "--plot", tmp_path / "p.png")
    assert doc["mode"] == "match" and doc["target_va"] == list(target)
    assert doc["selected"] == expected_selection(doc, lambda m: -math.hypot(m[0] - target[0], m[1] - target[1]))
    assert doc["summary_seconds"] == pytest.approx(6.0) and doc["render_path"] == str(out)
    streams = probe(out)
    assert streams["video"] == pytest.approx(6.0, abs=0.15) and streams["audio"] == pytest.approx(6.0, abs=0.15)


def test_video_match_clip_with_soundtrack(capsys, video, demo_data, ckpt, cache, demo_library, tmp_path):
    clip = demo_library.ids[7]
    out = tmp_path / "with-music.mp4"
    result = summarise_video(ckpt, video, budget_seconds=3.0, segment_seconds=1.0, match_clip=clip,
                             library=demo_library, render=out, soundtrack=True)
    assert result.mode == "match" and result.soundtrack_clip == clip
    assert result.target_va == [float(x) for x in demo_library.va[7]]
    assert len(result.selected) == 3 and result.summary_seconds == pytest.approx(3.0)
    streams = probe(out)
    assert streams["video"] == pytest.approx(3.0, abs=0.15) and streams["audio"] == pytest.approx(3.0, abs=0.1)

    code, text, _ = cli(capsys, "video", video, "--checkpoint", ckpt, "--library", demo_data, "--cache_dir", cache,
                        "--match_clip", clip, "--budget_seconds", "4", "--plot", tmp_path / "p.png", "--quiet")
    assert code == 0 and f"from clip {clip})" in text and "trajectory plot:" in text


def test_video_user_errors(capsys, video, ckpt, tmp_path):
    base = ["video", video, "--checkpoint", ckpt, "--plot", tmp_path / "p.png", "--quiet"]
    cases = [
        (["--mode", "match"], "needs a target"),
        (["--mode", "arousal", "--target_va", "0.2", "0.3"], "takes no target"),
        (["--target_va", "0.2", "1.3"], "two numbers in [0, 1]"),
        (["--match_clip", "x-1"], "need a music library"),
        (["--soundtrack", "--library", "lib"], "add --render"),
        (["--budget_seconds", "1", "--render", tmp_path / "o.mp4"], "nothing to render"),
    ]
    for extra, message in cases:
        code, out, err = cli(capsys, *base, *extra)
        assert code == 2 and message in err and "Traceback" not in err, (extra, err)
    doc = cli_json(capsys, *base[:-1], "--budget_seconds", "1")
    assert doc["selected"] == [] and "fits a 1 s budget" in doc["notes"][0]
    code, _, err = cli(capsys, "video", tmp_path / "missing.mp4", "--checkpoint", ckpt, "--quiet")
    assert code == 2 and "no such video" in err
