"""Assemble a Hugging Face dataset repository folder from a pipeline run folder."""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from dataset_card import card, plots, schema, stats
from dataset_card.tables import Shard, find_shards
from dataset_card.validate import ValidationReport, validate

HUB_DIR = "hub"


@dataclass(frozen=True)
class BuildResult:
    """What ``build`` wrote."""

    out_dir: Path
    files: list[str]  # relative to out_dir, posix
    rows: dict[str, dict[str, int]]
    metadata_only: bool
    validation: ValidationReport


class BuildError(RuntimeError):
    """The run folder cannot be turned into a dataset (no shards, output inside data/...)."""


def build(run_dir: Path | str, out: Path | str | None = None, metadata_only: bool = False) -> BuildResult:
    """Copy (or strip) the run's shards into ``out``, write plots and the card, then validate.

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
    files = [_place(s, out_dir, metadata_only) for s in shards]
    built = find_shards(out_dir)
    st = stats.compute(built, run_dir / "failures" / "failures.parquet")
    files += plots.write_plots(st, out_dir)
    inputs = card.CardInputs(
        stats=st, run=_read_run(run_dir), data_files=_data_files(built), split_bytes=_split_bytes(built),
        plots=[f for f in files if f.startswith(plots.PLOT_DIR + "/")], metadata_only=metadata_only,
        caption_audit=_read_json(run_dir / card.CAPTION_AUDIT_FILE))
    (out_dir / card.LICENSE_FILE).write_text(card.render_license(st), encoding="utf-8")
    (out_dir / "README.md").write_text(card.render(inputs), encoding="utf-8")
    files += [card.LICENSE_FILE, "README.md"]
    report = validate(out_dir, failures=run_dir / "failures" / "failures.parquet")
    report.raise_if_failed()
    return BuildResult(out_dir, files, st.rows, metadata_only, report)


def _reset(out_dir: Path) -> None:
    """Start from an empty data/ and plots/ so shards of an older build (other counts) cannot linger."""
    for sub in ("data", plots.PLOT_DIR):
        if (out_dir / sub).exists():
            shutil.rmtree(out_dir / sub)
    out_dir.mkdir(parents=True, exist_ok=True)


def _place(s: Shard, out_dir: Path, metadata_only: bool) -> str:
    """Copy a shard byte for byte, or rewrite it without its media column."""
    dest = out_dir / s.rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    media = schema.MEDIA_COLUMN.get(s.table)
    if not metadata_only or media is None:
        shutil.copyfile(s.path, dest)
        return s.rel
    feats = schema.metadata_only_features(s.table)
    table = pq.read_table(s.path, columns=list(feats)).cast(feats.arrow_schema)
    pq.write_table(table, dest, compression="zstd")
    return s.rel


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
