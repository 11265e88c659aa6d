"""Each validation check, against a copy broken in exactly that one way.

Broken runs go through `build`, which must refuse them (non-zero via the CLI) naming the check and
the offending ids; the card check is broken after a good build and caught by `validate`.
"""
from __future__ import annotations

import datasets
import pytest

from dataset_card import schema
from dataset_card.__main__ import main
from dataset_card.build import build
from dataset_card.validate import SHOW, ValidationError, validate
from tests.dataset_card.fakerun import flac, make_rows, write_run


def _broken_build(tmp_path, rows=None, features=None) -> ValidationError:
    run = write_run(tmp_path / "run", rows, features)
    with pytest.raises(ValidationError) as err:
        build(run)
    return err.value


def _only_failure(err: ValidationError, name: str, also: tuple[str, ...] = ()):
    """The failed check ``name`` (and only the ``also`` checks besides it, which the break implies)."""
    failed = err.report.failed
    assert sorted(c.name for c in failed) == sorted([name, *also]), err.report.render()
    assert name in str(err)
    return err.report.check(name)


def test_clean_build_passes_every_check(built):
    _, result = built
    report = validate(result.out_dir)
    assert report.ok and len(report.checks) == 12, report.render()


def test_schema(tmp_path):
    feats = dict(schema.FEATURES)
    feats["images"] = datasets.Features({**schema.FEATURES["images"], "valence": datasets.Value("float64")})
    check = _only_failure(_broken_build(tmp_path, features=feats), "schema")
    assert check.offending == ("data/images/train-00000-of-00001.parquet", "data/images/validation-00000-of-00001.parquet",
                               "data/images/test-00000-of-00001.parquet") and check.count == 3


def test_unique_ids(tmp_path):
    rows = make_rows()
    rows["music"].append(dict(rows["music"][0]))
    check = _only_failure(_broken_build(tmp_path, rows), "unique_ids")
    assert check.offending == ("music:s1-0",)


def test_va_range(tmp_path):
    rows = make_rows()
    rows["images"][1]["valence"] = 1.5
    rows["music"][2]["arousal"] = float("nan")
    check = _only_failure(_broken_build(tmp_path, rows), "va_range")
    assert set(check.offending) == {"images:img1", "music:s2-0"} and check.count == 2


def test_split_column(tmp_path):
    rows = make_rows()
    rows["pairs"][0]["_file_split"] = "test"  # a train row in the test file
    check = _only_failure(_broken_build(tmp_path, rows), "split_column")
    assert check.offending == ("data/pairs/test-00000-of-00001.parquet",)


def test_audio_duration_and_decoding(tmp_path):
    rows = make_rows()
    rows["music"][0]["audio"]["bytes"] = flac(1.5)  # says 1 s, holds 1.5 s
    rows["music"][1]["audio"]["bytes"] = b"not flac at all"
    check = _only_failure(_broken_build(tmp_path, rows), "audio_decodes")
    assert check.count == 2 and "s1-0 (12000 frames, expected 8000)" in check.offending
    assert "s1-1 (undecodable)" in check.offending


def test_audio_truncated_stream(tmp_path):
    rows = make_rows()
    data = rows["music"][3]["audio"]["bytes"]
    rows["music"][3]["audio"]["bytes"] = data[: len(data) // 2]  # header still says 8000 frames
    check = _only_failure(_broken_build(tmp_path, rows), "audio_decodes")
    assert check.count == 1 and check.offending[0].startswith("s2-1 (")


def test_audio_one_sample_rate(tmp_path):
    import io

    import numpy as np
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.zeros(16000, dtype="float32"), 16000, format="FLAC")
    rows = make_rows()
    rows["music"][-1]["audio"]["bytes"] = buf.getvalue()  # 1 s at 16 kHz among 8 kHz clips
    check = _only_failure(_broken_build(tmp_path, rows), "audio_decodes")
    assert check.count == 1 and "16000 Hz" in check.offending[0]


def test_images_decode(tmp_path):
    rows = make_rows()
    rows["images"][2]["image"]["bytes"] = b"\x89PNG broken"
    check = _only_failure(_broken_build(tmp_path, rows), "images_decode")
    assert check.offending == ("img2 (UnidentifiedImageError)",)


def test_images_decompression_bomb_guard(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20)  # 8x8 images now look like bombs
    err = _broken_build(tmp_path)
    check = _only_failure(err, "images_decode")
    assert check.count == 4 and "Decompression" in check.offending[0]


def test_music_split_by_song(tmp_path):
    rows = make_rows()
    rows["music"][1]["split"] = "test"  # s1-1 joins the test split; s1-0 stays in train
    # its train pair now names a test clip too
    check = _only_failure(_broken_build(tmp_path, rows), "music_split_by_song", also=("pairs_within_split",))
    assert check.offending == ("s1",)


