"""Run a command and sample what it costs: wall time, peak RSS summed over its whole process tree
(Beam's worker processes included), and peak disk use of the folders it writes."""
from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass
class Usage:
    wall_s: float
    peak_rss_bytes: int  # highest sum of RSS over the command and all its descendants at one sample
    peak_processes: int
    peak_disk_bytes: int  # highest total size of the watched folders at one sample
    returncode: int
    peak_by_process: tuple[tuple[str, int], ...] = ()  # (process, RSS) at the sample of the summed peak

    def as_dict(self) -> dict:
        return {"wall_s": round(self.wall_s, 2), "peak_rss_gb": round(self.peak_rss_bytes / 2**30, 3),
                "peak_processes": self.peak_processes, "peak_disk_gb": round(self.peak_disk_bytes / 2**30, 3),
                "returncode": self.returncode,
                "rss_at_peak_gb": {name: round(rss / 2**30, 3) for name, rss in self.peak_by_process}}


def tree_rss(proc: psutil.Process) -> tuple[int, int]:
    """(summed RSS, process count) of ``proc`` and its descendants; vanished processes count 0."""
    each = tree_rss_by_process(proc)
    return sum(rss for _, rss in each), len(each)


def tree_rss_by_process(proc: psutil.Process) -> list[tuple[str, int]]:
    """(name, RSS) of ``proc`` and each descendant (name: pid and the module it runs, if any)."""
    try:
        family = [proc] + proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    out = []
    for p in family:
        try:
            out.append((_process_name(p), p.memory_info().rss))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return out


def _process_name(p: psutil.Process) -> str:
    cmd = p.cmdline()
    module = cmd[cmd.index("-m") + 1] if "-m" in cmd[:-1] else os.path.basename(cmd[0]) if cmd else "?"
    return f"{p.pid} {module}"


def folder_bytes(paths: list[Path]) -> int:
    """Allocated bytes under ``paths`` (hard links counted once, like ``du``)."""
    seen, total = set(), 0
    for root in paths:
        for dirpath, _, files in os.walk(root):
            for name in files:
                try:
                    st = os.lstat(os.path.join(dirpath, name))
                except FileNotFoundError:
                    continue
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512
    return total


def measure(cmd: list[str], *, cwd: str | Path | None = None, env: dict | None = None,
            watch: list[Path] = (), interval_s: float = 0.5, disk_every: int = 10, log: Path | None = None) -> Usage:
    """Run ``cmd`` to completion while sampling; output goes to ``log`` (or is discarded)."""
    out = open(log, "wb") if log else subprocess.DEVNULL
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    ps = psutil.Process(proc.pid)
    peak = {"rss": 0, "n": 0, "disk": 0, "each": []}
    stop = threading.Event()

    def sample():
        k = 0
        while not stop.is_set():
            each = tree_rss_by_process(ps)
            rss = sum(r for _, r in each)
            if rss > peak["rss"]:
                peak["rss"], peak["each"] = rss, each
            peak["n"] = max(peak["n"], len(each))
            if watch and k % disk_every == 0:  # walking the tree is slower than reading RSS
                peak["disk"] = max(peak["disk"], folder_bytes(list(watch)))
            k += 1
            stop.wait(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    rc = proc.wait()
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    if watch:
        peak["disk"] = max(peak["disk"], folder_bytes(list(watch)))
    if log:
        out.close()
    return Usage(wall, peak["rss"], peak["n"], peak["disk"], rc, tuple(peak["each"]))


def self_status_mb(field: str) -> float:
    """``VmRSS`` or ``VmHWM`` (peak RSS) of this process, from Linux's /proc: unlike ``ru_maxrss``,
    which a child inherits from its parent across fork and exec, it can be reset."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def reset_self_peak() -> None:
    """Reset this process's peak RSS (``VmHWM``) to its current RSS."""
    Path("/proc/self/clear_refs").write_text("5")  # 5: reset the peak RSS to the current RSS
