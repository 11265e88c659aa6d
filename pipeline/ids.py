"""Id hygiene and deterministic splits: ids are data, never raw file names."""
from __future__ import annotations

import hashlib
import re

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
SPLIT_FRACTIONS = (("train", 0.8), ("validation", 0.1), ("test", 0.1))


def check_id(raw: object) -> str:
    """Return ``raw`` as a clean id, or raise ValueError saying why it is not one.

    Allowed: letters, digits, ``_ . -``, starting with a letter or digit, at most 128 chars,
    so an id can never name a path outside its folder ("..", "/", "\\", NUL are refused).
    """
    s = str(raw).strip() if raw is not None else ""
    if not s or s.lower() == "nan":
        raise ValueError("empty id")
    if not _SAFE.match(s) or ".." in s:
        raise ValueError(f"id {s!r} has characters outside [A-Za-z0-9_.-] or a '..'")
    return s


def safe_name(item_id: str, suffix: str = "") -> str:
    """A file name for ``item_id`` that is safe whatever the id holds (hash-based)."""
    digest = hashlib.sha256(item_id.encode("utf-8")).hexdigest()[:24]
    return digest + suffix


def split_of(group_id: str, salt: str = "imemnet-c") -> str:
    """Deterministic split of a group (song or image) from a hash of its id."""
    h = int.from_bytes(hashlib.sha256(f"{salt}:{group_id}".encode()).digest()[:8], "big")
    u = h / 2**64
    acc = 0.0
    for name, frac in SPLIT_FRACTIONS:
        acc += frac
        if u < acc:
            return name
    return SPLIT_FRACTIONS[-1][0]
