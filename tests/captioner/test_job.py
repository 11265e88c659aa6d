"""The standalone job: `python -m captioner` / `accelerate launch -m captioner` on a small pipeline run."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from captioner import job, merge, records
from captioner.backends.descriptor import PROMPT_VERSION as TEMPLATE_VERSION
from captioner.base import CaptionResult
from captioner.fallback import fallback_captioner, parse_captioner
from captioner.prompts import DEFAULT_PROMPT_VERSION as TAGS_VERSION
from tests.e2e_helpers import accelerate_two_cpu_processes

DESCRIPTOR_ID = f"descriptor/none/{TEMPLATE_VERSION}+mood-labels"  # the job's default captioner

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory) -> Path:
    """A finished 3-song demo run (12 clips, 3 split shards), built once and copied per test."""
    out = tmp_path_factory.mktemp("run")
    subprocess.run([sys.executable, "-m", "pipeline.run", "--output", str(out), "--cache_dir", str(out / "cache"),
                    "--demo_songs", "3", "--demo_song_seconds", "20", "--demo_images", "0", "--pairs_per_clip", "0",
                    "--no_progress", "--captioner", "descriptor"], cwd=ROOT, check=True, capture_output=True, timeout=120)
    return out


@pytest.fixture
def run_dir(pipeline_run, tmp_path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(pipeline_run, dst, ignore=shutil.ignore_patterns("cache"))
    return dst


def tables(run_dir: Path) -> dict[str, object]:
    return {p.name: pq.read_table(p) for p in merge.music_shards(run_dir)}


def all_ids(run_dir: Path) -> list[str]:
    return sorted(i for t in tables(run_dir).values() for i in t.column("clip_id").to_pylist())


def recorded_ids(run_dir: Path) -> list[str]:
    """Every clip id line of every rank file (duplicates kept, so they would show)."""
    return sorted(json.loads(line)["clip_id"] for p in (run_dir / "captions").glob("rank-*.jsonl")
                  for line in p.read_text().splitlines())


def launch(run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    """Two real CPU processes under accelerate."""
    return accelerate_two_cpu_processes("-m", "captioner", "--input", str(run_dir), "--backend", "descriptor",
                                        "--batch_size", "2", *extra, cwd=ROOT, timeout=120)


def test_descriptor_job_in_process_keeps_table_identical(run_dir):
    before = tables(run_dir)
    meta_before = {n: pq.ParquetFile(run_dir / "data/music" / n).metadata for n in before}
    result = job.run(["--input", str(run_dir), "--backend", "descriptor", "--no_progress"])
    assert (result.world_size, result.total_clips, result.captioned, result.rejected, result.merged) == (1, 12, 12, 0, True)
    after = tables(run_dir)
    assert after.keys() == before.keys()
    for name, table in after.items():
        assert table.equals(before[name]) and table.schema.metadata == before[name].schema.metadata
        meta = pq.ParquetFile(run_dir / "data/music" / name).metadata
        assert meta.num_row_groups == meta_before[name].num_row_groups
    summary = json.loads((run_dir / "captions/summary.json").read_text())
    assert summary["accepted"] == 12 and summary["captioner"] == DESCRIPTOR_ID
    # A rerun finds everything recorded and captions nothing.
    again = job.run(["--input", str(run_dir), "--backend", "descriptor", "--no_progress"])
    assert (again.skipped, again.captioned) == (12, 0)
    assert recorded_ids(run_dir) == all_ids(run_dir)


def test_two_processes_caption_each_clip_exactly_once(run_dir):
    proc = launch(run_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run_dir / "captions/summary.json").read_text())
    assert summary["world_size"] == 2
    assert sorted(p.name for p in (run_dir / "captions").glob("rank-*.jsonl")) == ["rank-00000.jsonl", "rank-00001.jsonl"]
    assert all((run_dir / "captions" / f"rank-0000{r}.jsonl").read_text() for r in (0, 1))  # both ranks worked
    assert recorded_ids(run_dir) == all_ids(run_dir)  # none lost, none duplicated
    assert summary["accepted"] == 12 and summary["merged_rows"] == 12


def test_interrupted_then_resumed_two_process_run_gives_the_same_set(run_dir, tmp_path):
    proc = launch(run_dir, "--stop_after", "1")  # each rank "dies" after one clip, before the merge
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(recorded_ids(run_dir)) == 2 and not (run_dir / "captions/summary.json").exists()
    with open(records.rank_file(run_dir, 1), "a") as fh:  # a torn line, as a kill mid-write leaves
        fh.write('{"clip_id": "demo0')
    proc = launch(run_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert recorded_ids(run_dir) == all_ids(run_dir)
    reference = tmp_path / "reference"
    shutil.copytree(run_dir, reference)
    shutil.rmtree(reference / "captions")
    job.run(["--input", str(reference), "--backend", "descriptor", "--no_progress"])
    key = DESCRIPTOR_ID
    assert records.read_all(run_dir, key) == records.read_all(reference, key)
    assert {n: t.column("caption").to_pylist() for n, t in tables(run_dir).items()} == \
        {n: t.column("caption").to_pylist() for n, t in tables(reference).items()}


def test_merge_crash_leaves_previous_table_intact(run_dir, monkeypatch):
    before = tables(run_dir)
    ids = all_ids(run_dir)
    results = {i: CaptionResult(i, f"A new caption for {i}.", "test/none/v0") for i in ids}
    real, calls = merge._write_like, []

    def fail_second(original, table, target):
        calls.append(target)
        if len(calls) == 2:
            raise OSError("disk full")
        real(original, table, target)

    monkeypatch.setattr(merge, "_write_like", fail_second)
    with pytest.raises(OSError):
        merge.merge(run_dir, results)
    assert all(t.equals(before[n]) for n, t in tables(run_dir).items())
    assert not list((run_dir / "data/music").glob("*" + merge.TMP_SUFFIX))
    monkeypatch.setattr(merge, "_write_like", real)
    stats = merge.merge(run_dir, results)
    assert (stats.shards, stats.rows, stats.replaced) == (3, 12, 12)
    for name, table in tables(run_dir).items():
        assert table.column("clip_id").to_pylist() == before[name].column("clip_id").to_pylist()  # order kept
        assert table.column("caption").to_pylist() == [f"A new caption for {i}." for i in table.column("clip_id").to_pylist()]


def test_tiny_llm_rejects_are_recorded_and_fall_back_to_the_template(run_dir, tmp_path):
    from tests.captioner.tiny_models import tiny_causal_lm

    model = tiny_causal_lm(tmp_path / "tiny", "llama")
    before = tables(run_dir)
    result = job.run(["--input", str(run_dir), "--backend", "tags-llm", "--model", str(model), "--max_new_tokens", "8",
                      "--retries", "0", "--batch_size", "8", "--no_progress"])
    summary = json.loads((run_dir / "captions/summary.json").read_text())
    chosen = f"tags-llm/tiny/{TAGS_VERSION}+mood-labels"
    assert result.captioned + result.rejected == 12 and summary["rejected"] == result.rejected > 0
    assert summary["captioner"] == chosen
    assert (summary["fallback"], summary["kept_previous_caption"]) == (result.rejected, 0)
    for clip_id, why in summary["rejects"].items():
        assert why["error_type"].startswith("caption_") and why["attempts"] == 1
    for name, table in tables(run_dir).items():
        for i, (caption, value) in enumerate(zip(table.column("caption").to_pylist(),
                                                 table.column("captioner").to_pylist())):
            assert parse_captioner(value).chosen == chosen
            if parse_captioner(value).fell_back:  # the run was captioned by the same template
                assert value == fallback_captioner(DESCRIPTOR_ID, chosen)
                assert caption == before[name].column("caption")[i].as_py()


def test_missing_input_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no music shards"):
        job.run(["--input", str(tmp_path), "--backend", "descriptor"])


def test_command_line_zero_values_reach_the_backend():
    args = job.parse_args(["--input", "x", "--backend", "tags-llm", "--retries", "0", "--seed", "0", "--no-do_sample"])
    extra = job.config_from(args).extra
    assert (extra["retries"], extra["seed"], extra["do_sample"]) == (0, 0, False)
    assert "temperature" not in extra and "trust_remote_code" not in extra  # unset: the backend's defaults
    trusted = job.config_from(job.parse_args(["--input", "x", "--trust_remote_code"])).extra
    assert trusted["trust_remote_code"] is True


class ScriptedCaptioner:
    """A test backend whose id carries ``--model`` and which rejects the clips listed in ``REJECT``."""

    REJECT: set[str] = set()
    needs_audio = False

    def __init__(self, config):
        self.id = f"scripted/{config.model or 'none'}/v1"

    def caption(self, batch):
        return [CaptionResult(c.clip_id, None, self.id, "caption_test", "scripted reject") if c.clip_id in self.REJECT
                else CaptionResult(c.clip_id, f"{self.id} says {c.clip_id}.", self.id) for c in batch]


@pytest.fixture
def scripted(monkeypatch):
    from captioner.base import BACKENDS

    monkeypatch.setitem(BACKENDS, "scripted", ScriptedCaptioner)
    monkeypatch.setattr(ScriptedCaptioner, "REJECT", set())
    return ScriptedCaptioner


def run_job(run_dir: Path, *extra: str) -> job.JobResult:
    return job.run(["--input", str(run_dir), "--no_progress", *extra])


def test_rerun_with_another_backend_or_model_captions_every_clip_again(run_dir, scripted):
    ids = all_ids(run_dir)
    run_job(run_dir, "--backend", "descriptor")
    for model in ("m1", "m2"):  # another backend, then another model of it: nothing is skipped
        result = run_job(run_dir, "--backend", "scripted", "--model", model)
        assert (result.skipped, result.captioned, result.rejected) == (0, 12, 0)
        summary = json.loads((run_dir / "captions/summary.json").read_text())
        assert summary["captioner"] == f"scripted/{model}/v1" and summary["merged_rows"] == 12
        for table in tables(run_dir).values():
            assert set(table.column("captioner").to_pylist()) == {f"scripted/{model}/v1"}
            assert all(c.startswith(f"scripted/{model}/v1 says") for c in table.column("caption").to_pylist())
    again = run_job(run_dir, "--backend", "scripted", "--model", "m2")  # same captioner: all done already
    assert (again.skipped, again.captioned) == (12, 0)
    back = run_job(run_dir, "--backend", "descriptor")  # its earlier records still count for it
    assert (back.skipped, back.captioned) == (12, 0)
    assert {c for t in tables(run_dir).values() for c in t.column("captioner").to_pylist()} == {DESCRIPTOR_ID}
    assert sorted(records.read_all(run_dir, "scripted/m1/v1")) == ids


def caption_failures(run_dir: Path) -> dict[str, str]:
    t = pq.read_table(run_dir / "failures/failures.parquet").to_pylist()
    return {r["item_id"]: r["error_type"] for r in t if r["stage"] == "caption"}


def test_rejected_clips_are_retried_only_when_asked(run_dir, scripted):
    from dataset_card.validate import validate

    ids = all_ids(run_dir)
    scripted.REJECT = set(ids[:4])
    first = run_job(run_dir, "--backend", "scripted")
    assert (first.captioned, first.rejected) == (8, 4)
    kept = {i: c for t in tables(run_dir).values()
            for i, c in zip(t.column("clip_id").to_pylist(), t.column("captioner").to_pylist())}
    # rejects get the template's caption, saying so; their rejections are failure rows
    assert {kept[i] for i in ids[:4]} == {fallback_captioner(DESCRIPTOR_ID, "scripted/none/v1")}
    assert {kept[i] for i in ids[4:]} == {"scripted/none/v1"}
    assert caption_failures(run_dir) == {i: "caption_test" for i in ids[:4]}
    summary = json.loads((run_dir / "captions/summary.json").read_text())
    assert (summary["fallback"], summary["fallback_by_reason"], summary["failure_rows_written"]) == (
        4, {"caption_test": 4}, 4)
    assert validate(run_dir).check("caption_fallbacks").ok
    scripted.REJECT = set()
    plain = run_job(run_dir, "--backend", "scripted")  # a reject is a result: a plain rerun keeps it
    assert (plain.skipped, plain.captioned) == (12, 0)
    assert json.loads((run_dir / "captions/summary.json").read_text())["rejected"] == 4
    retry = run_job(run_dir, "--backend", "scripted", "--retry_rejected")
    assert (retry.skipped, retry.captioned, retry.rejected) == (8, 4, 0)
    summary = json.loads((run_dir / "captions/summary.json").read_text())
    assert (summary["accepted"], summary["rejected"], summary["rejects"], summary["fallback"]) == (12, 0, {}, 0)
    assert {c for t in tables(run_dir).values() for c in t.column("captioner").to_pylist()} == {"scripted/none/v1"}
    assert caption_failures(run_dir) == {}


def test_a_job_replaces_the_pipeline_caption_failures_and_keeps_the_others(run_dir, scripted):
    failures = run_dir / "failures/failures.parquet"
    t = pq.read_table(failures)
    ids = all_ids(run_dir)
    extra = [{"item_id": ids[0], "kind": "clip", "stage": "caption", "error_type": "caption_old", "message": "m",
              "attempts": 1},
             {"item_id": "gone-9", "kind": "clip", "stage": "caption", "error_type": "caption_old", "message": "m",
              "attempts": 1},
             {"item_id": "gone-10", "kind": "clip", "stage": "cut", "error_type": "silent", "message": "m",
              "attempts": 1}]
    pq.write_table(pa.concat_tables([t, pa.Table.from_pylist(extra, schema=t.schema)]), failures)
    scripted.REJECT = {ids[1]}
    run_job(run_dir, "--backend", "scripted")
    after = pq.read_table(failures).to_pylist()
    assert caption_failures(run_dir) == {ids[1]: "caption_test", "gone-9": "caption_old"}  # no row: not ours
    assert any(r["item_id"] == "gone-10" and r["stage"] == "cut" for r in after)
    assert len(after) == t.num_rows + 3  # 3 added, the old reject of ids[0] replaced by the new one of ids[1]


def test_an_accepted_retry_wins_over_an_earlier_reject_in_another_rank_file(tmp_path):
    """Ranks split the clips differently per run, so a retry can land in a lower-numbered file."""
    first = records.RankWriter(records.rank_file(tmp_path, 1))
    first.write([CaptionResult("a", None, "x/m/v1", "caption_short", "too short")])
    first.close()
    second = records.RankWriter(records.rank_file(tmp_path, 0))
    second.write([CaptionResult("a", "A fine caption.", "x/m/v1"), CaptionResult("a", "Other.", "y/m/v1")])
    second.close()
    assert records.read_all(tmp_path, "x/m/v1") == {"a": CaptionResult("a", "A fine caption.", "x/m/v1")}
    assert records.read_all(tmp_path, "y/m/v1")["a"].text == "Other."
    assert records.read_all(tmp_path, "z/m/v1") == {}


def test_a_rank_reads_only_its_row_groups_and_columns(tmp_path, monkeypatch):
    from captioner import loader
    from captioner.backends.descriptor import DescriptorCaptioner
    from pipeline import writer
    from tests.pipeline.test_writer import music_row

    rows = []
    for i in range(9):
        row = music_row(i)
        data = row["audio"]["bytes"]
        row["audio"] = {"bytes": None, "path": row["audio"]["path"]}
        rows.append(writer.stage_media(str(tmp_path / "out"), "music", row, "audio", data))
    avg = sum(writer.row_bytes(r) for r in rows) // len(rows)
    monkeypatch.setattr(writer, "MAX_ROW_GROUP_BYTES", 3 * avg)  # 3 rows per row group
    shard = tmp_path / "run" / "data" / "music" / "train-00000-of-00001.parquet"
    writer.write_parquet(str(shard), "music", rows)
    ids = sorted(r["clip_id"] for r in rows)
    reads = []
    real = pq.ParquetFile.read_row_group
    monkeypatch.setattr(pq.ParquetFile, "read_row_group",
                        lambda self, i, columns=None, **kw: reads.append((i, tuple(columns))) or real(self, i, columns, **kw))
    mine = {ids[4], ids[5]}  # both in the second row group
    got = [c.clip_id for b in loader.batches([shard], mine, DescriptorCaptioner(), 4) for c in b.clips]
    assert sorted(got) == sorted(mine)
    assert reads == [(1, ("clip_id", "descriptors", "valence", "arousal", "tag_probs"))]  # null tag_probs read back
    reads.clear()
    listener = DescriptorCaptioner()
    listener.needs_audio = True
    clips = [c for b in loader.batches([shard], {ids[0], ids[8]}, listener, 4) for c in b.clips]
    assert [i for i, _ in reads] == [0, 2] and all("audio" in cols for _, cols in reads)
    assert sorted(c.clip_id for c in clips) == [ids[0], ids[8]]
    assert all(c.samples is not None and c.sample_rate == 16000 for c in clips)
