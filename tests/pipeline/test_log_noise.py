"""Known-harmless noise stays out of a run's stderr, so that what is left there means something."""
from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APITOOLS = "apitools not found"
OUR_INFO = re.compile(r"^(\S+ \S+ )?INFO[: ](pipeline|captioner)[.:]")


@pytest.mark.parametrize("workers", [
    ["--direct_num_workers=1"],  # everything in the launcher's process
    ["--direct_num_workers=2", "--direct_running_mode=multi_processing"],  # what a user's plain command runs on 2+ cores
])
def test_a_pipeline_run_prints_no_apitools_warning(tmp_path, workers):
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.run", "--output", str(tmp_path / "out"), "--cache_dir", str(tmp_path / "cache"),
         "--demo_songs", "2", "--demo_song_seconds", "20", "--demo_images", "2", "--pairs_per_clip", "0",
         "--no_progress", "--captioner", "descriptor", *workers],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert APITOOLS not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    # What is left on stderr is the run's own report, nothing from Beam's machinery
    assert [line for line in proc.stderr.splitlines() if not OUR_INFO.search(line)] == [], proc.stderr[-3000:]


def test_only_that_warning_and_only_during_the_import_is_dropped():
    script = textwrap.dedent('''
        import logging
        from pipeline.beam_import import APITOOLS_WARNING, without_apitools_warning
        import pipeline.run  # imports Beam through the guard
        with without_apitools_warning():
            logging.warning(APITOOLS_WARNING + " (dropped)")
            logging.error("a real error during an import")
        assert logging.getLogger().handlers == [], logging.getLogger().handlers  # no basicConfig behind our back
        logging.getLogger("pipeline").error("a real error after it")
        logging.warning(APITOOLS_WARNING + " (after the import: kept)")
    ''')
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    assert [line for line in lines if "real error" in line or APITOOLS in line] == [
        "a real error during an import", "a real error after it",
        # logging.warning itself runs basicConfig here, as it would without us
        "WARNING:root:apitools not found, and bigquery client libraries are not available (after the import: kept)"], lines
