"""End-to-end tests of ``python -m mmva_model.evaluate`` on the demo pipeline run, plus its plot."""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from dataset_card.schema import va_similarity
from mmva_model import evaluate
from mmva_model.checkpoint import load_checkpoint, save_checkpoint
from mmva_model.config import CROSS_PAIRS, MODALITIES, load_config
from mmva_model.data import DataError, load_split
from mmva_model.evaluation import Predictions, predict_split
from mmva_model.metrics import REGRESSION_METRICS, VA_DIMS, r2, spearman
from mmva_model.model import MMVA
from mmva_model.plots import va_scatter

SPLIT = "validation"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
UNKNOWN_LINES = ["nosuch-1 {image} 0.5", "{clip} nosuch_image 0.5", "nosuch-2 nosuch_image 0.5"]


@dataclass
class Evaluated:
    result: evaluate.EvalResult
    checkpoint: Path
    cache_dir: Path
    hf_cache: Path
    known: Path  # matching file over the split's own ids (+ a few unknown ones)
    unknown: Path  # matching file naming no id of the split
    known_pairs: int


def _matching_files(tmp: Path, data: Path, hf_cache: Path) -> tuple[Path, Path, int]:
    """Every clip x image of the split scored from VA, plus lines naming ids the split lacks."""
    split = load_split(str(data), SPLIT, str(hf_cache))
    lines = [f"{c} {i} {va_similarity(tuple(cv), tuple(iv)):.6f}"
             for c, cv in zip(split.music.ids, split.music.va) for i, iv in zip(split.images.ids, split.images.va)]
    extra = [t.format(clip=split.music.ids[0], image=split.images.ids[0]) for t in UNKNOWN_LINES]
    known, unknown = tmp / "known_matching.txt", tmp / "unknown_matching.txt"
    known.write_text("\n".join(lines + extra) + "\n", encoding="utf-8")
    unknown.write_text("725-16 frame_x 0.3\n725-17 frame_y 0.7\n725-18 COCO_1 0.1\n725-19 COCO_2 0.9\n",
                       encoding="utf-8")
    return known, unknown, len(lines)


@pytest.fixture(scope="module")
def evaluated(demo_data, tmp_path_factory) -> Evaluated:
    """An untrained tiny model evaluated once on the demo run's validation split (default --out)."""
    tmp = tmp_path_factory.mktemp("mmva-eval")
    torch.manual_seed(0)
    ckpt = save_checkpoint(MMVA(load_config("tiny")), tmp / "ckpt", meta={})
    # A private datasets cache: datasets keys a local folder's Arrow copy by its name, not its
    # content, so the shared cache could hand back another folder called "run".
    hf_cache = tmp / "hf"
    known, unknown, n_known = _matching_files(tmp, demo_data, hf_cache)
    cache = tmp / "features"
    result = evaluate.run(["--checkpoint", str(ckpt), "--data", str(demo_data), "--split", SPLIT,
                           "--cache_dir", str(cache), "--hf_cache_dir", str(hf_cache), "--device", "cpu", "--quiet",
                           "--matching", str(known), str(unknown)])
    return Evaluated(result, ckpt, cache, hf_cache, known, unknown, n_known)


def _no_nan(text: str) -> dict:
    def reject(token):
        raise AssertionError(f"metrics.json holds {token}")
    return json.loads(text, parse_constant=reject)


def test_writes_metrics_json_with_every_metric(evaluated, demo_data):
    r = evaluated.result
    assert r.out_dir == evaluated.checkpoint / f"eval-{SPLIT}"
    on_disk = _no_nan((r.out_dir / "metrics.json").read_text(encoding="utf-8"))
    assert on_disk == r.metrics
    m = r.metrics
    assert m["checkpoint"] == str(evaluated.checkpoint)
    assert (m["config"], m["data"], m["split"]) == ("tiny", str(demo_data), SPLIT)
    assert m["cached_tables"] == ["images", "music"]
    assert set(m["va"]) == set(MODALITIES)
    for per in m["va"].values():
        assert set(per) == set(VA_DIMS)
        for d in VA_DIMS:
            assert list(per[d]) == list(REGRESSION_METRICS)
            assert all(isinstance(v, float) for v in per[d].values())
    assert set(m["similarity_spearman"]) == {f"{a}-{b}" for a, b in CROSS_PAIRS}
    assert set(m["retrieval"]) == {"caption->music", "image->music"}
    for r_ in m["retrieval"].values():
        assert list(r_) == ["R@1", "R@5", "R@10", "MRR", "nDCG@10"]
        assert all(0.0 <= v <= 1.0 for v in r_.values())
    # Frozen-backbone features went through the cache folder given.
    assert len(list(evaluated.cache_dir.glob("*/complete.json"))) == 3  # image, music, caption entries


