"""DirectRunner worker processes run our entry point, with bounded library threads."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.portability import python_urns
from apache_beam.portability.api import beam_runner_api_pb2

from pipeline import beam_worker, local_runner
from pipeline.beam_options import beam_options

ROOT = Path(__file__).resolve().parents[2]


def test_worker_command_shares_the_cores_among_workers():
    assert local_runner.worker_command(2, cores=2).endswith("-m pipeline.beam_worker --library_threads=1")
    assert local_runner.worker_command(2, cores=8).endswith("--library_threads=4")
    assert local_runner.worker_command(16, cores=2).endswith("--library_threads=1")  # never 0
    assert local_runner.worker_command(1, cores=4).startswith(sys.executable)


def test_threads_the_user_set_are_kept():
    env = {"OMP_NUM_THREADS": "3"}
    added = beam_worker.cap_library_threads(2, env)
    assert env["OMP_NUM_THREADS"] == "3" and "OMP_NUM_THREADS" not in added
    assert {env[v] for v in beam_worker.THREAD_VARIABLES if v != "OMP_NUM_THREADS"} == {"2"}
    assert beam_worker.cap_library_threads(None, {}) == {}


def test_only_multi_processing_direct_runs_use_it():
    assert local_runner.uses_worker_processes(beam_options(["--direct_num_workers=2", "--direct_running_mode=multi_processing"]))
    assert not local_runner.uses_worker_processes(beam_options(["--direct_num_workers=1"]))
    assert not local_runner.uses_worker_processes(beam_options(["--runner=DaskRunner", "--direct_running_mode=multi_processing"]))


def test_beams_worker_command_is_replaced_and_nothing_else(monkeypatch):
    seen = {}
    monkeypatch.setattr(local_runner.fn_runner.FnApiRunner, "run_via_runner_api",
                        lambda self, proto, options: seen.setdefault("envs", dict(proto.components.environments)))
    proto = beam_runner_api_pb2.Pipeline()
    envs = proto.components.environments
    envs["beam"].CopyFrom(beam_runner_api_pb2.Environment(
        urn=python_urns.SUBPROCESS_SDK, payload=local_runner.BEAM_WORKER_COMMAND.encode()))
    envs["other"].CopyFrom(beam_runner_api_pb2.Environment(urn=python_urns.SUBPROCESS_SDK, payload=b"my worker"))
    runner = local_runner.LocalRunner()
    runner._num_workers = 2
    runner.run_via_runner_api(proto, PipelineOptions([]))
    assert seen["envs"]["beam"].payload == local_runner.worker_command(2).encode()
    assert seen["envs"]["other"].payload == b"my worker"


def test_the_command_beam_would_run_is_still_the_one_we_replace():
    """If a Beam upgrade changes its worker command, the replacement would silently stop: fail here."""
    import inspect

    from apache_beam.runners.portability.fn_api_runner import fn_runner

    assert "-m apache_beam.runners.worker.sdk_worker_main" in inspect.getsource(fn_runner.FnApiRunner.run_pipeline)


def test_the_worker_entry_point_has_help():
    proc = subprocess.run([sys.executable, "-m", "pipeline.beam_worker", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--library_threads" in proc.stdout


def test_a_finished_worker_exits_without_waiting_for_its_threads_yet_runs_its_exit_handlers(tmp_path):
    # A thread left running (as Beam's gRPC and pool threads are) would hold a normal exit for 60 s,
    # past the timeout.
    script = (
        "import atexit, sys, threading, time\n"
        f"atexit.register(lambda: open({str(tmp_path / 'cleaned')!r}, 'w').write('yes'))\n"
        "threading.Thread(target=time.sleep, args=(60,)).start()\n"
        "print('written', end='')\n"
        "from pipeline.beam_worker import exit_now\n"
        "exit_now()\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=50, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout == "written", proc.stderr
    assert (tmp_path / "cleaned").read_text() == "yes"


def test_the_launcher_checks_the_taggers_without_importing_torch():
    # torch costs the launcher seconds of start-up that every run pays; only workers need it.
    script = ("import sys, pipeline.run\n"
              "from pipeline.tagging import tagger_models\n"
              "assert tagger_models('musicnn')\n"
              "print(sorted(m for m in ('torch', 'transformers', 'tensorflow') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr
