"""``python -m dataset_card explore``: what the page holds, where media go, and bad input."""
from __future__ import annotations

import base64
import gzip
import io
import html
import json
import re
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from dataset_card import schema
from dataset_card.__main__ import main
from dataset_card.build import build
from dataset_card.explore import ExploreError, explore
from dataset_card.explore import flags as F
from dataset_card.explore.media import PREVIEW_RATE
from tests.dataset_card.fakerun import make_rows, write_run

NASTY = "\"q'<b>&amp;\u00e9\u266b</script><script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">"


def page_json(page_html: str) -> str:
    """The Bokeh document embedded in the page (its data), HTML-unescaped."""
    blob = re.search(r'<script type="application/json" id="[^"]+">\s*(.*?)\s*</script>', page_html, re.S)
    return html.unescape(blob.group(1))


def page_data(page_html: str) -> dict[str, dict[str, list]]:
    """{source name: {column: values}} of the clip, image and pair sources embedded in the page."""
    found: dict[str, dict[str, list]] = {}

    def walk(node):
        if isinstance(node, dict):
            attrs = node.get("attributes") or {}
            if node.get("type") == "object" and attrs.get("name") in ("clips", "images", "pairs") and "data" in attrs:
                found[attrs["name"]] = {k: _values(v) for k, v in attrs["data"]["entries"]}
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(json.loads(page_json(page_html)))
    return found


def _values(v) -> list:
    if isinstance(v, dict) and v.get("type") == "ndarray":
        raw = v["array"]["data"] if isinstance(v["array"], dict) else v["array"]
        if isinstance(raw, list):
            return raw
        data = base64.b64decode(raw)
        data = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data  # Bokeh gzips larger arrays
        return np.frombuffer(data, dtype=v["dtype"]).tolist()
    return v


def test_explore_a_run_writes_a_page_and_references_media(run_dir, capsys):
    assert main(["explore", str(run_dir)]) == 0
    assert "8 clips, 4 images, 1 failures" in capsys.readouterr().out
    page = run_dir / "explore" / "index.html"
    text = page.read_text(encoding="utf-8")
    data = page_json(text)
    assert "ZkxhQw" not in data and "iVBORw0KGgo" not in data  # no FLAC or PNG bytes (base64) in the page
    audio = sorted((run_dir / "explore" / "media" / "audio").iterdir())
    images = sorted((run_dir / "explore" / "media" / "images").iterdir())
    # one preview per song (its two clips touch: [0, 1) and [1, 2) s), not one copy per clip
    assert len(audio) == 4 and all(p.suffix == ".ogg" and p.read_bytes()[28:36] == b"OpusHead" for p in audio)
    assert len(images) == 4 and all(p.suffix == ".png" for p in images)  # 8 px PNGs: shown as they are
    urls = dict(zip(page_data(text)["clips"]["clip_id"], page_data(text)["clips"]["audio_url"]))
    for n, song in enumerate(("s1", "s2", "s3", "s4")):
        first, second = urls[f"{song}-0"], urls[f"{song}-1"]
        assert first.endswith("#t=0.000,1.000") and second.endswith("#t=1.000,2.000")
        preview = run_dir / "explore" / first.split("#")[0]
        assert preview == run_dir / "explore" / second.split("#")[0] and preview in audio
        x, sr = sf.read(preview, dtype="float32")  # libsndfile decodes at the rate the preview was made at
        assert sr == PREVIEW_RATE and len(x) == 2 * sr  # the song's two clips, once each
        for window in (x[int(0.2 * sr):int(0.8 * sr)], x[int(1.2 * sr):int(1.8 * sr)]):
            assert peak_hz(window, sr) == pytest.approx(220.0 * (n + 1), abs=2.0)  # each clip's own tone
    assert not re.search(r"""<(script|link)[^>]+(src|href)=["']?https?:""", text)  # BokehJS is inline

    again = explore(run_dir)  # a second run reuses the previews
    assert (again.media.written, again.media.reused, again.media.removed) == (0, 8, 0)
    assert again.media.bytes < again.media.source_bytes


def peak_hz(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[int(np.argmax(spectrum))])


def media_files(folder) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in (folder / "media").rglob("*") if p.is_file()}


