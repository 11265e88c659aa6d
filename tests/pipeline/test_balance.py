"""Caption batches dealt out evenly over the workers (pipeline.graph.BalanceBatches)."""
from __future__ import annotations

import argparse
import random
from dataclasses import dataclass

import pytest

from pipeline.beam_import import beam
from apache_beam.testing.util import assert_that, equal_to
from pipeline.beam_options import beam_options, static_workers
from pipeline.graph import BalanceBatches, deal
from pipeline.run import _caption_piles


@dataclass(frozen=True)
class Clip:
    clip_id: str


def _batches(sizes: list[int]) -> list[list[Clip]]:
    return [[Clip(f"s{s:02d}-{i}") for i in range(n)] for s, n in enumerate(sizes)]


def test_deal_spreads_clips_evenly_and_keeps_every_batch_once():
    rng = random.Random(0)
    sizes = [16] * 9 + [rng.randint(1, 15) for _ in range(14)]  # songs' last batches are short
    batches = _batches(sizes)
    for piles in (2, 3, 8):
        dealt = list(deal(batches, piles))
        assert sorted(b[0].clip_id for _, b in dealt) == sorted(b[0].clip_id for b in batches)
        load = [sum(len(b) for p, b in dealt if p == i) for i in range(piles)]
        assert max(load) - min(load) <= max(sizes), load  # longest first onto the lightest pile
        shuffled = batches[:]
        rng.shuffle(shuffled)
        assert list(deal(shuffled, piles)) == dealt  # the plan does not depend on arrival order
    # one worker's songs long, the other's short: per song, 7 vs 1 batches of 16; dealt, 4 and 4
    uneven = _batches([16] * 7 + [16])
    assert sorted(sum(len(b) for p, b in deal(uneven, 2) if p == i) for i in range(2)) == [64, 64]


@pytest.mark.parametrize("piles", [2, None])
def test_balancing_passes_every_batch_through_unchanged(piles):
    batches = _batches([16, 3, 16, 7, 1])
    with beam.Pipeline(options=beam_options([])) as p:
        out = (p | beam.Create(batches) | BalanceBatches(piles)
               | beam.Map(lambda b: tuple(c.clip_id for c in b)))
        assert_that(out, equal_to([tuple(c.clip_id for c in b) for b in batches]))


def test_piles_follow_the_runner():
    on, off = argparse.Namespace(caption_balance=True), argparse.Namespace(caption_balance=False)
    two = beam_options(["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    assert static_workers(two) == 2 and _caption_piles(on, two) == 2
    assert _caption_piles(off, two) == 0
    assert _caption_piles(on, beam_options(["--direct_num_workers=1"])) == 0  # one worker: nothing to balance
    assert _caption_piles(on, beam_options(["--runner=DataflowRunner"])) is None  # it rebalances by itself
