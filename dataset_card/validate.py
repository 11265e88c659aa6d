"""Checks that a built dataset folder keeps the data contract; one function per check.

Each check returns a :class:`CheckResult` naming itself and the offending rows (first 10 ids and
the count), so a failing build or publish says exactly what is wrong and where.
"""
from __future__ import annotations

import collections
import io
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import datasets
import pyarrow.parquet as pq
import soundfile as sf
import yaml
from PIL import Image

from captioner.fallback import parse_captioner
from dataset_card import schema
from dataset_card.card import METADATA_ONLY_TAG, parse_front_matter
from dataset_card.tables import Shard, find_shards, read_table, rows_per_split, shards_of

SHOW = 10  # offending ids quoted per failed check


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check."""

    name: str
    ok: bool
    offending: tuple[str, ...] = ()  # first SHOW ids (or files)
    count: int = 0  # how many rows/files offend in all
    detail: str = ""

    def message(self) -> str:
        if self.ok:
            return f"ok   {self.name}"
        ids = ", ".join(self.offending)
        more = f" (+{self.count - len(self.offending)} more)" if self.count > len(self.offending) else ""
        return f"FAIL {self.name}: {self.detail} — {self.count} offending: {ids}{more}"


@dataclass
class ValidationReport:
    """All check results for one folder."""

    root: Path
    metadata_only: bool
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.ok]

    def check(self, name: str) -> CheckResult:
        return next(c for c in self.checks if c.name == name)

    def render(self) -> str:
        return f"validation of {self.root}:\n" + "\n".join(c.message() for c in self.checks)

    def raise_if_failed(self) -> None:
        if not self.ok:
            raise ValidationError(self)


class ValidationError(RuntimeError):
    """A built folder broke the contract; ``str()`` names every failed check and its rows."""

    def __init__(self, report: ValidationReport):
        super().__init__("\n".join(c.message() for c in report.failed))
        self.report = report


def _result(name: str, bad: Iterable[str], detail: str) -> CheckResult:
    bad = list(dict.fromkeys(bad))  # keep order, drop repeats
    return CheckResult(name, not bad, tuple(bad[:SHOW]), len(bad), detail if bad else "")


@dataclass(frozen=True)
class Context:
    """What every check may look at."""

    root: Path
    shards: list[Shard]
    card: dict | None
    card_error: str
    metadata_only: bool
    failures: Path | None = None  # the run's failures.parquet, where known


def check_schema(ctx: Context) -> CheckResult:
    """Every shard's HF features equal the contract (minus media when metadata-only)."""
    bad = []
    for s in ctx.shards:
        expected = schema.metadata_only_features(s.table) if ctx.metadata_only else schema.FEATURES[s.table]
        meta = pq.read_schema(s.path).metadata or {}
        try:
            got = datasets.Features.from_dict(json.loads(meta[b"huggingface"])["info"]["features"])
        except (KeyError, ValueError):
            got = None
        if got != expected:
            bad.append(s.rel)
    return _result("schema", bad, "features differ from dataset_card.schema" +
                   (" (metadata-only)" if ctx.metadata_only else ""))


def check_unique_ids(ctx: Context) -> CheckResult:
    """Ids are unique inside each table (pairs: the (clip, image) pair)."""
    bad = []
    for table in schema.TABLES:
        col = schema.ID_COLUMN[table]
        t = read_table(ctx.shards, table)
        ids = (["\x00".join(x) for x in zip(*(t.column(c).to_pylist() for c in col))]
               if isinstance(col, tuple) else t.column(col).to_pylist())
        bad += [f"{table}:{i}".replace("\x00", "|") for i, n in collections.Counter(ids).items() if n > 1]
    return _result("unique_ids", bad, "duplicate ids")


def check_va_range(ctx: Context) -> CheckResult:
    """Valence and arousal are finite and in [0, 1]."""
    bad = []
    for table in (schema.MUSIC, schema.IMAGES):
        for r in read_table(ctx.shards, table).to_pylist():
            if not all(v is not None and math.isfinite(v) and 0.0 <= v <= 1.0 for v in (r["valence"], r["arousal"])):
                bad.append(f"{table}:{r[schema.ID_COLUMN[table]]}")
    return _result("va_range", bad, "valence/arousal missing, not finite or outside [0, 1]")