def test_sample_exports_only_the_sampled_media_and_keeps_their_pairs(run_dir, tmp_path):
    r = explore(run_dir, tmp_path / "export", sample=3, seed=1)
    assert (r.clips, r.images) == (3, 3)
    data = page_data(r.page.read_text(encoding="utf-8"))
    songs = {clip_id.rsplit("-", 1)[0] for clip_id in data["clips"]["clip_id"]}
    assert len(list((tmp_path / "export" / "media" / "audio").iterdir())) == len(songs)  # a preview per song
    assert len(list((tmp_path / "export" / "media" / "images").iterdir())) == 3
    assert "img0" in data["images"]["image_id"]  # every clip is paired with img0: it comes first
    assert len(data["pairs"]["score"]) == 3 and data["clips"]["pair_count"] == [1, 1, 1]
    before = media_files(tmp_path / "export")
    smaller = explore(run_dir, tmp_path / "export", sample=1, seed=1)
    after = media_files(tmp_path / "export")
    assert smaller.media.removed == len(before - after) > 0  # what the larger export had and this one lacks
    assert len(list((tmp_path / "export" / "media" / "audio").iterdir())) == 1


def test_no_media_page_plays_nothing_and_keeps_earlier_media(run_dir, capsys):
    explore(run_dir)
    assert main(["explore", str(run_dir), "--no-media"]) == 0
    text = (run_dir / "explore" / "index.html").read_text(encoding="utf-8")
    assert "--no-media" in text and 'id="player"' not in text
    assert page_data(text)["clips"]["audio_url"] == [""] * 8
    assert len(list((run_dir / "explore" / "media" / "audio").iterdir())) == 4


def test_previews_are_the_same_files_whatever_the_number_of_jobs(run_dir, tmp_path):
    one = explore(run_dir, tmp_path / "one", jobs=1)
    two = explore(run_dir, tmp_path / "two", jobs=2)
    files = {p.name: p.read_bytes() for p in (tmp_path / "one" / "media" / "audio").iterdir()}
    assert files == {p.name: p.read_bytes() for p in (tmp_path / "two" / "media" / "audio").iterdir()}
    assert one.media.urls == two.media.urls and (one.media.written, two.media.written) == (8, 8)


def test_a_preview_joins_overlapping_clips_without_a_seam(tmp_path):
    """Clips cut like the pipeline's (3 s every 1 s) from one 440 Hz tone: the preview is that tone,
    whole; a click or gap at a join would spread energy away from 440 Hz."""
    sr = 8000
    tone = (0.3 * np.sin(2 * np.pi * 440.0 * np.arange(12 * sr) / sr)).astype(np.float32)
    rows = make_rows()
    music = [r for r in rows[schema.MUSIC] if r["song_id"] == "s1"][:1]
    for k in range(10):
        buf = io.BytesIO()
        sf.write(buf, tone[k * sr:(k + 3) * sr], sr, format="FLAC")
        music.append({**music[0], "clip_id": f"s1-{k + 1}", "start_s": float(k), "end_s": float(k + 3),
                      "audio": {"bytes": buf.getvalue(), "path": f"s1-{k + 1}.flac"}})
    rows[schema.MUSIC] = music[1:]
    rows[schema.PAIRS] = []
    r = explore(write_run(tmp_path / "run", rows))
    files = list((r.page.parent / "media" / "audio").iterdir())
    assert len(files) == 1
    x, rate = sf.read(files[0], dtype="float32")
    assert len(x) == 12 * rate
    import soxr

    reference = soxr.resample(tone, sr, rate)  # Opus decodes sample-aligned (its pre-skip is trimmed)
    frame = rate // 100
    errors = [np.sqrt(np.mean((x[i:i + frame] - reference[i:i + frame]) ** 2))
              for i in range(frame, len(x) - 2 * frame, frame)]
    # Measured: at most 0.15 of the tone's RMS in any 10 ms frame (the codec's own error); a 2 ms
    # gap at each join reaches 0.5, a 10 ms one 0.9.
    assert max(errors) < 0.25 * 0.3 / np.sqrt(2)


