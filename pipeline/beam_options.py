"""Beam pipeline options with the defaults this project relies on."""
from __future__ import annotations

from pipeline.beam_import import beam  # Beam without its harmless apitools warning
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from captioner.cores import usable_cores

LOCAL_DIRECT = ("DirectRunner", "SwitchingDirectRunner")
WORKER_FLAGS = ("--direct_num_workers", "--direct_running_mode")
LOG_FLAGS = ("--default_sdk_harness_log_level", "--sdk_harness_log_level_overrides")
# Worker processes log every gRPC channel they open and close (INFO) and warn about options the
# DirectRunner itself passes them (WARNING), at every run; our own modules keep INFO.
QUIET_BEAM_WORKERS = '{"apache_beam": "ERROR", "__main__": "ERROR"}'


def beam_options(beam_args: list[str] | None = None, *, all_cores: bool = False) -> PipelineOptions:
    """Beam options; on DirectRunner, set so that a laptop run never reaches the internet.

    DirectRunner first tries PrismRunner, which downloads a binary from the internet (and logs an
    exception when it cannot). Any ``--update_compatibility_version`` makes it skip Prism; naming
    this very Beam version keeps every transform's current behaviour. With ``all_cores`` (the
    ``pipeline.run`` command), a DirectRunner run given no worker flags gets one worker process per
    core (:func:`default_workers`).
    """
    args = list(beam_args or [])
    runner = PipelineOptions(args).view_as(StandardOptions).runner or "DirectRunner"
    if runner in LOCAL_DIRECT:
        if not any(a.startswith("--update_compatibility_version") for a in args):
            args.append(f"--update_compatibility_version={beam.__version__}")
        if all_cores:
            args += default_workers(args)
        args += quiet_workers(args)
    po = PipelineOptions(args)
    po.view_as(StandardOptions).runner = runner
    return po


def default_workers(args: list[str]) -> list[str]:
    """Worker flags for a DirectRunner run that names none: one worker process per core.

    DirectRunner alone runs everything in one process and thread, which leaves a laptop's other
    cores idle; its ``multi_processing`` mode runs bundles in separate processes, so the songs
    (decoding, descriptors, FLAC: CPU-bound Python) proceed in parallel. Flags the user gives win.
    """
    if any(a.split("=")[0] in WORKER_FLAGS for a in args):
        return []
    cores = usable_cores()
    if cores < 2:
        return []
    return [f"--direct_num_workers={cores}", "--direct_running_mode=multi_processing"]


def quiet_workers(args: list[str]) -> list[str]:
    """Log flags for DirectRunner worker processes: Beam's own chatter only from ERROR up, unless told otherwise.

    Without them each ``multi_processing`` worker prints a dozen INFO lines about its gRPC channels,
    which read like errors and bury the run's own report.
    """
    if "--direct_running_mode=multi_processing" not in args or any(a.split("=")[0] in LOG_FLAGS for a in args):
        return []
    return [f"--sdk_harness_log_level_overrides={QUIET_BEAM_WORKERS}"]


def static_workers(po: PipelineOptions) -> int | None:
    """How many workers a local DirectRunner run splits each stage's input among (once, up front);
    None for runners that move work between workers as they go."""
    if (po.view_as(StandardOptions).runner or "DirectRunner") not in LOCAL_DIRECT:
        return None
    direct = po.view_as(DirectOptions)
    parallel = direct.direct_running_mode in ("multi_processing", "multi_threading")
    return max(1, direct.direct_num_workers or 1) if parallel else 1