def test_counts_equal_the_split_rows(evaluated, demo_data):
    split = load_split(str(demo_data), SPLIT, str(evaluated.hf_cache))
    m = evaluated.result.metrics
    assert m["counts"] == {"clips": len(split.music), "images": len(split.images)}
    assert m["n"] == {"music": len(split.music), "caption": len(split.music), "image": len(split.images)}
    assert len(split.music) >= 3 and len(split.images) >= 3  # the demo split is big enough to score


def test_metrics_are_recomputable_from_own_predictions(evaluated, demo_data):
    """R^2 in metrics.json is the R^2 of the model's predictions, computed here independently
    (live backbones, no feature cache)."""
    model = load_checkpoint(evaluated.checkpoint).model
    split = load_split(str(demo_data), SPLIT, str(evaluated.hf_cache))
    preds = predict_split(model, split, device=torch.device("cpu"))
    va = evaluated.result.metrics["va"]
    for m, p in preds.items():
        for j, d in enumerate(VA_DIMS):
            assert va[m][d]["r2"] == pytest.approx(r2(p.va_true[:, j], p.va_pred[:, j]), rel=1e-4, abs=1e-6)
    # And the matching-file Spearman is the one of these embeddings' cosines.
    idx_c = {k: i for i, k in enumerate(preds["music"].ids)}
    idx_i = {k: i for i, k in enumerate(preds["image"].ids)}
    cos, score = [], []
    for line in evaluated.known.read_text(encoding="utf-8").splitlines():
        c, i, s = line.split()
        if c in idx_c and i in idx_i:
            cos.append(float(preds["music"].embedding[idx_c[c]] @ preds["image"].embedding[idx_i[i]]))
            score.append(float(s))
    entry = evaluated.result.metrics["matching"][str(evaluated.known)]
    assert entry["spearman"] == pytest.approx(spearman(cos, score), abs=1e-3)


def test_matching_files_report_coverage(evaluated):
    matching = evaluated.result.metrics["matching"]
    assert list(matching) == [str(evaluated.known), str(evaluated.unknown)]
    known = matching[str(evaluated.known)]
    assert known["pairs_present"] == evaluated.known_pairs
    assert known["pairs_total"] == known["lines"] == evaluated.known_pairs + len(UNKNOWN_LINES)
    assert known["problems"] == 0
    assert np.isfinite(known["spearman"]) and -1.0 <= known["spearman"] <= 1.0
    unknown = matching[str(evaluated.unknown)]
    assert unknown == {"spearman": None, "pairs_present": 0, "pairs_total": 4, "lines": 4, "problems": 0}


def test_writes_a_valid_png(evaluated):
    png = evaluated.result.out_dir / "va_scatter.png"
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(png) as im:
        im.verify()
    with Image.open(png) as im:
        w, h = im.size
    assert h > w > 100  # three modality rows, two columns


def test_render_prints_the_table(evaluated):
    text = evaluate.render(evaluated.result)
    for needle in ("image", "music", "caption", "V R²", "A RMSE", "image-music", "caption->music",
                   "image->music", "0/4 pairs present", "metrics.json"):
        assert needle in text, needle
    # the demo's template captions name their own label's mood: the table says so beside them
    assert evaluated.result.metrics["caption_mood_from_labels"] == 1.0
    assert "not an independent measurement" in text


def test_caption_mood_from_labels_reads_the_captioner_ids():
    import datasets

    ids = ["tags-llm/smollm2/tags-v2+mood-labels", "tags-llm/smollm2/tags-v2+mood-none",
           "audio-llm/qwen/audio-v1", "descriptor/none/template-v1"]
    assert evaluate.caption_mood_from_labels(datasets.Dataset.from_dict({"captioner": ids})) == 0.5
    assert evaluate.caption_mood_from_labels(datasets.Dataset.from_dict({"caption": ["x"]})) is None


