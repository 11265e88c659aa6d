"""Caption-report flags per clip, from the caption audit (``captioner.audit.flag_caption``).

The page filters on three of them: a repeated phrase (a 3-word phrase, or a fact stated twice in a
sentence), a self-contradiction, a grounding failure.
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

FLAG_NAMES = {  # page column -> what the filter says
    "flag_repeated": "repeated phrase or fact",
    "flag_contradiction": "contradiction",
    "flag_grounding": "grounding failure",
}


@dataclass(frozen=True)
class ClipFlags:
    """The flags of one clip as the page stores them."""

    repeated: bool = False  # a repeated 3-word phrase, or a fact stated twice in a sentence
    contradiction: bool = False
    grounding: tuple[str, ...] = ()  # attributes the caption gets wrong

    def columns(self) -> dict[str, object]:
        return {"flag_repeated": self.repeated, "flag_contradiction": self.contradiction,
                "flag_grounding": bool(self.grounding), "grounding": ", ".join(self.grounding)}


def audit_function():
    """``flag_caption`` of the caption audit, or None (with the reason logged) when it is not there."""
    try:
        return importlib.import_module("captioner.audit").flag_caption
    except (ImportError, AttributeError) as e:
        log.warning("caption flags unavailable (%s): the page's flag filters will match nothing", e)
        return None


def flag_clips(clips: list[dict], flag_caption) -> list[ClipFlags]:
    """Flags of every clip; a clip without a caption has none (descriptors/VA may be missing)."""
    if flag_caption is None:
        return [ClipFlags() for _ in clips]
    out = []
    for c in clips:
        if not c.get("caption"):
            out.append(ClipFlags())
            continue
        f = flag_caption(c["caption"], c.get("descriptors"), c.get("valence"), c.get("arousal"),
                         c.get("captioner") or "")
        out.append(ClipFlags(bool(f.repeated_phrase or f.restated), bool(f.self_contradiction),
                             tuple(f.grounding_failures)))
    return out