def check_split_column(ctx: Context) -> CheckResult:
    """Each row's `split` column names the split of the file it is in."""
    bad = []
    for s in ctx.shards:
        t = pq.read_table(s.path, columns=["split"])
        if any(v != s.split for v in t.column("split").to_pylist()):
            bad.append(s.rel)
    return _result("split_column", bad, "rows whose split column differs from their file's split")


def check_audio(ctx: Context) -> CheckResult:
    """Every clip decodes (FLAC via soundfile) to end_s − start_s (±1 frame) at one sample rate."""
    if ctx.metadata_only:
        return CheckResult("audio_decodes", True)
    bad, rates = [], collections.Counter()
    for s in shards_of(ctx.shards, schema.MUSIC):
        t = pq.read_table(s.path, columns=["clip_id", "start_s", "end_s", "audio"])
        for r in t.to_pylist():
            try:
                frames, rate = _decode(r["audio"]["bytes"])
            except (sf.LibsndfileError, TypeError, RuntimeError):
                bad.append(f"{r['clip_id']} (undecodable)")
                continue
            rates[rate] += 1
            expected = (r["end_s"] - r["start_s"]) * rate
            if abs(frames - expected) > 1.0 + 1e-6 * expected:  # float32 bounds, then one frame
                bad.append(f"{r['clip_id']} ({frames} frames, expected {expected:.0f})")
            elif len(rates) > 1:
                bad.append(f"{r['clip_id']} ({rate} Hz; others {sorted(rates)[0]} Hz)")
    return _result("audio_decodes", bad, "audio that does not decode to its stated duration and sample rate")


def _decode(data: bytes) -> tuple[int, int]:
    """(frames actually decoded, sample rate): the whole stream is read, since a truncated FLAC
    still declares its full length in the header."""
    with sf.SoundFile(io.BytesIO(data)) as f:
        return len(f.read(dtype="int16")), f.samplerate


def check_images(ctx: Context) -> CheckResult:
    """Every image decodes with Pillow, decompression-bomb guard on (warnings become errors)."""
    if ctx.metadata_only:
        return CheckResult("images_decode", True)
    bad = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        for s in shards_of(ctx.shards, schema.IMAGES):
            for r in pq.read_table(s.path, columns=["image_id", "image"]).to_pylist():
                try:
                    with Image.open(io.BytesIO(r["image"]["bytes"])) as im:
                        im.load()
                except (OSError, TypeError, ValueError, Image.DecompressionBombWarning,
                        Image.DecompressionBombError) as e:
                    bad.append(f"{r['image_id']} ({type(e).__name__})")
    return _result("images_decode", bad, "images Pillow cannot decode")


def _split_sets(ctx: Context, table: str, col: str) -> dict[str, set[str]]:
    where: dict[str, set[str]] = collections.defaultdict(set)
    for r in read_table(ctx.shards, table).to_pylist():
        where[r[col]].add(r["split"])
    return where


def check_music_splits(ctx: Context) -> CheckResult:
    """A song's clips are all in one split."""
    where = _split_sets(ctx, schema.MUSIC, "song_id")
    return _result("music_split_by_song", sorted(k for k, v in where.items() if len(v) > 1),
                   "songs with clips in more than one split")


def check_image_splits(ctx: Context) -> CheckResult:
    """An image id is in one split only."""
    where = _split_sets(ctx, schema.IMAGES, "image_id")
    return _result("images_split_by_id", sorted(k for k, v in where.items() if len(v) > 1),
                   "image ids in more than one split")


def check_pairs(ctx: Context) -> CheckResult:
    """Every pair names an existing clip and an existing image."""
    clips = set(read_table(ctx.shards, schema.MUSIC).column("clip_id").to_pylist())
    images = set(read_table(ctx.shards, schema.IMAGES).column("image_id").to_pylist())
    bad = [f"{r['music_clip_id']}|{r['image_id']}" for r in read_table(ctx.shards, schema.PAIRS).to_pylist()
           if r["music_clip_id"] not in clips or r["image_id"] not in images]
    return _result("pairs_reference", bad, "pairs naming a clip or image that is not in the dataset")


