"""Helpers for end-to-end tests that run the real pipeline (``pipeline.run.run``) on small inputs.

- :func:`run_pipeline` runs the pipeline with fast, test-friendly flags and returns its summary;
- :func:`read_table`, :func:`read_failures`, :func:`shard_bytes` read what a run wrote;
- :func:`check_every_row_lands` is the "every input item ends in exactly one place" invariant of
  DESIGN.md, checked row by row against the input CSV itself, with its one exception: a clip whose
  caption the chosen captioner rejected is a row (with the fallback's caption) *and* a failure row
  of stage ``caption``;
- :func:`write_csv`, :func:`offline` and the audio helpers keep the test files short.
"""
from __future__ import annotations

import collections
import contextlib
import csv
import glob
import io
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pyarrow.parquet as pq
import soundfile as sf

from captioner.fallback import parse_captioner
from pipeline.run import run
from pipeline.summary import RunSummary

# Fast, deterministic defaults: short clips at 16 kHz stored losslessly (so tests read back exactly
# the samples the pipeline cut), no pairs, quick retries and timeouts, and one in-process worker
# (no worker start-up; tests may spy on functions the stages call). The default command's worker
# processes and clip codec are tested in test_runners and test_run_demo.
FAST_FLAGS = (
    "--no_progress", "--retry_backoff", "0.01", "--download_timeout", "1",
    "--clip_seconds", "4", "--hop_seconds", "4", "--sample_rate", "16000", "--audio_codec", "flac",
    "--pairs_per_clip", "0", "--captioner", "descriptor", "--direct_num_workers=1",
)
MANIFEST_HEADER = ("song_id", "url", "start_s", "end_s", "valence", "arousal", "license")
IMAGE_HEADER = ("image_id", "path_or_url", "valence", "arousal", "source", "scale")


def pipeline_args(tmp: str | os.PathLike, *args: str, output: str = "out", cache: str = "cache") -> list[str]:
    """``run`` argv: ``args`` plus ``--output tmp/output --cache_dir tmp/cache`` and :data:`FAST_FLAGS`.

    Flags in ``args`` come last, so they override the defaults (argparse keeps the last value).
    """
    tmp = Path(tmp)
    return ["--output", str(tmp / output), "--cache_dir", str(tmp / cache), *FAST_FLAGS, *args]


def run_pipeline(tmp: str | os.PathLike, *args: str, output: str = "out", cache: str = "cache") -> RunSummary:
    """Run the pipeline in-process on the DirectRunner; outputs under ``tmp/output``, cache ``tmp/cache``."""
    return run(pipeline_args(tmp, *args, output=output, cache=cache))


# -- reading outputs ---------------------------------------------------------------------------

def read_table(output: str | os.PathLike, table: str) -> list[dict]:
    """All rows of ``table`` over all its shards (every split), in shard-path order."""
    rows: list[dict] = []
    for path in sorted(glob.glob(os.path.join(output, "data", table, "*.parquet"))):
        rows += pq.read_table(path).to_pylist()
    return rows


def read_failures(output: str | os.PathLike) -> list[dict]:
    """Rows of ``failures/failures.parquet`` (item_id, kind, stage, error_type, message, attempts)."""
    return pq.read_table(os.path.join(output, "failures", "failures.parquet")).to_pylist()


def shard_bytes(output: str | os.PathLike) -> dict[str, bytes]:
    """``{relative path: bytes}`` of every data shard plus the failures file and the run manifest.

    These are what a run promises to write deterministically (``run.json`` holds wall times and
    ``README.md`` only lists the shards).
    """
    out = {}
    patterns = ("data/*/*.parquet", "failures/failures.parquet", "_manifest.json")
    for pattern in patterns:
        for path in sorted(glob.glob(os.path.join(output, pattern))):
            out[os.path.relpath(path, output).replace(os.sep, "/")] = Path(path).read_bytes()
    return out


def tmp_debris(folder: str | os.PathLike) -> list[str]:
    """Files under ``folder`` that look like unfinished atomic writes (``*.tmp-*`` / ``.tmp-*``)."""
    return sorted(p for p in glob.glob(os.path.join(folder, "**", "*"), recursive=True)
                  if ".tmp-" in os.path.basename(p))


# -- writing inputs ----------------------------------------------------------------------------

