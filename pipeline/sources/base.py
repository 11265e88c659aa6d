"""The one interface every source implements, and the registry that names them."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol

from pipeline.types import Failure, ImageTask, PairTask, SongTask


@dataclass
class SourceItems:
    """Everything a source yields: work items plus the rows it already rejected."""

    songs: list[SongTask] = field(default_factory=list)
    images: list[ImageTask] = field(default_factory=list)
    pairs: list[PairTask] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    def extend(self, other: "SourceItems") -> None:
        self.songs += other.songs
        self.images += other.images
        self.pairs += other.pairs
        self.failures += other.failures


class Source(Protocol):
    """A source lists its items on the launcher; heavy work happens in the pipeline."""

    name: str

    def items(self) -> SourceItems: ...


SourceFactory = Callable[[argparse.Namespace], Source]
SONG_SOURCES: dict[str, SourceFactory] = {}


def register(name: str) -> Callable[[SourceFactory], SourceFactory]:
    """Class decorator adding a source factory to :data:`SONG_SOURCES` under ``name``."""

    def deco(factory: SourceFactory) -> SourceFactory:
        SONG_SOURCES[name] = factory
        return factory

    return deco


def iter_valid(items: Iterator[SongTask | Failure]) -> SourceItems:
    """Split a stream of tasks and failures into a :class:`SourceItems`."""
    out = SourceItems()
    for it in items:
        (out.failures if isinstance(it, Failure) else out.songs).append(it)
    return out