def check_pair_splits(ctx: Context) -> CheckResult:
    """A pair's clip and image sit in the pair's own split: no test pair scores a train clip, song or image."""
    clip_split = dict(zip(*(read_table(ctx.shards, schema.MUSIC).column(c).to_pylist() for c in ("clip_id", "split"))))
    image_split = dict(zip(*(read_table(ctx.shards, schema.IMAGES).column(c).to_pylist() for c in ("image_id", "split"))))
    bad = [f"{r['split']}:{r['music_clip_id']}|{r['image_id']}" for r in read_table(ctx.shards, schema.PAIRS).to_pylist()
           if clip_split.get(r["music_clip_id"], r["split"]) != r["split"]
           or image_split.get(r["image_id"], r["split"]) != r["split"]]
    return _result("pairs_within_split", bad, "pairs whose clip or image sits in another split than the pair")


def check_card(ctx: Context) -> CheckResult:
    """README.md's YAML parses, declares every config's files, and its num_examples match the data."""
    if ctx.card is None:
        return CheckResult("card", False, ("README.md",), 1, ctx.card_error)
    actual = rows_per_split(ctx.shards)
    declared: dict[str, dict[str, int]] = {}
    for info in ctx.card.get("dataset_info") or []:
        declared[info.get("config_name")] = {sp["name"]: sp.get("num_examples") for sp in info.get("splits", [])}
    configs = {c.get("config_name") for c in ctx.card.get("configs") or []}
    bad = [f"{t} (no config)" for t in actual if t not in configs]
    for table in sorted(set(actual) | set(declared)):
        for split in sorted(set(actual.get(table, {})) | set(declared.get(table, {}))):
            a, d = actual.get(table, {}).get(split), declared.get(table, {}).get(split)
            if a != d:
                bad.append(f"{table}/{split} (card {d}, data {a})")
    return _result("card", bad, "the card's configs or num_examples do not match the data")


def check_caption_fallbacks(ctx: Context) -> CheckResult:
    """A clip is both a music row and a caption-stage failure exactly when its caption is the fallback's:
    the chosen captioner's rejection is recorded, and the clip kept its row (see captioner.fallback)."""
    name = "caption_fallbacks"
    if ctx.failures is None or not ctx.failures.exists():
        return CheckResult(name, True, detail="no failures table given: not checked")
    rows = pq.read_table(ctx.failures, columns=["item_id", "stage"]).to_pylist()
    rejected = {r["item_id"] for r in rows if r["stage"] == "caption"}
    music = read_table(ctx.shards, schema.MUSIC)
    bad = []
    for clip_id, value in zip(music.column("clip_id").to_pylist(), music.column("captioner").to_pylist()):
        fell_back = parse_captioner(value or "").fell_back
        if fell_back and clip_id not in rejected:
            bad.append(f"{clip_id} (fallback caption, no rejection recorded)")
        elif clip_id in rejected and not fell_back:
            bad.append(f"{clip_id} (rejection recorded, caption by {value})")
    return _result(name, bad, "music rows whose fallback caption and caption-stage failure rows disagree")


CHECKS: tuple[Callable[[Context], CheckResult], ...] = (
    check_card, check_schema, check_unique_ids, check_va_range, check_split_column, check_audio,
    check_images, check_music_splits, check_image_splits, check_pairs, check_pair_splits, check_caption_fallbacks,
)


def _read_card(root: Path) -> tuple[dict | None, str]:
    try:
        return parse_front_matter((root / "README.md").read_text(encoding="utf-8")), ""
    except (OSError, ValueError) as e:  # missing file, bad encoding, no header
        return None, f"README.md unreadable: {e}"
    except yaml.YAMLError as e:
        return None, f"README.md YAML does not parse: {e}"


def validate(root: Path | str, failures: Path | str | None = None) -> ValidationReport:
    """Run every check on a built dataset folder; ``failures``: the run's failures table (default:
    ``root/failures/failures.parquet`` when there is one, as in a run folder)."""
    root = Path(root)
    card, err = _read_card(root)
    metadata_only = bool(card) and METADATA_ONLY_TAG in (card.get("tags") or [])
    failures = Path(failures) if failures is not None else root / "failures" / "failures.parquet"
    ctx = Context(root, find_shards(root), card, err, metadata_only, failures if failures.exists() else None)
    report = ValidationReport(root, metadata_only)
    if not ctx.shards:
        report.checks.append(CheckResult("shards", False, ("data/",), 1, "no parquet shards under data/"))
        return report
    report.checks += [check(ctx) for check in CHECKS]
    return report
