"""Where the trained musicnn weights are: the installed wheel's checkpoint folders, found without
importing the wheel (it imports TensorFlow) or torch, so the pipeline's launcher checks them cheaply."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from captioner.tagger.vocab import VOCABULARIES

INSTALL_HINT = "pip install --no-deps musicnn==0.1.0 (or `make`, which installs it)"


class TaggerWeightsMissing(RuntimeError):
    """The musicnn wheel (which holds the trained weights) is not installed."""


def musicnn_dir() -> Path:
    """The installed musicnn package's folder."""
    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        raise TaggerWeightsMissing(f"the musicnn package (trained tagger weights) is not installed: {INSTALL_HINT}")
    return Path(list(spec.submodule_search_locations)[0])


def known(name: str) -> str:
    """``name`` if it is a tagger this package has a vocabulary for, else ValueError."""
    if name not in VOCABULARIES:
        raise ValueError(f"unknown tagger {name!r}; known: {sorted(VOCABULARIES)}")
    return name


def checkpoint_prefix(name: str) -> str:
    """The checkpoint prefix of the model ``name`` inside the musicnn wheel (its files are ``.index`` ...)."""
    folder = musicnn_dir() / known(name)
    if not (folder / ".index").is_file():
        raise TaggerWeightsMissing(f"{folder} holds no checkpoint: reinstall musicnn 0.1.0: {INSTALL_HINT}")
    return str(folder) + "/"
