"""Apache Beam, imported without its one known-harmless start-up warning.

Without the optional GCP client libraries (we use none), ``import apache_beam`` logs
``WARNING:root:apitools not found, and bigquery client libraries are not available despite the
import not raising an ImportError.`` at the start of every run, which users read as a failure.
Pipeline modules import Beam through this module (``from pipeline.beam_import import beam``)
so that exactly that record, from the root logger, during the import only, is dropped; any
other message still reaches stderr. DirectRunner worker processes start as
:mod:`pipeline.beam_worker`, which imports Beam through this module too; Dask workers import
Beam before any code of ours and still print it.

``logging.warning`` on a root logger without handlers would also run ``logging.basicConfig()``,
fixing the format and level of every later line before an entry point configures logging;
while Beam is imported, a stand-in handler prints what logging's last resort would instead.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Iterator

APITOOLS_WARNING = "apitools not found, and bigquery client libraries are not available"


class DropMessage(logging.Filter):
    """Drops records of one logger whose message starts with a given text."""

    def __init__(self, logger_name: str, prefix: str):
        super().__init__()
        self.logger_name, self.prefix = logger_name, prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == self.logger_name and record.getMessage().startswith(self.prefix))


class _LastResort(logging.Handler):
    """Prints like logging does with no handler at all (WARNING and above, bare message)."""

    def emit(self, record: logging.LogRecord) -> None:
        if logging.lastResort is not None:
            logging.lastResort.handle(record)


@contextlib.contextmanager
def without_apitools_warning() -> Iterator[None]:
    root = logging.getLogger()
    drop = DropMessage(root.name, APITOOLS_WARNING)
    stand_in = _LastResort() if not root.handlers else None
    root.addFilter(drop)
    if stand_in is not None:
        root.addHandler(stand_in)
    try:
        yield
    finally:
        root.removeFilter(drop)
        if stand_in is not None:
            root.removeHandler(stand_in)


with without_apitools_warning():
    import apache_beam as beam  # noqa: E402

__all__ = ["beam"]
