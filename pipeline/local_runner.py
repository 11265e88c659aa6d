"""The runner behind ``--runner=DirectRunner`` in ``multi_processing`` mode: Beam's FnApiRunner
with worker processes started as :mod:`pipeline.beam_worker`.

Everything else (stages, bundles, shuffles, the worker protocol) is Beam's own, so output stays
byte-identical to a one-worker run.
"""
from __future__ import annotations

import sys

from pipeline.beam_import import beam  # noqa: F401  Beam without its apitools warning
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
from apache_beam.portability import python_urns
from apache_beam.runners.portability.fn_api_runner import fn_runner

from pipeline.beam_options import LOCAL_DIRECT, usable_cores

# What FnApiRunner.run_pipeline puts in the pipeline for multi_processing workers (Beam 2.x).
BEAM_WORKER_COMMAND = f"{sys.executable} -m apache_beam.runners.worker.sdk_worker_main"


def worker_command(workers: int, cores: int | None = None) -> str:
    """Shell command of one worker process: our entry point, with a fair share of the cores' threads."""
    threads = max(1, (cores or usable_cores()) // max(1, workers))
    return f"{sys.executable} -m pipeline.beam_worker --library_threads={threads}"


class LocalRunner(fn_runner.FnApiRunner):
    """FnApiRunner whose subprocess workers run :mod:`pipeline.beam_worker`."""

    def run_via_runner_api(self, pipeline_proto, options):
        ours = worker_command(self._num_workers).encode()
        for env in pipeline_proto.components.environments.values():
            if env.urn == python_urns.SUBPROCESS_SDK and env.payload == BEAM_WORKER_COMMAND.encode():
                env.payload = ours
        return super().run_via_runner_api(pipeline_proto, options)


def uses_worker_processes(po: PipelineOptions) -> bool:
    """Whether ``po`` asks the DirectRunner for worker processes."""
    return (po.view_as(StandardOptions).runner in LOCAL_DIRECT
            and po.view_as(DirectOptions).direct_running_mode == "multi_processing")


def local_runner(po: PipelineOptions) -> LocalRunner:
    """A LocalRunner set up as the DirectRunner sets up its FnApiRunner (workers get the options)."""
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(po.get_all_options())
    info = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
    return LocalRunner(provision_info=info)
