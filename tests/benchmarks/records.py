"""Where and how benchmarks write their JSON records (``runs/bench/<name>.json``)."""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parents[2] / "runs" / "bench"


def machine(**extra: str) -> dict:
    """The machine a figure was measured on, plus any library versions the caller names."""
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), **extra}


def write_record(name: str, record: dict) -> Path:
    """Write ``record`` (with the machine and time added when missing) as ``runs/bench/<name>``."""
    record = {"machine": machine(), "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **record}
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / name
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path
