"""How many CPU threads a process computes with: every core it was given, shared between the
processes of one machine, unless the user chose a count.

``accelerate launch`` sets ``OMP_NUM_THREADS`` in the processes it starts when the variable is
unset: to 1, or (with ``--cpu``) to the physical cores divided by the local processes. That keeps
several processes from oversubscribing a machine, but leaves a single CPU process on one core.
The value alone cannot say who set it, so a value equal to what accelerate would have set, in a
process accelerate started, is taken as its default and replaced by this process's share of the
cores; any other value is the user's and is kept. ``--threads N`` overrides both.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch

from captioner.cores import usable_cores as available_cores

# Variables `accelerate launch` puts in the environment of every process it starts.
ACCELERATE_MARKERS = ("ACCELERATE_MIXED_PRECISION", "ACCELERATE_DYNAMO_BACKEND")
# Launchers' counts of processes on this machine (torchrun, MPI flavours), first found wins.
LOCAL_SIZE_VARS = ("LOCAL_WORLD_SIZE", "MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "MV2_COMM_WORLD_LOCAL_SIZE")


@dataclass(frozen=True)
class ThreadChoice:
    """Threads for this process (None: leave torch's count as it is) and why."""

    threads: int | None
    reason: str


def physical_cores() -> int:
    """Physical cores as accelerate counts them (psutil), for recognising its default."""
    import psutil

    return psutil.cpu_count(logical=False) or available_cores()


def local_processes(env: Mapping[str, str], fallback: int = 1) -> int:
    """Processes on this machine by the launcher's variables, else ``fallback``."""
    for name in LOCAL_SIZE_VARS:
        value = env.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return max(1, fallback)


def accelerate_defaults(physical: int, local: int) -> set[int]:
    """The OMP_NUM_THREADS values ``accelerate launch`` sets when the variable is unset."""
    return {1, max(1, physical // local)}


def choose_threads(env: Mapping[str, str], *, cores: int, local: int, physical: int,
                   requested: int = 0) -> ThreadChoice:
    """Threads for one of ``local`` processes sharing ``cores`` (see the module docstring)."""
    share = max(1, cores // max(1, local))
    if requested > 0:
        return ThreadChoice(requested, "--threads")
    omp = env.get("OMP_NUM_THREADS", "").strip()
    split = f"{cores} cores / {local} process{'es' if local > 1 else ''}"
    if not omp:
        return ThreadChoice(share, split)
    launched = any(k in env for k in ACCELERATE_MARKERS)
    if launched and omp.isdigit() and int(omp) in accelerate_defaults(physical, local):
        return ThreadChoice(share, f"{split}, in place of accelerate launch's default OMP_NUM_THREADS={omp}")
    if omp.isdigit() and int(omp) > 0:
        return ThreadChoice(int(omp), f"OMP_NUM_THREADS={omp} set by the user")
    return ThreadChoice(None, f"OMP_NUM_THREADS={omp!r} left to torch")


def apply_threads(choice: ThreadChoice) -> int:
    """Set torch's intra-op threads to the choice; the count in effect."""
    if choice.threads is not None:
        torch.set_num_threads(choice.threads)
    return torch.get_num_threads()


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``n`` inside the block, restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
