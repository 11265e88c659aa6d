"""Metadata sources: DEAM (folder, archives, URL), clips, manifest, image CSVs, shared CSV helpers.

DEAM and clip trees are generated here (the sources never decode audio, so the .mp3/.wav files
only need to exist). The real IMEMNet-C image_va.csv is read from ../shared when present.
"""
from __future__ import annotations

import argparse
import io
import math
import tarfile
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

import pipeline.sources  # noqa: F401  (registers every song source)
from pipeline.images import process_image
from pipeline.sources import deam as deam_mod
from pipeline.sources.base import SONG_SOURCES
from pipeline.sources.clips import song_of_clip
from pipeline.sources.images import image_items
from pipeline.sources.tables import VA_SCALES, read_table, to_unit
from pipeline.types import Failure

REPO = Path(__file__).resolve().parents[2]
IMEMNET = REPO / ".." / "shared" / "data" / "imemnet"
DYNAMIC_DIR = "DEAM_Annotations/annotations/annotations averaged per song/dynamic (per second annotations)"
STATIC_DIR = "DEAM_Annotations/annotations/annotations averaged per song/song_level"


def opts(**kw) -> argparse.Namespace:
    return argparse.Namespace(**kw)


def by_type(failures: list[Failure]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in failures:
        out.setdefault(f.error_type, []).append(f.item_id)
    return out


# -- shared helpers -----------------------------------------------------------------------------

def test_scales_map_to_unit_and_refuse_out_of_range():
    assert set(VA_SCALES) >= {"unit", "deam", "iaps", "naps", "likert9", "emotic"}
    assert to_unit(0.25, "unit") == 0.25
    assert to_unit(-1, "deam") == 0.0 and to_unit(0, "deam") == 0.5
    assert to_unit(5, "iaps") == 0.5 and to_unit(9, "likert9") == 1.0
    assert to_unit(10, "emotic") == 1.0 and to_unit(1, "emotic") == 0.0
    for bad, scale in [(1.5, "unit"), (0.5, "iaps"), (-1.01, "deam"), (math.nan, "unit"), (math.inf, "emotic")]:
        with pytest.raises(ValueError):
            to_unit(bad, scale)
    with pytest.raises(ValueError, match="unknown VA scale"):
        to_unit(0.5, "percent")


def test_read_table_tolerates_bom_spaces_and_trailing_commas(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("\ufeffa, b ,c\n1, 2,3,\n\n4,5\n6,7,8,9\n", encoding="utf-8")
    table = read_table(path, required=["a", "b"], expected_header="a,b,c", stage="s", kind="row")
    assert table.header == ["a", "b", "c"]
    assert [r.cells for r in table.rows] == [("1", "2", "3")]
    assert [(f.item_id, f.error_type) for f in table.failures] == [("t.csv:line4", "malformed_row"),
                                                                   ("t.csv:line5", "malformed_row")]
    with pytest.raises(ValueError, match=r"t.csv: missing column\(s\) \['z'\].*expected header 'a,b,z'"):
        read_table(path, required=["z"], expected_header="a,b,z", stage="s", kind="row")


# -- DEAM ----------------------------------------------------------------------------------------

def write_curves(path: Path, curves: dict[str, list], extra_lines: list[str] = ()) -> None:
    """DEAM-style curve CSV: 'song_id, sample_15000ms, ...' padded with empty cells."""
    width = max(len(v) for v in curves.values())
    header = ["song_id"] + [f"sample_{15000 + 500 * i}ms" for i in range(width)]
    lines = [", ".join(header)]
    for song, values in curves.items():
        cells = [song] + [str(v) for v in values] + [""] * (width - len(values))
        lines.append(",".join(cells))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines + list(extra_lines)) + "\n")


def make_deam(root: Path, audio: list[str], valence: dict, arousal: dict, static: dict | None = None,
              extra_valence_lines: list[str] = ()) -> Path:
    """A DEAM tree with the standard layout; ``static`` maps song -> (v_mean, v_std, a_mean, a_std)."""
    mp3 = root / "DEAM_audio" / "MEMD_audio"
    mp3.mkdir(parents=True)
    for song in audio:
        (mp3 / f"{song}.mp3").write_bytes(b"ID3 not really audio")
    write_curves(root / DYNAMIC_DIR / "valence.csv", valence, extra_valence_lines)
    write_curves(root / DYNAMIC_DIR / "arousal.csv", arousal)
    if static is not None:
        lines = ["song_id, valence_mean, valence_std, arousal_mean, arousal_std"]
        lines += [f"{s}, {vm}, {vs}, {am}, {as_}" for s, (vm, vs, am, as_) in static.items()]
        (root / STATIC_DIR).mkdir(parents=True)
        (root / STATIC_DIR / "static_annotations_averaged_songs_1_2000.csv").write_text("\n".join(lines) + "\n")
    return root