def test_images_split_by_id(tmp_path):
    rows = make_rows()
    rows["images"].append({**rows["images"][0], "split": "validation"})  # img0 in train and validation
    # ids are unique per table, so the same id in two splits is also a duplicate
    check = _only_failure(_broken_build(tmp_path, rows), "images_split_by_id",
                          also=("unique_ids", "pairs_within_split"))
    assert check.offending == ("img0",)


def test_pairs_reference(tmp_path):
    rows = make_rows()
    rows["pairs"].append({"music_clip_id": "s7-0", "image_id": "img0", "score": 0.1, "split": "train"})
    rows["pairs"].append({"music_clip_id": "s1-0", "image_id": "nope", "score": 0.1, "split": "train"})
    check = _only_failure(_broken_build(tmp_path, rows), "pairs_reference")
    assert check.offending == ("s7-0|img0", "s1-0|nope")


def test_pairs_within_split(tmp_path):
    """A test pair naming a train clip (or image) is the leak the split policy rules out."""
    rows = make_rows()
    rows["pairs"].append({"music_clip_id": "s1-0", "image_id": "img3", "score": 0.1, "split": "test"})
    rows["pairs"].append({"music_clip_id": "s4-0", "image_id": "img0", "score": 0.1, "split": "test"})
    check = _only_failure(_broken_build(tmp_path, rows), "pairs_within_split")
    assert check.offending == ("test:s1-0|img3", "test:s4-0|img0")


def test_caption_fallbacks_match_caption_failures(tmp_path):
    """A row with the fallback's caption needs its rejection in the failures table, and a rejection
    of a clip that has a row needs the fallback's caption; a rejected clip with no row is a lost clip,
    counted by the card, not inconsistent."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = make_rows()
    rows["music"][0]["captioner"] = "descriptor/none/template-v2+mood-labels (fallback from tags-llm/m/tags-v2)"
    rows["music"][1]["captioner"] = "descriptor/none/template-v2+mood-labels (fallback from tags-llm/m/tags-v2)"
    run = write_run(tmp_path / "run", rows)
    failures = run / "failures" / "failures.parquet"
    table = pq.read_table(failures).to_pylist()
    caption_row = {"kind": "clip", "stage": "caption", "error_type": "caption_non_word", "message": "m", "attempts": 3}
    table += [{"item_id": rows["music"][0]["clip_id"], **caption_row},  # consistent: rejected, kept, fallback
              {"item_id": rows["music"][2]["clip_id"], **caption_row},  # rejected, yet its own caption
              {"item_id": "gone-1", **caption_row}]  # rejected and not in the data: lost, not inconsistent
    pq.write_table(pa.Table.from_pylist(table, schema=schema.FAILURE_SCHEMA), failures)
    with pytest.raises(ValidationError) as err:
        build(run)
    check = _only_failure(err.value, "caption_fallbacks")
    assert check.offending == (f"{rows['music'][1]['clip_id']} (fallback caption, no rejection recorded)",
                               f"{rows['music'][2]['clip_id']} (rejection recorded, caption by "
                               f"{rows['music'][2]['captioner']})")


def test_card_numbers_match_data(run_dir, tmp_path, capsys):
    hub = build(run_dir, tmp_path / "hub").out_dir
    readme = hub / "README.md"
    readme.write_text(readme.read_text().replace("num_examples: 4", "num_examples: 5", 1))
    report = validate(hub)
    assert [c.name for c in report.failed] == ["card"]
    assert report.check("card").offending == ("music/train (card 5, data 4)",)
    assert main(["validate", str(hub)]) == 1
    assert "FAIL card" in capsys.readouterr().out


def test_card_yaml_must_parse(run_dir, tmp_path):
    hub = build(run_dir, tmp_path / "hub").out_dir
    (hub / "README.md").write_text("---\nconfigs: [unclosed\n---\n")
    report = validate(hub)
    assert not report.check("card").ok and "does not parse" in report.check("card").detail


def test_offending_ids_are_capped_with_a_count(tmp_path):
    rows = make_rows()
    for i in range(15):
        rows["pairs"].append({"music_clip_id": f"x{i:02d}", "image_id": "img0", "score": 0.1, "split": "train"})
    check = _only_failure(_broken_build(tmp_path, rows), "pairs_reference")
    assert len(check.offending) == SHOW and check.count == 15 and "(+5 more)" in check.message()


def test_failed_build_exits_non_zero_with_the_check(tmp_path, capsys):
    rows = make_rows()
    rows["images"][0]["arousal"] = -0.5
    run = write_run(tmp_path / "run", rows)
    assert main(["build", str(run)]) == 1
    err = capsys.readouterr().err
    assert "FAIL va_range" in err and "images:img0" in err
