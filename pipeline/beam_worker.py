"""Entry point of the DirectRunner's worker processes: Beam's own SDK harness, started our way.

Beam starts each ``multi_processing`` worker as ``python -m apache_beam.runners.worker.sdk_worker_main``;
:mod:`pipeline.local_runner` starts this module instead, which differs in these things only:

- Beam is imported through :mod:`pipeline.beam_import`, so a worker prints no apitools warning;
- freed memory goes back to the system as the run goes (:mod:`pipeline.memory`);
- once its harness is done, the process ends at once (:func:`exit_now`), without the interpreter's
  teardown;
- with ``--library_threads N``, numerical libraries (OpenBLAS, MKL, OpenMP, numba) get ``N``
  threads unless the environment already sets theirs. Each worker would otherwise start one
  thread per core, so that two workers on two cores run four busy threads whose spinning and
  switching cost about a fifth more CPU time than the work itself.
"""
from __future__ import annotations

import argparse
import atexit
import os
import sys

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m pipeline.beam_worker",
                                 description="A DirectRunner worker process (started by the pipeline, not by hand).")
    ap.add_argument("--library_threads", type=int, default=None,
                    help="threads per numerical library in this worker, unless the environment sets them")
    return ap.parse_args(argv)


def cap_library_threads(threads: int | None, environ=os.environ) -> dict[str, str]:
    """Set each library's thread count the environment leaves unset; returns what was set."""
    if not threads:
        return {}
    added = {name: str(threads) for name in THREAD_VARIABLES if name not in environ}
    environ.update(added)
    return added


def main(argv: list[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    cap_library_threads(args.library_threads)  # before numpy, numba or Beam are imported
    from pipeline.beam_import import beam  # noqa: F401  Beam without its apitools warning
    from apache_beam.runners.worker import sdk_worker_main

    from pipeline.memory import keep_returning_freed_memory

    keep_returning_freed_memory()

    sdk_worker_main.main([sys.argv[0]])  # returns once the launcher closes the control stream
    exit_now()


def exit_now(code: int = 0) -> None:
    """End this process now: run what modules registered with ``atexit`` (a shared model server's
    clean-up, logging's flush), flush the standard streams, and skip the rest of the teardown.

    The launcher waits for each worker's exit before it finishes the run, and a worker's normal
    exit (joining Beam's gRPC and pool threads, then freeing the whole heap, models included) took
    1 to 3 s at the end of every run, with the work already written.
    """
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
