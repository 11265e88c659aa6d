"""Song sources, one module each; importing this package registers them by name."""
from pipeline.sources import clips, deam, demo, manifest  # noqa: F401
