"""The run's inputs as a handful of small specs that workers read, instead of every item in the graph.

A Beam graph that carries its inputs (``beam.Create`` of every song, image and pair) grows with them:
IMEMNet's two matching files and ``image_va.csv`` alone made a 1.6 MB pipeline proto, heading for
the runner's job-size limit, and the launcher shipped every item through it. Here the graph holds
one :class:`InputSpec` per input (the song source, the image CSV, each matching file: a few hundred
bytes each); a worker lists each input with the very same source code, and the items are
redistributed across workers from there.

The launcher still lists every input once (:func:`check_inputs`) before building the graph, so
that an unusable file stops the run with a one-line error instead of a worker traceback, and so
that the progress bars and ``run.json`` know the totals; it keeps only the counts.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable, Iterator

from pipeline.beam_import import beam  # Beam without its harmless apitools warning
from pipeline.sources.base import SONG_SOURCES, SourceItems
from pipeline.types import Failure, ImageTask, PairTask, SongTask


@dataclass(frozen=True)
class InputSpec:
    """One input of the run: which reader, with which flags (and for a matching file, its split)."""

    reader: str  # a key of READERS
    opts: argparse.Namespace
    path: str | None = None
    split: str | None = None

    def read(self) -> SourceItems:
        return READERS[self.reader](self)


def _songs(spec: InputSpec) -> SourceItems:
    import pipeline.sources  # noqa: F401  (registers the sources, also in a fresh worker process)

    return SONG_SOURCES[spec.opts.source](spec.opts).items()


def _images(spec: InputSpec) -> SourceItems:
    from pipeline.sources.images import image_items

    return image_items(spec.opts)


def _matching(spec: InputSpec) -> SourceItems:
    from pipeline.sources.pairs import read_matching_file

    return read_matching_file(spec.path, spec.split)


READERS: dict[str, Callable[[InputSpec], SourceItems]] = {"songs": _songs, "images": _images, "matching": _matching}


def input_specs(opts: argparse.Namespace) -> list[InputSpec]:
    """The inputs ``opts`` names: the song source, the image CSV if any, each matching file."""
    import pipeline.sources  # noqa: F401  (registers the sources)

    specs = [InputSpec("songs", opts)]
    if getattr(opts, "images_csv", None):
        specs.append(InputSpec("images", opts))
    specs += [InputSpec("matching", opts, path, split) for split, path in getattr(opts, "matching_file", [])]
    return specs


@dataclass(frozen=True)
class Listed:
    """What the inputs hold, counted on the launcher."""

    songs: int = 0
    images: int = 0
    pairs: int = 0
    rejected_rows: int = 0

    def add(self, items: SourceItems) -> "Listed":
        return Listed(self.songs + len(items.songs), self.images + len(items.images),
                      self.pairs + len(items.pairs), self.rejected_rows + len(items.failures))


def check_inputs(specs: list[InputSpec]) -> Listed:
    """List every input once (raising ValueError/OSError for an unusable one) and count its items.

    Also prepares what later reads reuse: the demo source synthesises its files into the cache, a
    DEAM archive is fetched and extracted there.
    """
    listed = Listed()
    for spec in specs:
        listed = listed.add(spec.read())  # the items themselves are dropped here
    return listed


def _read(spec: InputSpec) -> Iterator[tuple[int, SongTask | ImageTask | PairTask | Failure]]:
    """Every item of one input, keyed by its position (the key only spreads items over workers)."""
    items = spec.read()
    yield from enumerate([*items.songs, *items.images, *items.pairs, *items.failures])


@dataclass(frozen=True)
class Inputs:
    """The items read by the workers, by kind (PCollections)."""

    songs: beam.PCollection
    images: beam.PCollection
    pairs: beam.PCollection
    failures: beam.PCollection


def read_inputs(p: beam.Pipeline, specs: list[InputSpec]) -> Inputs:
    """Each spec read by a worker; items redistributed so that the songs spread over all workers.

    Four filters rather than a multi-output ParDo: DaskRunner (Beam 2.77) sends every element of
    a multi-output ParDo to one of its outputs.
    """
    items = (p
             | "InputSpecs" >> beam.Create(specs)
             | "ReadInputs" >> beam.FlatMap(_read)
             | "SpreadInputs" >> beam.GroupByKey()  # a plain GroupByKey, not Reshuffle: it runs the same everywhere
             | "InputItems" >> beam.FlatMap(lambda kv: kv[1]))
    kinds = {"songs": SongTask, "images": ImageTask, "pairs": PairTask, "failures": Failure}
    return Inputs(**{k: items | f"Input{k.title()}" >> beam.Filter(lambda x, t=t: isinstance(x, t))
                     for k, t in kinds.items()})
