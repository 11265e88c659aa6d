"""Assemble a Hugging Face dataset repository folder from a pipeline run folder.

The shards are not copied: each is a hard link to the run's own file (one copy on disk, two
names), where the filesystem allows; otherwise (another device, a filesystem without links) it is
copied and the build log says so. Nothing writes into a shard after the pipeline renamed it into
place (a rerun replaces files by rename), so the two names never disagree.
"""
from __future__ import annotations

import errno
import io
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
import soundfile as sf

from dataset_card import card, codecs, plots, schema, stats
from dataset_card.tables import Shard, find_shards
from dataset_card.validate import ValidationReport, validate

HUB_DIR = "hub"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildResult:
    """What ``build`` wrote."""

    out_dir: Path
    files: list[str]  # relative to out_dir, posix
    rows: dict[str, dict[str, int]]
    metadata_only: bool
    validation: ValidationReport
    placed: dict[str, int] = field(default_factory=dict)  # shards "linked", "copied", "rewritten"


class BuildError(RuntimeError):
    """The run folder cannot be turned into a dataset (no shards, output inside data/...)."""


def build(run_dir: Path | str, out: Path | str | None = None, metadata_only: bool = False) -> BuildResult:
    """Link (or copy, or strip) the run's shards into ``out``, write plots and the card, then validate.

    Raises :class:`dataset_card.validate.ValidationError` when the result breaks the contract.
    """
    run_dir = Path(run_dir).resolve()
    out_dir = Path(out).resolve() if out else run_dir / HUB_DIR
    if out_dir == run_dir or run_dir.is_relative_to(out_dir):
        # building clears out_dir/data: it must never be the run's own data
        raise BuildError(f"--out {out_dir} would overwrite the run folder {run_dir}: pick another folder")
    shards = find_shards(run_dir)
    if not shards:
        raise BuildError(f"{run_dir} holds no data/<table>/<split>-NNNNN-of-NNNNN.parquet shards: "
                         "is it the --output of `python -m pipeline.run`?")
    _reset(out_dir)
    placed: dict[str, int] = {}
    files = []
    for s in shards:
        how = _place(s, out_dir, metadata_only)
        placed[how] = placed.get(how, 0) + 1
        files.append(s.rel)
    built = find_shards(out_dir)
    st = stats.compute(built, run_dir / "failures" / "failures.parquet")
    files += plots.write_plots(st, out_dir)
    inputs = card.CardInputs(
        stats=st, run=_read_run(run_dir), data_files=_data_files(built), split_bytes=_split_bytes(built),
        plots=[f for f in files if f.startswith(plots.PLOT_DIR + "/")], metadata_only=metadata_only,
        caption_audit=_read_json(run_dir / card.CAPTION_AUDIT_FILE), audio=audio_summary(built))
    (out_dir / card.LICENSE_FILE).write_text(card.render_license(st), encoding="utf-8")
    (out_dir / "README.md").write_text(card.render(inputs), encoding="utf-8")
    files += [card.LICENSE_FILE, "README.md"]
    report = validate(out_dir, failures=run_dir / "failures" / "failures.parquet")
    report.raise_if_failed()
    return BuildResult(out_dir, files, st.rows, metadata_only, report, placed)


def _reset(out_dir: Path) -> None:
    """Start from an empty data/ and plots/ so shards of an older build (other counts) cannot linger."""
    for sub in ("data", plots.PLOT_DIR):
        if (out_dir / sub).exists():
            shutil.rmtree(out_dir / sub)
    out_dir.mkdir(parents=True, exist_ok=True)


def _place(s: Shard, out_dir: Path, metadata_only: bool) -> str:
    """Link a shard (else copy it byte for byte), or rewrite it without its media column; says which."""
    dest = out_dir / s.rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    media = schema.MEDIA_COLUMN.get(s.table)
    if not metadata_only or media is None:
        return link_or_copy(s.path, dest)
    feats = schema.metadata_only_features(s.table)
    table = pq.read_table(s.path, columns=list(feats)).cast(feats.arrow_schema)
    pq.write_table(table, dest, compression="zstd")
    return "rewritten"


# Why a link can fail where a copy works: another filesystem, or one without hard links (FAT,
# some network and overlay mounts), or links refused by policy (protected_hardlinks) or count.
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EACCES}


def link_or_copy(src: Path, dest: Path) -> str:
    """Make ``dest`` a hard link to ``src``; copy it (and log why) where the filesystem refuses.
    Returns "linked" or "copied"."""
    try:
        os.link(src, dest)
        return "linked"
    except OSError as e:
        if e.errno not in _NO_LINK:
            raise
        log.info("copying %s: it cannot be hard-linked into %s (%s); the shard takes disk space twice",
                 src.name, dest.parent, e.strerror or e)
    shutil.copyfile(src, dest)
    return "copied"


def audio_summary(shards: list[Shard]) -> card.AudioSummary | None:
    """Codec, rate and size of the music table's audio, from the data: the codec and rate of each
    shard's first clip, the audio column's size from the parquet footers (no audio is read beyond
    those clips)."""
    music = [s for s in shards if s.table == schema.MUSIC and "audio" in pq.read_schema(s.path).names]
    if not music:
        return None
    codecs_seen, rates, clips, seconds, size = set(), set(), 0, 0.0, 0
    for s in music:
        f = pq.ParquetFile(s.path)
        times = f.read(columns=["start_s", "end_s"])
        clips += times.num_rows
        seconds += float(sum(e - b for b, e in zip(times["start_s"].to_pylist(), times["end_s"].to_pylist())))
        size += _column_bytes(f, "audio.bytes")
        first = next(f.iter_batches(batch_size=1, columns=["audio"]), None)
        data = first.column(0)[0].as_py()["bytes"] if first is not None and first.num_rows else None
        if data:
            codecs_seen.add(codecs.codec_of(data))
            rates.add(_rate_of(data))
    names = sorted(codecs.CODECS[c].label if c in codecs.CODECS else "unknown" for c in codecs_seen)
    label = names[0] if len(names) == 1 else "mixed: " + ", ".join(names)
    return card.AudioSummary(label, rates.pop() if len(rates) == 1 else None, clips, seconds, size)


def _column_bytes(f: pq.ParquetFile, path: str) -> int:
    md = f.metadata
    index = next(i for i in range(md.num_columns) if md.schema.column(i).path == path)
    # as stored in the file: the encoded audio itself where, as the pipeline writes it, parquet
    # neither compresses nor dictionary-encodes the media column
    return sum(md.row_group(g).column(index).total_compressed_size for g in range(md.num_row_groups))


def _rate_of(data: bytes) -> int | None:
    try:
        return sf.info(io.BytesIO(data)).samplerate
    except (sf.LibsndfileError, RuntimeError, TypeError):
        return None


def _read_run(run_dir: Path) -> dict:
    path = run_dir / "run.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _data_files(shards: list[Shard]) -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = {}
    for s in shards:
        out.setdefault(s.table, {}).setdefault(s.split, []).append(s.rel)
    return out


def _split_bytes(shards: list[Shard]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for s in shards:
        split_bytes = out.setdefault(s.table, {})
        split_bytes[s.split] = split_bytes.get(s.split, 0) + s.path.stat().st_size
    return out