def simple_deam(root: Path) -> Path:
    return make_deam(root, ["2", "10"],
                     valence={"2": [-1, 0, 1], "10": [0.5, 0.5, 0.5, 0.5, 0.5]},
                     arousal={"2": [0, 0, 0], "10": [-0.5, -0.5, -0.5, -0.5, -0.5]},
                     static={"2": (5, 1.6, 1, 0.8), "10": (9, 0, 3, 0)})


def deam_items(input_, tmp_path: Path):
    return SONG_SOURCES["deam"](opts(input=str(input_), cache_dir=str(tmp_path / "cache"))).items()


def test_deam_folder_gives_curves_and_static_va(tmp_path):
    items = deam_items(simple_deam(tmp_path / "DEAM"), tmp_path)
    assert items.failures == []
    s2, s10 = items.songs  # natural order: "2" before "10"
    assert (s2.song_id, s10.song_id) == ("2", "10")
    assert s2.source == "deam" and "non-commercial" in s2.license
    assert Path(s2.uri).name == "2.mp3" and Path(s2.uri).is_file()
    assert s2.va_curve.times_s == (15.0, 15.5, 16.0) and s2.va_curve.period_s == 0.5
    assert s2.va_curve.valence == (0.0, 0.5, 1.0) and s2.va_curve.arousal == (0.5, 0.5, 0.5)
    assert len(s10.va_curve.times_s) == 5 and s10.va_curve.arousal == (0.25,) * 5
    assert s2.static_va == (0.5, 0.0) and s2.static_va_std == pytest.approx((0.2, 0.1))
    assert s10.static_va == (1.0, 0.25)


def test_deam_every_song_ends_as_one_task_or_failure(tmp_path):
    root = make_deam(
        tmp_path / "DEAM",
        audio=["1", "4", "5", "7", "8", "9", "11", "12", "bad name!"],
        valence={"1": [0, 0], "6": [0, 0], "7": [0, 0], "8": [0, 0, 0], "9": [1.5, 0], "11": ["abc", 0],
                 "12": [0, "", 0]},
        arousal={"1": [0, 0], "6": [0, 0], "8": [0, 0], "9": [0, 0], "11": [0, 0], "12": [0, 0, 0]},
        static={"5": (3, 1, 7, 1), "6": (5, 1, 5, 1)},
        extra_valence_lines=["1,0.1,0.1", "../etc,0,0", "13,0,0,0,0,0,0"],
    )
    items = deam_items(root, tmp_path)
    assert [s.song_id for s in items.songs] == ["1", "5"]
    assert items.songs[1].va_curve is None and items.songs[1].static_va == (0.25, 0.75)  # static only
    got = by_type(items.failures)
    assert got == {
        "bad_id": ["bad name!.mp3", "valence.csv:line10"],
        "duplicate_id": ["1"],
        "malformed_row": ["valence.csv:line11"],  # 7 fields where the header has 4
        "bad_va": ["9", "11", "12"],
        "unknown_song": ["4"],  # audio, no annotation at all
        "missing_audio": ["6"],
        "va_mismatch": ["7", "8"],  # only in valence.csv; 3 vs 2 samples
    }
    msg = {f.item_id: f.message for f in items.failures}
    assert "1.5" in msg["9"] and "[-1, 1]" in msg["9"]
    assert "'abc'" in msg["11"] and "empty sample_15500ms" in msg["12"]
    # each usable song id is in exactly one place
    outcomes = Counter([s.song_id for s in items.songs] +
                       [f.item_id for f in items.failures if f.error_type != "duplicate_id"])
    assert all(n == 1 for n in outcomes.values())


