"""How many cores this process may use: one answer for the pipeline, the captioner, the trainer and
the explorer. It lives in the captioner, the package the others build on, because the captioning
job also runs where the pipeline's dependencies (Beam) are not installed."""
from __future__ import annotations

import os


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
