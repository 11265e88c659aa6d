"""musicnn music taggers (MagnaTagATune and Million Song Dataset, 50 tags each) in PyTorch.

The trained weights come from the ``musicnn==0.1.0`` wheel's TensorFlow checkpoints, read
without TensorFlow (:mod:`captioner.tagger.checkpoint`). See docs/captioner.md, "Tagger".
The vocabularies (:mod:`captioner.tagger.vocab`) import without torch; the rest loads on first use.
"""
from __future__ import annotations

import importlib
from typing import Any

from captioner.tagger.vocab import MSD_TAGS, MTT_TAGS, VOCABULARIES

_API = ("SignalTags", "Tagger", "TaggerWeightsMissing", "load_tagger", "torch_threads")
__all__ = ["MSD_TAGS", "MTT_TAGS", "VOCABULARIES", *_API]


def __getattr__(name: str) -> Any:
    # The model API imports torch: the schema and the caption vocabulary need only the tag names.
    if name in _API:
        return getattr(importlib.import_module("captioner.tagger.api"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
