"""A DEAM-layout folder of synthetic songs: MP3 audio, per-second and static annotation CSVs.

Audio is cheap and honest about it: a small bank of 45 s songs is synthesised (the demo source's
synthesiser, one VA quadrant per bank entry, its music following its own VA trajectory) and
encoded to MP3 once; an excerpt is a hard link to one bank entry, a full-length song the bank
entries of one quadrant concatenated frame by frame (CBR without a Xing header, so decoders read
the joined stream's true length). Each song's VA curve is its bank entries' trajectory, offset
per song, so labels follow the music and songs sharing audio still differ in their labels.
"""
from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.rehearsal.plan import ANNOTATION_START_S, Song

AUDIO_DIR = Path("DEAM_audio", "MEMD_audio")
AVERAGED = Path("DEAM_Annotations", "annotations", "annotations averaged per song")
DYNAMIC_DIR = AVERAGED / "dynamic (per second annotations)"
STATIC_DIR = AVERAGED / "song_level"
STATIC_FILES = (("static_annotations_averaged_songs_1_2000.csv", lambda i: i <= 2000),
                ("static_annotations_averaged_songs_2000_2058.csv", lambda i: i > 2000))
STATIC_HEADER = "song_id, valence_mean, valence_std, arousal_mean, arousal_std"
BANK_SECONDS, RATE, PERIOD_S = 45.0, 44100, 0.5
QUADRANTS = 4


@dataclass(frozen=True)
class BankEntry:
    path: Path
    valence: np.ndarray  # 2 Hz from t = 0, in [0, 1]
    arousal: np.ndarray


def _h(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()[:8], "big")


def encode_mp3(samples: np.ndarray, rate: int = RATE) -> bytes:
    """128 kb/s CBR stereo MP3 without ID3 tags or a Xing header (so files concatenate cleanly)."""
    cmd = ["ffmpeg", "-v", "error", "-f", "f32le", "-ar", str(rate), "-ac", "1", "-i", "-",
           "-ac", "2", "-c:a", "libmp3lame", "-b:a", "128k", "-write_xing", "0", "-id3v2_version", "0",
           "-write_id3v1", "0", "-f", "mp3", "-"]
    done = subprocess.run(cmd, input=np.ascontiguousarray(samples, dtype="<f4").tobytes(), capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg could not encode MP3: {done.stderr.decode(errors='replace')[-500:]}")
    return done.stdout


def _bank_entry(args: tuple[Path, int, int, int]) -> tuple[Path, list[float], list[float]]:
    from pipeline.sources.demo import synthesize_song

    path, quadrant, variant, seed = args
    samples, curve = synthesize_song(f"rehearsal-q{quadrant}-v{variant}", seed, BANK_SECONDS,
                                     annotation_start_s=0.0, quadrant=quadrant)
    path.write_bytes(encode_mp3(samples))
    return path, list(curve.valence), list(curve.arousal)


def build_bank(folder: Path, variants: int, seed: int, workers: int) -> list[list[BankEntry]]:
    """``bank[quadrant][variant]``: 45 s MP3s, synthesised in parallel."""
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(folder / f"q{q}-v{v}.mp3", q, v, seed) for q in range(QUADRANTS) for v in range(variants)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        made = list(pool.map(_bank_entry, jobs))
    bank = [[None] * variants for _ in range(QUADRANTS)]
    for (path, q, v, _), (_, val, aro) in zip(jobs, made):
        bank[q][v] = BankEntry(path, np.asarray(val), np.asarray(aro))
    return bank


def _curve(song: Song, entries: list[BankEntry], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The song's annotated samples (15 s to its annotated end, 2 Hz) in [0, 1]."""
    val = np.concatenate([e.valence for e in entries])
    aro = np.concatenate([e.arousal for e in entries])
    start, stop = int(ANNOTATION_START_S / PERIOD_S), int(round(song.annotated_end_s / PERIOD_S))
    rng = np.random.default_rng(_h("rehearsal-offset", seed, song.song_id))
    dv, da = rng.uniform(-0.06, 0.06, 2)
    return np.clip(val[start:stop] + dv, 0.02, 0.98), np.clip(aro[start:stop] + da, 0.02, 0.98)


def write_song_audio(root: Path, song: Song, entries: list[BankEntry], broken: bool) -> None:
    out = root / AUDIO_DIR / f"{song.song_id}.mp3"
    if broken:  # a file that is not audio at all: the pipeline's undecodable-song path
        out.write_bytes(b"this is not an MP3 file\n" * 64)
    elif len(entries) == 1:
        try:
            os.link(entries[0].path, out)
        except OSError:  # another file system, or no hard links there
            shutil.copyfile(entries[0].path, out)
    else:
        with open(out, "wb") as fh:
            for e in entries:
                fh.write(e.path.read_bytes())


def entries_for(song: Song, bank: list[list[BankEntry]], seed: int) -> list[BankEntry]:
    """The bank entries a song's audio is made of: one quadrant, variants in turn, enough pieces."""
    h = _h("rehearsal-song", seed, song.song_id)
    q, v0 = h % QUADRANTS, (h // QUADRANTS) % len(bank[0])
    pieces = max(1, math.ceil(song.annotated_end_s / BANK_SECONDS - 1e-9))
    return [bank[q][(v0 + k) % len(bank[q])] for k in range(pieces)]


def write_tree(root: Path, songs: list[Song], bank: list[list[BankEntry]], broken: set[str], seed: int) -> dict:
    """Audio files and annotation CSVs of ``songs`` under ``root``; returns counts for the record."""
    (root / AUDIO_DIR).mkdir(parents=True, exist_ok=True)
    curves = {}
    for song in songs:
        entries = entries_for(song, bank, seed)
        write_song_audio(root, song, entries, song.song_id in broken)
        curves[song.song_id] = _curve(song, entries, seed)
    _write_dynamic(root, curves)
    _write_static(root, curves)
    return {"songs": len(songs), "full_length": sum(s.full for s in songs), "broken_audio": sorted(broken),
            "audio_seconds_annotated": round(sum(s.annotated_end_s for s in songs), 1)}


def _write_dynamic(root: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """valence.csv / arousal.csv: ``song_id, sample_15000ms, ...`` in [-1, 1], short rows padded."""
    (root / DYNAMIC_DIR).mkdir(parents=True, exist_ok=True)
    width = max((len(v) for v, _ in curves.values()), default=0)
    header = "song_id," + ",".join(f"sample_{int(ANNOTATION_START_S * 1000 + 500 * k)}ms" for k in range(width))
    for name, which in (("valence.csv", 0), ("arousal.csv", 1)):
        lines = [header]
        for song_id in sorted(curves, key=int):
            values = curves[song_id][which] * 2.0 - 1.0
            cells = [f"{x:.4f}" for x in values] + [""] * (width - len(values))
            lines.append(song_id + "," + ",".join(cells))
        (root / DYNAMIC_DIR / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_static(root: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Song means and stds on DEAM's 1-9 scale, in its two static files."""
    (root / STATIC_DIR).mkdir(parents=True, exist_ok=True)
    for name, owns in STATIC_FILES:
        lines = [STATIC_HEADER]
        for song_id in sorted((s for s in curves if owns(int(s))), key=int):
            v, a = curves[song_id]
            lines.append(f"{song_id}, {1 + 8 * v.mean():.2f}, {8 * v.std():.2f}, {1 + 8 * a.mean():.2f}, {8 * a.std():.2f}")
        (root / STATIC_DIR / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