def _preds(seed: int) -> dict[str, Predictions]:
    rng = np.random.default_rng(seed)
    out = {}
    for m in MODALITIES:
        t = rng.uniform(size=(20, 2)).astype(np.float32)
        out[m] = Predictions([f"{m}{i}" for i in range(20)], t, np.clip(t + rng.normal(0, 0.1, t.shape), 0, 1),
                             np.eye(20, 4, dtype=np.float32))
    return out


def test_va_scatter_is_deterministic(tmp_path):
    a = va_scatter(_preds(0), tmp_path / "a.png")
    b = va_scatter(_preds(0), tmp_path / "sub" / "b.png")
    c = va_scatter(_preds(1), tmp_path / "c.png")
    assert a.read_bytes()[:8] == PNG_SIGNATURE
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_missing_checkpoint_exits_2(tmp_path, capsys, demo_data):
    rc = evaluate.main(["--checkpoint", str(tmp_path / "nothing"), "--data", str(demo_data), "--quiet",
                        "--hf_cache_dir", str(tmp_path / "hf")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("error: no MMVA checkpoint at") and str(tmp_path / "nothing") in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_missing_matching_file_exits_2(evaluated, tmp_path, capsys, demo_data):
    rc = evaluate.main(["--checkpoint", str(evaluated.checkpoint), "--data", str(demo_data),
                        "--hf_cache_dir", str(tmp_path / "hf"), "--matching", str(tmp_path / "absent.txt")])
    assert rc == 2
    assert "error:" in capsys.readouterr().err


def _with_nan_valence(src: Path, dst: Path) -> str:
    """A copy of the run with one validation clip's valence set to NaN; returns that clip's id."""
    shutil.copytree(src, dst)
    shard = next((dst / "data" / "music").glob(f"{SPLIT}-*.parquet"))
    table = pq.read_table(shard)
    valence = table.column("valence").to_pylist()
    valence[1] = float("nan")
    i = table.schema.get_field_index("valence")
    table = table.set_column(i, table.schema.field(i), pa.array(valence, table.schema.field(i).type))
    table = table.replace_schema_metadata(pq.read_schema(shard).metadata)  # keep the HF features
    pq.write_table(table, shard)
    return table.column("clip_id")[1].as_py()


def test_nan_valence_is_a_data_error_naming_the_row(evaluated, demo_data, tmp_path, capsys):
    bad_id = _with_nan_valence(demo_data, tmp_path / "run")
    argv = ["--checkpoint", str(evaluated.checkpoint), "--data", str(tmp_path / "run"), "--split", SPLIT,
            "--cache_dir", str(tmp_path / "features"), "--hf_cache_dir", str(tmp_path / "hf"),
            "--out", str(tmp_path / "out"), "--quiet"]
    with pytest.raises(DataError, match=bad_id):
        evaluate.run(argv)
    assert evaluate.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: table 'music' (validation)") and err.count("\n") == 1
    assert bad_id in err and "NaN" in err
    assert not (tmp_path / "out").exists()


def test_pairs_table_is_scored_and_dropped_pairs_named(evaluated, demo_data, tmp_path):
    """The split's pairs table is scored; pairs naming rows outside the split are counted by reason."""
    from tests.mmva_model.conftest import copy_run_with

    extra = lambda rows: rows + [dict(rows[0], music_clip_id="nosuch-1"), dict(rows[0], image_id="nosuch_img"),  # noqa: E731
                                 dict(rows[0], music_clip_id="nosuch-2", image_id="nosuch_img")]
    data = copy_run_with(demo_data, tmp_path / "run", "pairs", SPLIT, extra)
    n = len(pq.read_table(next((demo_data / "data" / "pairs").glob(f"{SPLIT}-*.parquet"))))
    result = evaluate.run(["--checkpoint", str(evaluated.checkpoint), "--data", str(data), "--split", SPLIT,
                           "--out", str(tmp_path / "eval"), "--no-cache", "--hf_cache_dir", str(tmp_path / "hf"),
                           "--device", "cpu", "--quiet"])
    pairs = result.metrics["pairs"]
    assert (pairs["rows"], pairs["used"]) == (n + 3, n)
    assert pairs["dropped"] == {"clip_not_in_split": 1, "image_not_in_split": 1, "clip_and_image_not_in_split": 1}
    assert pairs["spearman"] is None or -1.0 <= pairs["spearman"] <= 1.0
    assert "dropped 1 clip_and_image_not_in_split" in evaluate.render(result)