def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
    """Write a CSV with ``header``; ``None`` cells become empty. Rows may have any length
    (malformed rows are part of what the tests feed in)."""
    path = Path(path)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow(["" if c is None else c for c in row])
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def wav_bytes(x: np.ndarray, sr: int) -> bytes:
    """16-bit WAV bytes of mono ``x``."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(x, -1, 1).astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def long_quiet_flac(seconds: float, sr: int = 8000, tone_hz: float = 440.0) -> bytes:
    """FLAC bytes of one second of tone followed by digital silence: hours long, a few hundred KB.

    Written in one-minute blocks so neither the array nor the encoder holds hours of samples.
    """
    buf = io.BytesIO()
    t = np.arange(sr) / sr
    head = (0.5 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)
    block = np.zeros(60 * sr, dtype=np.float32)
    with sf.SoundFile(buf, "w", sr, 1, format="FLAC", subtype="PCM_16") as f:
        f.write(head)
        left = int(round(seconds * sr)) - len(head)
        while left > 0:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n
    return buf.getvalue()


def decode_flac(data: bytes) -> tuple[np.ndarray, int]:
    """(mono float32 samples, sample rate) of FLAC bytes from a music row's ``audio``."""
    x, sr = sf.read(io.BytesIO(data), dtype="float32")
    return x, sr


def peak_hz(x: np.ndarray, sr: int) -> float:
    """Frequency of the strongest FFT bin of ``x`` (Hann window)."""
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1.0 / sr)[int(np.argmax(spec))])


# -- offline guard for module-scoped fixtures ----------------------------------------------------

@contextlib.contextmanager
def offline() -> Iterator[list]:
    """Refuse connections beyond loopback, like conftest's autouse ``no_internet`` fixture, for
    module-scoped fixtures (which run before any function-scoped fixture)."""
    attempts: list = []
    real = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and not str(host).startswith(("127.", "::1", "localhost")):
            attempts.append(address)
            raise ConnectionRefusedError(f"tests may not reach {address!r}")
        return real(self, address)

    socket.socket.connect = guarded
    try:
        yield attempts
    finally:
        socket.socket.connect = real
    assert not attempts, f"the run tried to reach beyond loopback: {attempts}"


# -- the invariant -----------------------------------------------------------------------------

@dataclass
class Landing:
    """Where one input CSV row ended up."""

    line: int  # physical line where the record ends (csv.reader.line_num), as in ``file:lineN``
    raw_id: str
    outcome: str  # "rows" | "failure" | "clip_failures"
    failure: dict | None = None  # the failure row, when the row ended as one
    rows: list[dict] = field(default_factory=list)  # table rows of the item
    clip_failures: list[dict] = field(default_factory=list)  # clip-level failures of a song


def _csv_records(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(line, stripped cells)]) the way any reader would see the file; blank lines skipped."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh, skipinitialspace=True)
        header = [h.strip() for h in next(reader)]
        records = []
        for cells in reader:
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue
            records.append((reader.line_num, [c.strip() for c in cells]))
    return header, records


