"""The one error type of the zero-shot tasks: a user input that cannot be used."""
from __future__ import annotations


class ZeroShotError(ValueError):
    """Bad input to a zero-shot task (a missing file, an unknown clip id, no target VA...).

    The command line prints it as ``error: ...`` and exits with status 2.
    """
