"""Credentials out of everything a run records: URL user info, query strings and fragments.

A URL on the command line or in a CSV may carry ``user:password@`` or a signed query string
(``?X-Amz-Signature=...``). Logs, ``run.json``, failure rows and the dataset card keep the
scheme, host and path (enough to say what failed) and drop the rest.
"""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# scheme://, then user info up to the last "@" before the path, host and path, query/fragment
_URL = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*://)(?:[^\s/'\"<>]*@)?([^\s?#'\"<>]*)(?:[?#][^\s'\"<>]*)?")


def redact_url(url: str) -> str:
    """``url`` without query string, fragment or user info: those can hold tokens."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def redact_text(text: str) -> str:
    """Strip query strings, fragments and user info from every URL inside a free-text message."""
    return _URL.sub(r"\1\2", text)


def redact_value(value: Any) -> Any:
    """``value`` with :func:`redact_text` applied to every string inside it (lists, tuples, dicts)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v) for v in value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    return value