def test_deam_files_are_found_anywhere_and_missing_ones_named(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "2.mp3").write_bytes(b"x")
    write_curves(flat / "valence.csv", {"2": [0, 0]})
    write_curves(flat / "arousal.csv", {"2": [0, 0]})
    (flat / "__MACOSX").mkdir()
    (flat / "__MACOSX" / "valence.csv").write_text("junk")  # resource forks are ignored
    (flat / "._2.mp3").write_bytes(b"x")
    items = deam_items(flat, tmp_path)
    assert [s.song_id for s in items.songs] == ["2"] and items.failures == []

    (flat / "arousal.csv").unlink()
    with pytest.raises(ValueError, match=r"no arousal.csv found.*dynamic \(per second annotations\)"):
        deam_items(flat, tmp_path)


def test_deam_bad_static_header_is_a_file_error(tmp_path):
    root = simple_deam(tmp_path / "DEAM")
    static = root / STATIC_DIR / "static_annotations_averaged_songs_1_2000.csv"
    static.write_text("song_id, valence_mean, valence_std\n2, 5, 1\n")
    with pytest.raises(ValueError, match=r"static_annotations_averaged_songs_1_2000.csv: missing column\(s\) "
                                         r"\['arousal_mean'\].*expected header"):
        deam_items(root, tmp_path)


def _zip_of(root: Path, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w") as zf:
        for p in sorted(root.rglob("*")):
            zf.write(p, p.relative_to(root.parent).as_posix())
    return dest


def test_deam_zip_is_extracted_once_inside_the_cache(tmp_path, monkeypatch):
    archive = _zip_of(simple_deam(tmp_path / "src" / "DEAM"), tmp_path / "DEAM.zip")
    items = deam_items(archive, tmp_path)
    assert [s.song_id for s in items.songs] == ["2", "10"]
    extract_root = tmp_path / "cache" / "deam-extract"
    (target,) = [p for p in extract_root.iterdir()]
    assert (target / ".extracted").is_file() and Path(items.songs[0].uri).is_relative_to(target)

    def boom(*a, **k):
        raise AssertionError("extracted twice")

    monkeypatch.setattr(deam_mod, "_extract_zip", boom)
    assert deam_items(archive, tmp_path).songs == items.songs


def test_deam_tar_gz(tmp_path):
    src = simple_deam(tmp_path / "src" / "DEAM")
    archive = tmp_path / "DEAM.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(src, arcname="DEAM")
    assert [s.song_id for s in deam_items(archive, tmp_path).songs] == ["2", "10"]


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "DEAM/../../evil.txt", "..\\evil.txt"])
def test_zip_slip_is_refused(tmp_path, name):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("DEAM/ok.txt", "ok")
        zf.writestr(name, "pwned")
    with pytest.raises(ValueError, match="refusing member"):
        deam_items(archive, tmp_path)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "cache" / "evil.txt").exists()
    assert not list((tmp_path / "cache" / "deam-extract").iterdir())  # no partial tree left behind


def _tar_with(tmp_path: Path, member: tarfile.TarInfo, body: bytes = b"") -> Path:
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tf:
        ok = tarfile.TarInfo("DEAM/ok.txt")
        ok.size = 2
        tf.addfile(ok, io.BytesIO(b"ok"))
        tf.addfile(member, io.BytesIO(body) if body else None)
    return archive


@pytest.mark.parametrize("kind,name,link", [
    (tarfile.SYMTYPE, "DEAM/out", "../../outside"),
    (tarfile.SYMTYPE, "DEAM/etc", "/etc"),
    (tarfile.LNKTYPE, "DEAM/hard", "../outside"),
])
def test_tar_links_leaving_the_tree_are_refused(tmp_path, kind, name, link):
    member = tarfile.TarInfo(name)
    member.type, member.linkname = kind, link
    with pytest.raises(ValueError, match="refusing"):
        deam_items(_tar_with(tmp_path, member), tmp_path)


def test_tar_slip_and_devices_are_refused(tmp_path):
    member = tarfile.TarInfo("../evil.txt")
    member.size = 5
    with pytest.raises(ValueError, match="refusing member"):
        deam_items(_tar_with(tmp_path, member, b"pwned"), tmp_path)
    dev = tarfile.TarInfo("DEAM/null")
    dev.type = tarfile.CHRTYPE
    with pytest.raises(ValueError, match="refusing special file"):
        deam_items(_tar_with(tmp_path, dev), tmp_path)
    assert not (tmp_path.parent / "evil.txt").exists()


