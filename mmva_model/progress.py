"""Hugging Face's own progress bars, shown only when ours are."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def hf_progress(show: bool) -> Iterator[None]:
    """Hugging Face's own progress bars (transformers "Loading weights", datasets "Generating
    split") only when ours are shown too; restored afterwards."""
    import datasets
    from transformers.utils import logging as hf_logging

    was = (hf_logging.is_progress_bar_enabled(), datasets.is_progress_bar_enabled())
    if not show:
        hf_logging.disable_progress_bar()
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was[0]:
            hf_logging.enable_progress_bar()
        if was[1]:
            datasets.enable_progress_bars()
