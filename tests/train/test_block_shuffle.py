"""Parquet-backed epochs are block-shuffled: row groups in a seeded random order, images
shuffled within a window of a few groups, dealt to DataLoader workers by whole groups."""

from __future__ import annotations

from collections import Counter, OrderedDict
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from oiforge.build import BuildInputs, build_dataset
from oiforge.build.synthetic import make_synthetic
from oiforge.spec import BuildSpec
from oiforge.train.dataset import open_dataset
from oiforge.train.ddp import Dist
from oiforge.train.images import FeedOptions, block_shuffle, deal_blocks, image_feeder

sizes = st.lists(st.integers(1, 12), min_size=1, max_size=10)


def _blocks(block_sizes: list[int]) -> list[int]:
    return [b for b, n in enumerate(block_sizes) for _ in range(n)]


def _reads(order: list[int], blocks: list[int], cache: int) -> int:
    """Row groups read in ``order`` by a process that keeps the last ``cache`` of them."""
    held: OrderedDict[int, None] = OrderedDict()
    reads = 0
    for i in order:
        if blocks[i] in held:
            held.move_to_end(blocks[i])
            continue
        reads += 1
        held[blocks[i]] = None
        if len(held) > cache:
            held.popitem(last=False)
    return reads


def _epoch(blocks: list[int], seed: int, window: int) -> tuple[list[int], list[int]]:
    order = torch.randperm(len(blocks), generator=torch.Generator().manual_seed(seed)).tolist()
    return order, block_shuffle(order, blocks, torch.Generator().manual_seed(seed), window)


@settings(max_examples=60, deadline=None)
@given(sizes, st.integers(1, 4), st.integers(0, 2**31))
def test_a_block_shuffle_is_a_seeded_permutation_reading_each_block_once(
    block_sizes: list[int], window: int, seed: int
) -> None:
    blocks = _blocks(block_sizes)
    order, out = _epoch(blocks, seed, window)
    assert sorted(out) == list(range(len(blocks)))
    assert out == _epoch(blocks, seed, window)[1]
    assert _reads(out, blocks, window) == len(block_sizes)
    for b in set(blocks):  # a block's images lie within one window of blocks, in mixed order
        at = [p for p, i in enumerate(out) if blocks[i] == b]
        mixed = out[at[0] : at[-1] + 1]
        assert len({blocks[i] for i in mixed}) <= window
        assert mixed == [i for i in order if i in set(mixed)]
    if len(block_sizes) <= window:  # one window: the epoch's own order, as folders read it
        assert out == order


def test_block_shuffles_differ_across_epochs_and_keep_repeated_draws() -> None:
    blocks = _blocks([256] * 6 + [100])
    (_, a), (_, b) = _epoch(blocks, 0, 2), _epoch(blocks, 1, 2)
    assert a != b and [blocks[i] for i in a[:512]] != [blocks[i] for i in b[:512]]
    drawn = [0, 0, 5, 300, 300, 300]  # class-balanced draws repeat samples
    assert Counter(block_shuffle(drawn, blocks, torch.Generator(), 1)) == Counter(drawn)


@settings(max_examples=60, deadline=None)
@given(sizes, st.integers(1, 4), st.integers(1, 6), st.randoms(use_true_random=False))
def test_dealt_blocks_give_each_worker_its_own_blocks(
    block_sizes: list[int], parts: int, batch: int, rnd: object
) -> None:
    blocks = _blocks(block_sizes)
    order = list(range(len(blocks)))
    rnd.shuffle(order)  # type: ignore[attr-defined]
    out = deal_blocks(order, blocks, parts, batch)
    assert sorted(out) == sorted(order)
    worker_of = [(p // batch) % parts for p in range(len(out))]
    tail = len(out) - parts * (batch + max(block_sizes))  # where shares run uneven
    readers: dict[int, set[int]] = {}
    for p, i in enumerate(out):
        if p < tail:
            readers.setdefault(blocks[i], set()).add(worker_of[p])
    assert all(len(w) == 1 for w in readers.values())
    for w in range(parts):  # each worker reads its items in the given order
        mine = [i for p, i in enumerate(out) if p < tail and worker_of[p] == w]
        assert mine == [i for i in order if i in set(mine)]


@pytest.fixture(scope="module")
def parquet_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("blocks")
    s = make_synthetic(tmp / "synth", 30)
    spec = BuildSpec(formats=("parquet",), size=32)
    return build_dataset(BuildInputs(s.selection, s.store, tmp / "ds", spec, workers=1)).out


def test_a_parquet_feeder_with_workers_gives_every_image_once_per_epoch_by_seed(
    parquet_dataset: Path,
) -> None:
    train = open_dataset(parquet_dataset).splits["train"]
    pre = {"size": 16, "crop_pct": 1.0, "mean": [0.5] * 3, "std": [0.5] * 3}
    opts = FeedOptions(16, 1.0, "none", "none", 2, len(train), 2, seed=3)

    def labels(epoch: int) -> list[int]:
        feeder = image_feeder(opts, train, train[:2], pre)
        return [int(y) for _, ys, _ in feeder.train(epoch) for y in ys]

    first = labels(0)
    assert Counter(first) == Counter(s.label for s in train)
    assert first == labels(0)


def test_ranks_share_a_parquet_epoch_equally(parquet_dataset: Path) -> None:
    train = open_dataset(parquet_dataset).splits["train"]
    pre = {"size": 16, "crop_pct": 1.0, "mean": [0.5] * 3, "std": [0.5] * 3}
    opts = FeedOptions(16, 1.0, "none", "none", 2, len(train), 0, seed=3)
    shares = [
        [int(y) for _, ys, _ in image_feeder(opts, train, train[:2], pre, d=Dist(r, 2)).train(1)
         for y in ys]
        for r in (0, 1)
    ]  # fmt: skip
    assert len(shares[0]) == len(shares[1]) == -(-len(train) // 2)
    assert Counter(shares[0]) + Counter(shares[1]) >= Counter(s.label for s in train)
