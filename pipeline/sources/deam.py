"""DEAM (MediaEval 2015-2017) songs with 2 Hz valence/arousal curves: ``--source deam``.

``--input`` is a DEAM folder, a .zip/.tar(.gz) archive of one, or an http(s) URL of such an
archive. Files are found by name anywhere under the root, since people unpack DEAM differently:

- audio: ``{song_id}.mp3`` (``DEAM_audio/MEMD_audio/``)
- dynamic curves: ``valence.csv`` and ``arousal.csv`` (``.../dynamic (per second annotations)/``),
  header ``song_id, sample_15000ms, sample_15500ms, ...``, values in [-1, 1], rows of different
  lengths padded with empty cells
- static means (optional): ``static_annotations_averaged_songs_*.csv`` (``song_id, valence_mean,
  valence_std, arousal_mean, arousal_std``, 1-9 scale)

One SongTask per song with audio and annotations. A song with audio and a static rating but no
dynamic curve is kept with ``static_va`` only (the clip labels are then the song mean); a song
with audio and no annotation at all fails with "unknown_song"; annotations without audio fail
with "missing_audio"; a song whose valence and arousal curves disagree (only one of them, or
different lengths) fails with "va_mismatch". Each song id ends in exactly one task or failure.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.sources.base import SourceItems, register
from pipeline.sources.tables import (
    Row, RowError, Table, collect_rows, is_url, natural_key, parse_float, parse_id, read_table,
    to_unit,
)
from pipeline.types import Failure, SongTask, VACurve

STAGE = "read_deam"
LICENSE = "DEAM: non-commercial research (see MediaEval 2015–2017)"
DYNAMIC_HEADER = "song_id, sample_15000ms, sample_15500ms, ..."
STATIC_HEADER = "song_id, valence_mean, valence_std, arousal_mean, arousal_std"
STATIC_PREFIX = "static_annotations_averaged_songs"
_SAMPLE_COL = re.compile(r"^sample_(\d+)ms$")
DEFAULT_CACHE_DIR = os.path.join("runs", "cache")


@dataclass(frozen=True)
class DeamFiles:
    """What was found under a DEAM root."""

    audio: dict[str, Path]
    valence: Path
    arousal: Path
    static: list[Path]
    failures: list[Failure]


@register("deam")
class DeamSource:
    """Songs of a DEAM folder/archive/URL with their per-second VA curves."""

    name = "deam"

    def __init__(self, opts: argparse.Namespace):
        self.input = getattr(opts, "input", None)
        if not self.input:
            raise ValueError("--source deam needs --input: a DEAM folder, a .zip/.tar.gz of one, or its URL")
        self.cache_dir = getattr(opts, "cache_dir", None) or DEFAULT_CACHE_DIR

    def items(self) -> SourceItems:
        root = resolve_root(str(self.input), self.cache_dir)
        return read_deam(root)


def resolve_root(input_: str, cache_dir: str | os.PathLike) -> Path:
    """A local folder holding DEAM: ``input_`` itself, or where its archive was extracted."""
    if is_url(input_):
        if not input_.lower().startswith(("http://", "https://")):
            raise ValueError(f"--input {input_!r}: only http(s) URLs of a DEAM archive are supported")
        # imported here so this module imports (and its folder/archive paths work) on its own
        from pipeline.download import Downloader, DownloadOptions

        # same download cache as the pipeline's own fetches (run.py: <cache_dir>/downloads)
        fetched = Downloader(DownloadOptions(cache_dir=os.path.abspath(os.path.join(cache_dir, "downloads")))).fetch(input_)
        archive = Path(fetched.path)
    else:
        archive = Path(input_).expanduser()
        if archive.is_dir():
            return archive
        if not archive.is_file():
            raise ValueError(f"--input {input_!r}: no such folder or archive")
    size = archive.stat().st_size
    key = hashlib.sha256(f"{archive.resolve()}|{size}".encode()).hexdigest()[:16]
    return extract_archive(archive, Path(cache_dir) / "deam-extract" / key)


def read_deam(root: Path) -> SourceItems:
    """All songs of a DEAM folder as tasks and failures (see the module docstring)."""
    files = find_files(Path(os.path.abspath(root)))  # absolute uris whatever the cwd of workers
    out = SourceItems(failures=list(files.failures))
    valence, arousal, times, period = read_dynamic(files.valence, files.arousal, out.failures)
    songs = _Songs(files.audio, valence, arousal, read_static(files.static, out.failures), times, period)
    # a song whose own row already failed is reported once, by that failure
    reported = {f.item_id for f in out.failures if f.error_type != "duplicate_id"}
    ids = set(files.audio) | set(valence) | set(arousal) | set(songs.static)
    for song_id in sorted(ids - reported, key=natural_key):
        result = songs.outcome(song_id)
        (out.songs if isinstance(result, SongTask) else out.failures).append(result)
    return out


@dataclass(frozen=True)
class _Songs:
    """Everything known about DEAM's songs, joined by song id."""

    audio: dict[str, Path]
    valence: dict[str, list[float]]
    arousal: dict[str, list[float]]
    static: dict[str, tuple[tuple[float, float], tuple[float, float] | None]]
    times: list[float]
    period: float

    def outcome(self, song_id: str) -> SongTask | Failure:
        """The SongTask of ``song_id``, or the Failure saying why there is none."""
        v, a = self.valence.get(song_id), self.arousal.get(song_id)
        if song_id not in self.audio:
            have = [n for n, d in (("valence", self.valence), ("arousal", self.arousal), ("static", self.static))
                    if song_id in d]
            return Failure(song_id, STAGE, "missing_audio",
                           f"annotations ({', '.join(have)}) but no {song_id}.mp3 under the DEAM root")
        if v is None and a is None and song_id not in self.static:
            return Failure(song_id, STAGE, "unknown_song",
                           f"{self.audio[song_id].name} has no dynamic or static annotation")
        if (v is None) != (a is None):
            missing = "valence.csv" if v is None else "arousal.csv"
            return Failure(song_id, STAGE, "va_mismatch", f"song has a curve in one file but none in {missing}")
        if v is not None and len(v) != len(a):
            return Failure(song_id, STAGE, "va_mismatch", f"valence curve has {len(v)} samples, arousal {len(a)}")
        curve = None
        if v is not None:
            curve = VACurve(tuple(self.times[: len(v)]), tuple(v), tuple(a), period_s=self.period)
        va, std = self.static.get(song_id, (None, None))
        return SongTask(song_id=song_id, source="deam", uri=str(self.audio[song_id]), license=LICENSE,
                        va_curve=curve, static_va=va, static_va_std=std)