def check_every_row_lands(
    csv_path: str | os.PathLike,
    rows: list[dict],
    failures: list[dict],
    *,
    id_column: str,
    row_group: str,
    row_key: str,
    item_kinds: Sequence[str],
    sub_item_kinds: Sequence[str] = (),
) -> dict[int, Landing]:
    """Check that every record of the CSV ended in exactly one place; return where, by line.

    ``rows`` are table rows (``music`` or ``images``); ``row_group`` is the column naming the
    input item a row came from (``song_id`` / ``image_id``), ``row_key`` the row's own id
    (``clip_id`` / ``image_id``). ``failures`` may be the whole failures table: only failures
    of ``item_kinds`` / ``sub_item_kinds`` and row failures naming this file are considered.

    Rules, record by record in file order:
    - a record rejected as a *line* has exactly one failure with ``item_id == "<file>:line<N>"``
      (malformed rows, unusable ids) and claims nothing else;
    - otherwise its id (first cell of ``id_column``) is the item: a repeated id has its own
      ``duplicate_id`` failure; a first-seen id ends as table rows, XOR exactly one item-level
      failure, XOR (songs only) nothing but clip-level failures ``<id>-<index>``.
    Afterwards every considered failure and every table row must have been claimed, clip ids
    must be unique and never both a row and a failure, except a caption rejection of a row whose
    caption is the fallback's (and such a row must have its rejection). Raises AssertionError
    listing every violation.
    """
    path = Path(csv_path)
    header, records = _csv_records(path)
    col = header.index(id_column)
    prefix = f"{path.name}:line"
    ours = [f for f in failures
            if f["kind"] in item_kinds or f["kind"] in sub_item_kinds or f["item_id"].startswith(prefix)]
    by_item: dict[str, list[dict]] = collections.defaultdict(list)
    for f in ours:
        by_item[f["item_id"]].append(f)
    rows_by_group: dict[str, list[dict]] = collections.defaultdict(list)
    for r in rows:
        rows_by_group[r[row_group]].append(r)

    problems: list[str] = []
    claimed_failures: list[int] = []  # id() of claimed failure dicts
    claimed_groups: set[str] = set()
    landings: dict[int, Landing] = {}
    seen: set[str] = set()

    def take(item_id: str, pred) -> list[dict]:
        got = [f for f in by_item.get(item_id, []) if pred(f) and id(f) not in claimed_failures]
        claimed_failures.extend(id(f) for f in got)
        return got

    for line, cells in records:
        ref = f"{prefix}{line}"
        raw = cells[col] if col < len(cells) else ""
        by_line = take(ref, lambda f: True)
        if by_line:
            if len(by_line) > 1:
                problems.append(f"{ref}: {len(by_line)} failures for one record: {by_line}")
            landings[line] = Landing(line, raw, "failure", failure=by_line[0])
            continue
        if raw in seen:
            # the duplicate_id failure of this very record: its message starts with the record's ref
            dup = take(raw, lambda f: f["error_type"] == "duplicate_id" and f["kind"] in item_kinds
                       and f["message"].startswith(f"{ref}:"))
            if len(dup) != 1:
                problems.append(f"{ref}: repeated id {raw!r} has {len(dup)} duplicate_id failures (want 1)")
            landings[line] = Landing(line, raw, "failure", failure=dup[0] if dup else None)
            continue
        seen.add(raw)
        item_failures = take(raw, lambda f: f["kind"] in item_kinds and f["error_type"] != "duplicate_id")
        sub_re = re.compile(re.escape(raw) + r"-\d+$")
        subs = [f for f in ours if f["kind"] in sub_item_kinds and sub_re.match(f["item_id"])
                and id(f) not in claimed_failures]
        claimed_failures.extend(id(f) for f in subs)
        got_rows = rows_by_group.get(raw, [])
        claimed_groups.add(raw)
        places = [name for name, there in (("rows", got_rows), ("failure", item_failures)) if there]
        if subs and not got_rows:
            places.append("clip_failures")
        if len(places) != 1 or len(item_failures) > 1:
            problems.append(f"{ref}: id {raw!r} ended in {places or 'nowhere'} "
                            f"({len(got_rows)} rows, item failures {item_failures}, {len(subs)} clip failures)")
        if item_failures and subs:
            problems.append(f"{ref}: id {raw!r} has an item-level failure and clip failures {subs}")
        outcome = places[0] if places else "nowhere"
        landings[line] = Landing(line, raw, outcome, failure=item_failures[0] if item_failures else None,
                                 rows=got_rows, clip_failures=subs)

    stray = [f for f in ours if id(f) not in claimed_failures]
    if stray:
        problems.append(f"failures that belong to no input record: {stray}")
    unclaimed = sorted(set(rows_by_group) - claimed_groups)
    if unclaimed:
        problems.append(f"table rows of ids that are in no input record: {unclaimed}")
    keys = collections.Counter(r[row_key] for r in rows)
    repeated = sorted(k for k, n in keys.items() if n > 1)
    if repeated:
        problems.append(f"{row_key} values written more than once: {repeated}")
    fell_back = {r[row_key] for r in rows if parse_captioner(r.get("captioner") or "").fell_back}
    rejected = {f["item_id"] for f in ours if f["stage"] == "caption"}
    both = sorted(set(keys) & {f["item_id"] for f in ours if f["error_type"] != "duplicate_id"
                               and not (f["stage"] == "caption" and f["item_id"] in fell_back)})
    if both:
        problems.append(f"ids that are both a table row and a failure: {both}")
    if fell_back - rejected:
        problems.append(f"rows with the fallback caption but no caption failure: {sorted(fell_back - rejected)}")
    assert not problems, "invariant violated:\n  " + "\n  ".join(problems)
    return landings


def check_songs_land(manifest: str | os.PathLike, output: str | os.PathLike) -> dict[int, Landing]:
    """:func:`check_every_row_lands` for a manifest CSV and the ``music`` table of ``output``."""
    return check_every_row_lands(manifest, read_table(output, "music"), read_failures(output),
                                 id_column="song_id", row_group="song_id", row_key="clip_id",
                                 item_kinds=("song",), sub_item_kinds=("clip",))


def check_images_land(images_csv: str | os.PathLike, output: str | os.PathLike) -> dict[int, Landing]:
    """:func:`check_every_row_lands` for a general image CSV and the ``images`` table of ``output``."""
    return check_every_row_lands(images_csv, read_table(output, "images"), read_failures(output),
                                 id_column="image_id", row_group="image_id", row_key="image_id",
                                 item_kinds=("image",))


def accelerate_two_cpu_processes(*target: str, cwd: str | os.PathLike, timeout: float = 300):
    """``accelerate launch`` of ``target`` (``-m module ...`` or ``script.py ...``) as two real CPU
    processes (DESIGN.md: ``--cpu --num_processes 2`` would start only one), rendezvous on a free
    loopback port."""
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_ip", "127.0.0.1", "--main_process_port", str(port), *target]
    env = dict(os.environ, HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
