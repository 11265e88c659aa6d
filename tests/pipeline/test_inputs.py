"""Workers read the inputs: the Beam graph stays the same size whatever the inputs hold."""
from __future__ import annotations

from pathlib import Path

import apache_beam as beam
import pytest

from pipeline import graph
from pipeline import run as run_mod
from pipeline.inputs import InputSpec, check_inputs, input_specs
from pipeline.options import build_parser

IMEMNET = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "imemnet"
BASE = ["--demo_songs", "1", "--demo_images", "0", "--captioner", "descriptor"]


def proto_bytes(tmp_path, *args: str) -> int:
    """Size of the serialised Beam pipeline the run would submit (what a runner's job request carries)."""
    opts, beam_args = build_parser().parse_known_args(
        [*BASE, "--output", str(tmp_path / "out"), "--cache_dir", str(tmp_path / "cache"), *args])
    p = beam.Pipeline(options=run_mod.beam_options(beam_args))
    graph.build(p, input_specs(opts), run_mod.graph_config(opts, None))
    return len(p.to_runner_api().SerializeToString())


def _inputs(folder: Path, matching: dict[str, Path], images_csv: Path) -> list[str]:
    args = ["--images_csv", str(images_csv), "--images_dir", str(folder)]
    for split, path in matching.items():
        args += ["--matching_file", f"{split}={path}"]
    return args


@pytest.mark.skipif(not IMEMNET.is_dir(), reason="IMEMNet's real files (../shared/data/imemnet) are not here")
def test_graph_size_does_not_depend_on_the_inputs(tmp_path):
    (tmp_path / "test.txt").write_text("725-16 3053 0.5\n")
    (tmp_path / "val.txt").write_text("725-17 3053 0.5\n")
    (tmp_path / "image_va.csv").write_text(",img,valence,arousal\n0,3053,0.5,0.5\n")
    tiny = proto_bytes(tmp_path, *_inputs(tmp_path, {"test": tmp_path / "test.txt", "validation": tmp_path / "val.txt"},
                                          tmp_path / "image_va.csv"))
    real = proto_bytes(tmp_path, *_inputs(tmp_path, {"test": IMEMNET / "test_matching.txt",
                                                     "validation": IMEMNET / "val_matching.txt"},
                                          IMEMNET / "image_va.csv"))
    # 34,910 matching lines and 24,758 image rows used to be pickled into the graph (1.58 MB)
    assert abs(real - tiny) < 1000, (real, tiny)
    assert real < 300_000


def test_workers_list_the_same_items_as_the_launcher(tmp_path):
    (tmp_path / "m.txt").write_text("a-1 x 0.5\na-1 x 0.6\nbad line\n")
    opts, _ = build_parser().parse_known_args(
        [*BASE, "--cache_dir", str(tmp_path / "cache"), "--matching_file", f"test={tmp_path / 'm.txt'}"])
    specs = input_specs(opts)
    assert [s.reader for s in specs] == ["songs", "matching"]
    listed = check_inputs(specs)
    assert (listed.songs, listed.images, listed.pairs, listed.rejected_rows) == (1, 0, 1, 2)
    import pickle

    again = pickle.loads(pickle.dumps(specs[1])).read()  # as a worker process gets it
    assert [(p.music_clip_id, p.image_id, p.split) for p in again.pairs] == [("a-1", "x", "test")]
    assert sorted(f.error_type for f in again.failures) == ["duplicate_id", "malformed_row"]
    assert isinstance(specs[0], InputSpec) and len(pickle.dumps(specs)) < 5000


def test_an_unusable_input_stops_the_run_before_any_worker_starts(tmp_path):
    with pytest.raises(run_mod.InputError, match="nope.txt"):
        run_mod.run([*BASE, "--output", str(tmp_path / "out"), "--cache_dir", str(tmp_path / "cache"),
                     "--matching_file", f"test={tmp_path / 'nope.txt'}"])
    assert not (tmp_path / "out").exists()