# -- locating files ------------------------------------------------------------------------------

def find_files(root: Path) -> DeamFiles:
    """Walk ``root`` once (no symlinked folders) and pick out DEAM's audio and annotation files."""
    mp3s: list[Path] = []
    csvs: dict[str, list[Path]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__MACOSX")  # macOS zip resource forks
        for name in sorted(filenames):
            if name.startswith("._"):
                continue  # AppleDouble metadata files, not audio
            low = name.lower()
            if low.endswith(".mp3"):
                mp3s.append(Path(dirpath, name))
            elif low.endswith(".csv"):
                csvs.setdefault(low, []).append(Path(dirpath, name))
    audio, failures = _index_audio(mp3s)
    valence = _pick_dynamic(root, csvs, "valence.csv")
    arousal = _pick_dynamic(root, csvs, "arousal.csv")
    static = sorted(p for name, ps in csvs.items() if name.startswith(STATIC_PREFIX) for p in ps)
    return DeamFiles(audio, valence, arousal, static, failures)


def _index_audio(mp3s: list[Path]) -> tuple[dict[str, Path], list[Failure]]:
    """song_id -> mp3 path; odd names fail with "bad_id", a second file of a song "duplicate_id"."""
    audio: dict[str, Path] = {}
    failures = []
    for p in mp3s:
        try:
            song_id = parse_id(p.stem, "audio file name")
        except RowError as e:
            failures.append(Failure(p.name[:200], STAGE, e.error_type, str(e)))
            continue
        if song_id in audio:
            failures.append(Failure(song_id, STAGE, "duplicate_id", f"{p} duplicates {audio[song_id]}"))
            continue
        audio[song_id] = p
    return audio, failures


def _pick_dynamic(root: Path, csvs: dict[str, list[Path]], name: str) -> Path:
    """The averaged per-second ``name`` under ``root``; a clear error if absent or ambiguous."""
    found = csvs.get(name, [])
    if len(found) > 1:  # prefer the averaged-per-song copy over other files of the same name
        averaged = [p for p in found if "averaged" in str(p.relative_to(root)).lower()]
        found = averaged or found
    if not found:
        raise ValueError(
            f"{root}: no {name} found; looked for it anywhere under the root (DEAM keeps it in "
            "'DEAM_Annotations/annotations/annotations averaged per song/dynamic (per second annotations)/')")
    if len(found) > 1:
        raise ValueError(f"{root}: {len(found)} files named {name}: {[str(p) for p in found]}; keep one")
    return found[0]


# -- annotations ----------------------------------------------------------------------------------

def read_dynamic(valence_csv: Path, arousal_csv: Path, failures: list[Failure]):
    """Read both curve files: ({song: [v]}, {song: [a]}, times_s, period_s), failures appended.

    Values are mapped [-1, 1] -> [0, 1]. Both files must sample the same instants.
    """
    tv = read_table(valence_csv, required=["song_id"], expected_header=DYNAMIC_HEADER,
                    stage=STAGE, kind="row", ragged=True)
    ta = read_table(arousal_csv, required=["song_id"], expected_header=DYNAMIC_HEADER,
                    stage=STAGE, kind="row", ragged=True)
    times, period = _sample_times(tv)
    times_a, _ = _sample_times(ta)
    n = min(len(times), len(times_a))
    if times[:n] != times_a[:n]:
        raise ValueError(f"{valence_csv.name} and {arousal_csv.name} sample different instants")
    times = times if len(times) >= len(times_a) else times_a
    curves = []
    for table in (tv, ta):
        failures += table.failures
        parse = functools.partial(_parse_curve, table.header)
        parsed, fails, _ = collect_rows(table.rows, parse, id_column="song_id", stage=STAGE, kind="song")
        failures += fails
        curves.append(dict(parsed))
    return curves[0], curves[1], times, period


def _sample_times(table: Table) -> tuple[list[float], float]:
    """Times in seconds from the ``sample_<ms>ms`` columns after song_id, and their period."""
    ms = []
    for col in table.header[1:]:
        m = _SAMPLE_COL.match(col)
        if not m:
            raise ValueError(f"{table.path}: column {col!r} is not sample_<ms>ms; expected header {DYNAMIC_HEADER!r}")
        ms.append(int(m.group(1)))
    if table.header[0] != "song_id" or not ms:
        raise ValueError(f"{table.path}: expected header {DYNAMIC_HEADER!r}, found {table.header[:3]}")
    steps = {b - a for a, b in zip(ms, ms[1:])}
    if len(steps) > 1 or (steps and min(steps) <= 0):
        raise ValueError(f"{table.path}: sample columns are not evenly spaced (steps {sorted(steps)[:5]} ms)")
    period = (steps.pop() if steps else 500) / 1000.0
    return [t / 1000.0 for t in ms], period


def _parse_curve(header: list[str], row: Row, song_id: str) -> tuple[str, list[float]]:
    """(song_id, values in [0, 1]) from one curve row; empty cells may only trail."""
    cells = list(row.cells[1:])
    while cells and not cells[-1]:
        cells.pop()
    if not cells:
        raise RowError("bad_va", "no samples")
    out = []
    for col, cell in zip(header[1:], cells):
        if not cell:
            raise RowError("bad_va", f"empty {col} followed by more values")
        try:
            out.append(to_unit(parse_float(cell, col), "deam"))
        except RowError:
            raise
        except ValueError as e:
            raise RowError("bad_va", f"{col}: {e}") from None
    return song_id, out


def read_static(paths: list[Path], failures: list[Failure]) -> dict[str, tuple[tuple[float, float], tuple[float, float] | None]]:
    """{song: ((v, a), (v_std, a_std) or None)} from the static CSVs, mapped 1-9 -> [0, 1]."""
    static: dict = {}
    for path in paths:
        table = read_table(path, required=["song_id", "valence_mean", "arousal_mean"],
                           expected_header=STATIC_HEADER, stage=STAGE, kind="row")
        failures += table.failures
        parsed, fails, _ = collect_rows(table.rows, _parse_static, id_column="song_id", stage=STAGE, kind="song")
        for song_id, value in parsed:
            if song_id in static:
                failures.append(Failure(song_id, STAGE, "duplicate_id", f"{path.name}: song already rated in another static file"))
            else:
                static[song_id] = value
        failures += fails
    return static


def _parse_static(row: Row, song_id: str):
    """(song_id, ((v, a), stds)) from one static row; std columns are optional."""
    try:
        va = tuple(to_unit(parse_float(row.get(c), c), "likert9") for c in ("valence_mean", "arousal_mean"))
    except ValueError as e:
        raise RowError(getattr(e, "error_type", "bad_va"), f"static rating: {e}") from None
    std = None
    if row.get("valence_std") and row.get("arousal_std"):
        s = [parse_float(row.get(c), c) for c in ("valence_std", "arousal_std")]
        if min(s) < 0 or max(s) > 4:  # the std of ratings in [1, 9] is at most 4
            raise RowError("bad_va", f"static std {s} outside [0, 4] (1-9 scale)")
        std = (s[0] / 8.0, s[1] / 8.0)  # same scale factor as the means, no offset
    return song_id, (va, std)


# -- archives ---------------------------------------------------------------------------------------

MARKER = ".extracted"


def extract_archive(archive: Path, target: Path) -> Path:
    """Extract a zip/tar ``archive`` into ``target`` once; return ``target``.

    Members must stay inside ``target``: absolute names, ``..`` parts, symlinks and hardlinks (of
    any target) and device files make the whole archive be refused (ValueError). Extraction goes
    to a temporary sibling folder that is renamed into place with a marker, so an interrupted run
    never leaves a half-extracted tree that looks complete.
    """
    if (target / MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".partial-", dir=target.parent))
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, tmp)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, tmp)
        else:
            raise ValueError(f"{archive}: not a zip or tar archive (nor a folder)")
        (tmp / MARKER).write_text(f"{archive}\n", encoding="utf-8")
        if target.exists() and not (target / MARKER).is_file():
            shutil.rmtree(target)  # left by an older, interrupted layout
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / MARKER).is_file():  # lost a race to another extractor: use its result
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _safe_member(name: str, archive: Path) -> str:
    """Normalised relative POSIX path of an archive member, or ValueError if it could escape."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm) or ".." in norm.split("/"):
        raise ValueError(f"{archive}: refusing member {name!r} (absolute path or '..')")
    return posixpath.normpath(norm)


def _refuse_link(member: str, archive: Path) -> None:
    # Judging a link by its text is not enough: "l1 -> ." then "l1/l2 -> .." each look harmless,
    # yet together they reach outside the folder. DEAM's archives hold no links, so none are made.
    raise ValueError(
        f"{archive}: refusing link member {member!r}: symlinks and hardlinks are not extracted "
        "(DEAM archives hold no links); unpack the archive yourself and pass the folder as --input"
    )


def _extract_zip(archive: Path, dest: Path) -> None:
    """Extract a zip member by member, writing only to checked paths under ``dest``."""
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            rel = _safe_member(info.filename, archive)
            out = dest / rel
            if info.is_dir() or rel == ".":
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            if stat.S_ISLNK(info.external_attr >> 16):
                _refuse_link(info.filename, archive)
            with zf.open(info) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)


def _extract_tar(archive: Path, dest: Path) -> None:
    """Extract a tar after checking every member, with Python's "data" filter as a second guard."""
    with tarfile.open(archive, "r:*") as tf:
        members = tf.getmembers()
        for m in members:
            _safe_member(m.name, archive)
            if m.issym() or m.islnk():
                _refuse_link(m.name, archive)
            if not (m.isfile() or m.isdir()):
                raise ValueError(f"{archive}: refusing special file {m.name!r} (device, fifo)")
        # the filter argument exists from Python 3.11.4 on; our own checks above stand without it
        extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tf.extractall(dest, members=members, **extra)
