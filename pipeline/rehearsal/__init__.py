"""A rehearsal of IMEMNet-C at its real size and shape, with synthetic media.

``python -m pipeline.rehearsal --out DIR [--fraction F]`` writes, from IMEMNet's own
``image_va.csv`` and matching files (or id-compatible stand-ins where they are absent): a DEAM
folder (MP3 audio, per-second and static annotation CSVs) for the songs those files use plus
others up to DEAM's 1,802, an image per id of ``image_va.csv``, the matching files, and
``rehearsal.json`` with what was written, how long it took and the pipeline command to run on it.
"""