def _zip_with_links(path: Path, links: list[tuple[str, str]], file_name: str) -> Path:
    """A zip whose symlink members (unix mode bits in external_attr) come in the given order."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("DEAM/ok.txt", "ok")
        for name, target in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)  # S_IFLNK | rwx
            zf.writestr(info, target)
        zf.writestr(file_name, "pwned")
    return path


# A link whose own text stays inside can still lead outside once earlier links exist on disk:
# "l1 -> ." makes "l1/l2" land beside l1, where ".." means the extraction folder's parent.
LINK_CHAINS = {
    "one_level": ([("l1", "."), ("l1/l2", "..")], "l2/escaped.txt"),
    "three_levels": ([("l1", "."), ("l1/l1/l1/l2", "../../..")], "l2/escaped.txt"),
}


def _escaped(tmp_path: Path) -> list[Path]:
    return [p for p in tmp_path.rglob("escaped.txt")]


@pytest.mark.parametrize("chain", sorted(LINK_CHAINS))
def test_zip_symlink_chains_are_refused(tmp_path, chain):
    links, file_name = LINK_CHAINS[chain]
    archive = _zip_with_links(tmp_path / "evil.zip", links, file_name)
    with pytest.raises(ValueError, match=r"refusing link member 'l1'"):
        deam_items(archive, tmp_path)
    assert _escaped(tmp_path) == []
    assert not list((tmp_path / "cache" / "deam-extract").iterdir())


@pytest.mark.parametrize("chain", sorted(LINK_CHAINS))
def test_tar_symlink_chains_are_refused(tmp_path, chain):
    links, file_name = LINK_CHAINS[chain]
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tf:
        for name, target in links:
            member = tarfile.TarInfo(name)
            member.type, member.linkname = tarfile.SYMTYPE, target
            tf.addfile(member)
        body = tarfile.TarInfo(file_name)
        body.size = 5
        tf.addfile(body, io.BytesIO(b"pwned"))
    with pytest.raises(ValueError, match=r"refusing link member 'l1'"):
        deam_items(archive, tmp_path)
    assert _escaped(tmp_path) == []


def test_links_inside_the_tree_are_refused_too(tmp_path):
    """Links are refused outright (DEAM's archives hold none), not judged by their text."""
    archive = _zip_with_links(tmp_path / "inner.zip", [("DEAM/alias.txt", "ok.txt")], "DEAM/other.txt")
    with pytest.raises(ValueError, match=r"refusing link member 'DEAM/alias.txt'.*hold no links"):
        deam_items(archive, tmp_path)


def test_deam_url_archive_goes_through_the_downloader(tmp_path, http_server):
    archive = _zip_of(simple_deam(tmp_path / "src" / "DEAM"), tmp_path / "DEAM.zip")
    url = http_server.add("/DEAM.zip", archive.read_bytes(), "application/zip")
    items = deam_items(url, tmp_path)
    assert [s.song_id for s in items.songs] == ["2", "10"]
    fetched = http_server.requests("/DEAM.zip")
    assert deam_items(url, tmp_path).songs == items.songs  # cached download, extracted once
    assert http_server.requests("/DEAM.zip") == fetched


def test_deam_needs_input():
    with pytest.raises(ValueError, match="--input"):
        SONG_SOURCES["deam"](opts())


# -- clips -------------------------------------------------------------------------------------

def test_song_of_clip():
    assert song_of_clip("725-16") == "725" and song_of_clip("a-b-3") == "a-b" and song_of_clip("725") == "725"


def test_clips_folder(tmp_path):
    audio = tmp_path / "clips"
    audio.mkdir()
    for cid in ["725-16", "725-17", "1000-9", "orphan-1"]:
        (audio / f"{cid}.wav").write_bytes(b"RIFF")
    csv = tmp_path / "music_va.csv"
    csv.write_text(
        ",clip_id,valence,arousal,caption\n"
        '0,725-16,0.25,0.75,"A calm piece, slow and soft."\n'
        "1,725-17,0.5,0.5,\n"
        "2,1000-9,1.2,0.5,x\n"  # bad VA
        "3,1000-10,0.5,0.5,x\n"  # no wav
        "4,725-16,0.1,0.1,dup\n"
        "5,../../etc/passwd,0.5,0.5,x\n"
        "6,1000-11,nan,0.5,x\n"
        "7,1000-12,0.5\n"  # malformed
    )
    items = SONG_SOURCES["clips"](opts(input=str(audio), clips_csv=str(csv))).items()
    a, b = items.songs
    assert (a.song_id, a.clip_id, a.static_va, a.static_va_std) == ("725", "725-16", (0.25, 0.75), (0.0, 0.0))
    assert a.caption == "A calm piece, slow and soft." and b.caption is None
    assert Path(a.uri) == audio / "725-16.wav" and a.source == "clips"
    assert by_type(items.failures) == {
        "malformed_row": ["music_va.csv:line9"], "bad_va": ["1000-9", "1000-11"],
        "missing_audio": ["1000-10"], "duplicate_id": ["725-16"], "bad_id": ["music_va.csv:line7"],
        "unknown_song": ["orphan-1"],  # a wav without a row (1000-9.wav has one, which failed)
    }
    assert "1.2" in next(f.message for f in items.failures if f.item_id == "1000-9")


def test_clips_url_and_header_errors(tmp_path):
    csv = tmp_path / "c.csv"
    csv.write_text(",clip_id,valence,arousal\n0,725-16,0.25,0.75\n")
    items = SONG_SOURCES["clips"](opts(input="https://host.example/clips/", clips_csv=str(csv))).items()
    assert items.songs[0].uri == "https://host.example/clips/725-16.wav" and items.failures == []
    csv.write_text(",clip,valence\n0,725-16,0.25\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['clip_id', 'arousal'\].*,clip_id,valence,arousal"):
        SONG_SOURCES["clips"](opts(input="https://h/", clips_csv=str(csv))).items()


# -- manifest ------------------------------------------------------------------------------------

def test_manifest_rows(tmp_path):
    (tmp_path / "local.mp3").write_bytes(b"x")
    csv = tmp_path / "songs.csv"
    csv.write_text(
        "song_id,url,start_s,end_s,valence,arousal,license\n"
        "yt1,https://www.youtube.com/watch?v=abc,10,40,0.2,0.8,CC-BY\n"
        "loc,local.mp3,,,0.5,0.5,\n"
        "gone,missing.mp3,,,0.5,0.5,\n"
        "nova,https://x/a.mp3,,,,,\n"
        "half,https://x/b.mp3,,,0.5,,\n"
        "range1,https://x/c.mp3,30,20,0.5,0.5,\n"
        "range2,https://x/d.mp3,-1,,0.5,0.5,\n"
        "big,https://x/e.mp3,,,1.5,0.5,\n"
        "nourl,,,,0.5,0.5,\n"
    )
    items = SONG_SOURCES["manifest"](opts(input=str(csv))).items()
    yt, loc = items.songs
    assert (yt.uri, yt.start_s, yt.end_s, yt.static_va, yt.license) == (
        "https://www.youtube.com/watch?v=abc", 10.0, 40.0, (0.2, 0.8), "CC-BY")
    assert loc.uri == str((tmp_path / "local.mp3").resolve()) and loc.license == "unknown"
    assert (loc.start_s, loc.end_s, loc.source) == (None, None, "manifest")
    assert by_type(items.failures) == {"missing_audio": ["gone"], "no_va": ["nova"], "bad_va": ["half", "big"],
                                       "bad_time_range": ["range1", "range2"], "bad_url": ["nourl"]}


def test_manifest_scales(tmp_path):
    csv = tmp_path / "m.csv"
    csv.write_text("song_id,url,valence,arousal\ns1,https://x/a.mp3,-1,1\ns2,https://x/b.mp3,5,9\n")
    deam = SONG_SOURCES["manifest"](opts(input=str(csv), manifest_va_scale="deam")).items()
    assert deam.songs[0].static_va == (0.0, 1.0) and by_type(deam.failures) == {"bad_va": ["s2"]}
    likert = SONG_SOURCES["manifest"](opts(input=str(csv), manifest_va_scale="likert9")).items()
    assert likert.songs[0].static_va == (0.5, 1.0) and by_type(likert.failures) == {"bad_va": ["s1"]}
    with pytest.raises(ValueError, match="unknown VA scale"):
        SONG_SOURCES["manifest"](opts(input=str(csv), manifest_va_scale="percent"))
    csv.write_text("song_id,url,valence\ns1,https://x/a.mp3,0.5\n")
    with pytest.raises(ValueError, match="only one of valence/arousal"):
        SONG_SOURCES["manifest"](opts(input=str(csv))).items()


# -- images (source) -----------------------------------------------------------------------------

def real_image_va() -> Path:
    path = IMEMNET / "image_va.csv"
    if not path.is_file():
        pytest.skip(f"real IMEMNet-C image_va.csv not found at {IMEMNET} (only beside the dev checkout)")
    return path


def test_real_image_va_without_folders(capsys):
    path = real_image_va()
    rows = sum(1 for line in path.read_text().splitlines()[1:] if line.strip())
    items = image_items(opts(images_csv=str(path), images_dir=[]))
    assert len(items.images) + len(items.failures) == rows
    kinds = Counter(f.error_type for f in items.failures)
    assert items.images == [] and set(kinds) <= {"missing_image", "duplicate_id"}
    assert all(f.kind == "image" and f.stage == "read_images" for f in items.failures)
    with capsys.disabled():
        print(f"\nimage_va.csv: {rows} rows -> {dict(kinds)}")


def test_real_ids_with_generated_images(tmp_path):
    path = real_image_va()
    with open(path) as fh:
        ids = [line.split(",")[1] for line, _ in zip(list(fh)[1:], range(5))]
    d1, d2 = tmp_path / "IAPS", tmp_path / "NAPS"
    d1.mkdir(), d2.mkdir()
    Image.new("RGB", (64, 48), (200, 10, 10)).save(d1 / f"{ids[0]}.jpg")
    Image.new("RGB", (64, 48), (10, 200, 10)).save(d1 / f"{ids[1]}.JPG", "JPEG")
    Image.new("RGB", (64, 48), (10, 10, 200)).save(d2 / f"{ids[2]}.png")
    Image.new("RGB", (64, 48), (10, 10, 10)).save(d2 / f"{ids[0]}.jpg")  # same id again: first folder wins
    (d2 / "notes.txt").write_text("ignored")
    items = image_items(opts(images_csv=str(path), images_dir=[str(d1), str(d2)]))
    found = {t.image_id: t for t in items.images}
    assert set(found) == set(ids[:3])
    assert Path(found[ids[0]].uri) == (d1 / f"{ids[0]}.jpg").resolve()
    assert Path(found[ids[1]].uri).name == f"{ids[1]}.JPG" and Path(found[ids[2]].uri).parent == d2.resolve()
    assert all(t.source == "imemnet" and 0 <= t.valence <= 1 and 0 <= t.arousal <= 1 for t in found.values())
    rec = process_image(found[ids[1]], found[ids[1]].uri)
    assert rec.path == f"{ids[1]}.jpg" and (rec.width, rec.height) == (64, 48)


def test_general_image_csv(tmp_path):
    (tmp_path / "img").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "img" / "a.png")
    csv = tmp_path / "images.csv"
    csv.write_text(
        "image_id,path_or_url,valence,arousal,source,scale\n"
        "iaps_1,img/a.png,5,9,iaps,iaps\n"
        "emo_1,https://x/e.jpg,10,1,emotic,emotic\n"
        "deam_1,https://x/d.jpg,-1,0,,deam\n"
        "gone,img/nope.png,0.5,0.5,x,unit\n"
        "odd,https://x/o.jpg,0.5,0.5,x,percent\n"
        "far,https://x/f.jpg,0,0.5,naps,naps\n"
    )
    items = image_items(opts(images_csv=str(csv)))
    got = {t.image_id: (t.source, t.valence, t.arousal) for t in items.images}
    assert got == {"iaps_1": ("iaps", 0.5, 1.0), "emo_1": ("emotic", 1.0, 0.0), "deam_1": ("unknown", 0.0, 0.5)}
    assert items.images[0].uri == str((tmp_path / "img" / "a.png").resolve())
    assert by_type(items.failures) == {"missing_image": ["gone"], "bad_scale": ["odd"], "bad_va": ["far"]}


def test_image_csv_with_unknown_header(tmp_path):
    csv = tmp_path / "x.csv"
    csv.write_text("id,file\n1,a.jpg\n")
    with pytest.raises(ValueError, match=r"x.csv: header .* is neither ',img,valence,arousal'"):
        image_items(opts(images_csv=str(csv)))