def test_reading_media_holds_a_batch_not_the_shard(tmp_path):
    """A 128 MB shard (row groups of 16 MB) is streamed: Arrow holds about a row group's worth (26 MB
    measured); with pyarrow's default pre-buffering it kept every byte read until the reader closed."""
    from dataset_card.explore import media as M
    from dataset_card.tables import find_shards

    rng = np.random.default_rng(0)
    rows = make_rows()
    blob = rng.integers(0, 255, 512 << 10, dtype=np.uint8).tobytes()
    rows[schema.MUSIC] = [{**rows[schema.MUSIC][0], "clip_id": f"s1-{i:03d}", "split": "train",
                           "audio": {"bytes": blob[i:] + blob[:i], "path": "x.opus"}} for i in range(256)]
    run = write_run(tmp_path / "run", rows)
    shard = run / "data" / "music" / "train-00000-of-00001.parquet"
    pq.write_table(pq.read_table(shard), shard, row_group_size=32, compression="none", use_dictionary=False)
    music = [s for s in find_shards(run) if s.table == schema.MUSIC]
    peak, seen = 0, 0
    for _, value in M._media_values(music, "clip_id", "audio", {r["clip_id"] for r in rows[schema.MUSIC]}):
        seen += len(value["bytes"])
        peak = max(peak, pa.total_allocated_bytes())
    assert seen == 256 * (512 << 10) and peak < 48 << 20, peak


def test_clips_with_a_gap_get_separate_previews_and_a_bad_clip_is_counted(tmp_path):
    rows = make_rows()
    s1 = [r for r in rows[schema.MUSIC] if r["song_id"] == "s1"]
    s1[1]["start_s"], s1[1]["end_s"] = 5.0, 6.0  # 4 s after the first clip ends
    rows[schema.MUSIC][2]["audio"]["bytes"] = b"not audio"  # s2-0
    r = explore(write_run(tmp_path / "run", rows))
    urls = dict(zip(*(page_data(r.page.read_text(encoding="utf-8"))["clips"][k] for k in ("clip_id", "audio_url"))))
    assert urls["s1-0"].split("#")[0] != urls["s1-1"].split("#")[0]
    assert urls["s1-1"].endswith("#t=0.000,1.000") and urls["s2-0"] == "" and urls["s2-1"].endswith("#t=1.000,2.000")
    assert r.media.missing == {schema.MUSIC: 1}


def test_large_images_become_thumbnails(tmp_path):
    from PIL import Image

    rows = make_rows()
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (900, 1200, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=95)
    rows[schema.IMAGES][0]["image"] = {"bytes": buf.getvalue(), "path": "big.jpg"}
    r = explore(write_run(tmp_path / "run", rows))
    url = dict(zip(*(page_data(r.page.read_text(encoding="utf-8"))["images"][k] for k in ("image_id", "image_url"))))
    thumb = r.page.parent / url["img0"]
    with Image.open(thumb) as im:
        assert im.format == "JPEG" and max(im.size) == 240 and im.size[0] / im.size[1] == pytest.approx(4 / 3, abs=0.01)
    assert thumb.stat().st_size < len(buf.getvalue()) / 10


def test_dataset_folder_page_goes_next_to_it_never_inside(built, tmp_path):
    _, result = built
    r = explore(result.out_dir)
    assert r.page == result.out_dir.with_name(result.out_dir.name + "-explore") / "index.html"
    with pytest.raises(ExploreError, match="publish"):
        explore(result.out_dir, result.out_dir / "page")


def test_metadata_only_dataset_says_so_and_has_no_players(run_dir, tmp_path):
    hub = build(run_dir, tmp_path / "hub", metadata_only=True).out_dir
    r = explore(hub, tmp_path / "page")
    text = r.page.read_text(encoding="utf-8")
    assert "metadata-only" in text and 'id="no-audio"' in text
    assert 'id="player"' not in text and "&lt;audio controls" not in text
    assert not (tmp_path / "page" / "media" / "audio").exists()
    assert (r.clips, r.media.bytes) == (8, 0)


def test_run_with_failures_only(tmp_path):
    root = tmp_path / "run"
    (root / "failures").mkdir(parents=True)
    fails = [{"item_id": f"song{i}", "kind": "song", "stage": "download", "error_type": "http_404",
              "message": "not found", "attempts": 3} for i in range(5)]
    pq.write_table(pa.Table.from_pylist(fails, schema=schema.FAILURE_SCHEMA), root / "failures" / "failures.parquet")
    (root / "run.json").write_text(json.dumps({"runner": "DirectRunner"}))
    r = explore(root)
    text = r.page.read_text(encoding="utf-8")
    assert (r.clips, r.images, r.failures) == (0, 0, 5)
    assert "no clips and no images" in text and "song/download/http_404" in text


