"""Beam pipeline options with the defaults this project relies on."""
from __future__ import annotations

from pipeline.beam_import import beam  # Beam without its harmless apitools warning
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

LOCAL_DIRECT = ("DirectRunner", "SwitchingDirectRunner")


def beam_options(beam_args: list[str] | None = None) -> PipelineOptions:
    """Beam options; on DirectRunner, set so that a laptop run never reaches the internet.

    DirectRunner first tries PrismRunner, which downloads a binary from the internet (and logs an
    exception when it cannot). Any ``--update_compatibility_version`` makes it skip Prism; naming
    this very Beam version keeps every transform's current behaviour.
    """
    args = list(beam_args or [])
    runner = PipelineOptions(args).view_as(StandardOptions).runner or "DirectRunner"
    if runner in LOCAL_DIRECT and not any(a.startswith("--update_compatibility_version") for a in args):
        args.append(f"--update_compatibility_version={beam.__version__}")
    po = PipelineOptions(args)
    po.view_as(StandardOptions).runner = runner
    return po