def test_empty_split_and_no_descriptors_or_captions(tmp_path):
    rows = make_rows()
    for r in rows[schema.MUSIC]:
        r.pop("descriptors")
        r["caption"] = None
    feats = {schema.MUSIC: __import__("datasets").Features(
        {k: v for k, v in schema.FEATURES[schema.MUSIC].items() if k != "descriptors"})}
    rows[schema.MUSIC] = [r for r in rows[schema.MUSIC] if r["split"] != "test"]
    root = write_run(tmp_path / "run", rows, features=feats)
    empty = root / "data" / schema.MUSIC / "test-00000-of-00001.parquet"
    pq.write_table(feats[schema.MUSIC].arrow_schema.empty_table(), empty)
    r = explore(root)
    data = page_data(r.page.read_text(encoding="utf-8"))
    assert r.clips == 6
    assert data["clips"]["caption"] == [""] * 6 and data["clips"]["d_key"] == [""] * 6
    assert all(np.isnan(x) for x in data["clips"]["d_tempo_bpm"])
    assert "music rows" in r.page.read_text(encoding="utf-8") and "test 0" in r.page.read_text(encoding="utf-8")


def test_ids_with_quotes_markup_and_non_ascii_are_escaped(tmp_path):
    rows = make_rows()
    rows[schema.MUSIC][0]["clip_id"] = NASTY
    rows[schema.IMAGES][0]["image_id"] = NASTY + "-img"
    rows[schema.MUSIC][1]["caption"] = NASTY
    for p in rows[schema.PAIRS]:
        p["image_id"] = NASTY + "-img"
    rows[schema.PAIRS][0]["music_clip_id"] = NASTY
    root = write_run(tmp_path / "run", rows)
    fails = [{"item_id": NASTY, "kind": "song", "stage": "download", "error_type": "x<y", "message": NASTY,
              "attempts": 1}]
    pq.write_table(pa.Table.from_pylist(fails, schema=schema.FAILURE_SCHEMA), root / "failures" / "failures.parquet")
    (root / "run.json").write_text(json.dumps({"runner": NASTY, "options": {NASTY: NASTY}}))
    text = explore(root).page.read_text(encoding="utf-8")
    assert "<script>window.__pwned" not in text and "<img src=x" not in text and "<b>&amp;" not in text
    data = page_data(text)  # the ids survive unchanged, as data
    assert NASTY in data["clips"]["clip_id"] and NASTY + "-img" in data["images"]["image_id"]


def test_bad_folders_fail_clearly(tmp_path, capsys):
    assert main(["explore", str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["explore", str(tmp_path / "empty")]) == 2
    assert "neither" in capsys.readouterr().err
    assert main(["explore", str(write_run(tmp_path / "run")), "--sample", "0"]) == 2
    assert "--sample" in capsys.readouterr().err


def fake_flag(caption, descriptors, valence, arousal, captioner_id=""):
    """A stand-in for captioner.audit.flag_caption with known answers on make_rows()'s clips."""
    wrong = ("tempo",) if descriptors and descriptors["tempo_bpm"] > 91.5 else ()
    return SimpleNamespace(repeated_phrase="number 0" in caption, self_contradiction="number 3" in caption,
                           grounding_failures=wrong, forbidden=(), restated=("drums",) if "number 1" in caption else ())


def test_caption_flags_reach_the_page_columns(run_dir, monkeypatch):
    """Whatever flag_caption says about a clip becomes that clip's filter columns."""
    monkeypatch.setattr(F, "audit_function", lambda: fake_flag)
    text = explore(run_dir).page.read_text(encoding="utf-8")
    clips = page_data(text)["clips"]
    assert clips["flag_repeated"] == [True] * 4 + [False] * 4  # a repeated phrase (number 0), a restated fact (1)
    assert clips["flag_contradiction"] == [False] * 6 + [True] * 2
    assert clips["grounding"] == [""] * 4 + ["tempo"] * 4
    assert F.flag_clips([{"caption": None}], fake_flag) == [F.ClipFlags()]


def test_caption_flags_from_the_caption_audit(run_dir):
    """With the caption audit installed, its flag_caption is the one the page uses."""
    audit = pytest.importorskip("captioner.audit", reason="captioner.audit (the caption audit) is not installed")
    assert F.audit_function() is audit.flag_caption
    r = explore(run_dir)
    assert r.flags_available
    expected = [audit.flag_caption(c["caption"], c["descriptors"], c["valence"], c["arousal"], c["captioner"])
                for c in make_rows()[schema.MUSIC]]
    clips = page_data(r.page.read_text(encoding="utf-8"))["clips"]
    assert clips["flag_grounding"] == [bool(f.grounding_failures) for f in expected]
    assert clips["flag_repeated"] == [bool(f.repeated_phrase or f.restated) for f in expected]
