"""Training's image reads from a Parquet-only dataset against the same dataset as folders.

One selection (``make_synthetic``: photo-like 640x480 JPEGs) is built twice, ``--format
folders`` and ``--format parquet``; ``open_dataset`` indexes both. For each, in one process,
alternated: the train split's bytes read (``Sample.read_bytes``) and read + decoded as
training does (``decode_image``), in file order (feature caches, evaluation) and in a seeded
random order, with a fresh per-process row-group cache each pass. ``--small-cache`` also
times, with the row-group cache held to one group (a split bigger than the cache), a random
order (before) and the block-shuffled order finetune/scratch epochs now read Parquet-backed
samples in (``block_shuffle``: row groups in a random order, images shuffled within as many
groups as the cache holds; the folders read the same order). Prints img/s and the
Parquet/folders ratio; writes bench/results/bench_parquet_read.json.

    python bench/bench_parquet_read.py [--images 1500] [--size 224] [--repeats 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from oiforge.build import BuildInputs, build_dataset
from oiforge.build.synthetic import make_synthetic
from oiforge.contracts import parquet_images
from oiforge.spec import BuildSpec
from oiforge.train.dataset import Sample, open_dataset
from oiforge.train.images import BLOCK_WINDOW, block_shuffle, decode_image
from record import Row, write_results


def _build(root: Path, images: int, size: int) -> tuple[list[Sample], list[Sample]]:
    s = make_synthetic(root / "synth", images)
    out = {}
    for fmt in ("folders", "parquet"):
        spec = BuildSpec(formats=(fmt,), size=size)
        out[fmt] = build_dataset(BuildInputs(s.selection, s.store, root / fmt, spec, workers=2)).out
    return open_dataset(out["folders"]).splits["train"], open_dataset(out["parquet"]).splits[
        "train"
    ]


def _pass(samples: Sequence[Sample], order: list[int], work: Callable[[Sample], object]) -> float:
    parquet_images._reader = None  # a fresh process's cache
    start = time.perf_counter()
    for i in order:
        work(samples[i])
    return len(order) / (time.perf_counter() - start)


def _decode(s: Sample) -> object:
    return decode_image(s.read_bytes(), 256)


def _order(parquet: Sequence[Sample], how: str) -> list[int]:
    order = list(range(len(parquet)))
    if how != "in order":
        random.Random(0).shuffle(order)
    if how == "block-shuffled":
        window = min(BLOCK_WINDOW, parquet_images.row_groups_cached({s.path for s in parquet}))
        order = block_shuffle(order, [s.block for s in parquet], torch.Generator(), window)
    return order


def _measure(
    folders: Sequence[Sample], parquet: Sequence[Sample], repeats: int, order: list[int]
) -> dict[str, tuple[float, float]]:
    out = {}
    for name, work in (("read", Sample.read_bytes), ("read+decode", _decode)):
        a, b = [], []
        for _ in range(repeats):  # alternated, so drift hits both alike
            a.append(_pass(folders, order, work))
            b.append(_pass(parquet, order, work))
        out[name] = (statistics.median(a), statistics.median(b))
    return out


def _row(label: str, name: str, folders: float, parquet: float) -> Row:
    ratio = parquet / folders
    print(f"{label:>29} {name:>12}: folders {folders:7.0f} img/s, parquet {parquet:7.0f} "
          f"img/s, ratio {ratio:.2f}")  # fmt: skip
    goal = ">= 0.9" if name == "read+decode" else ""
    return Row(f"parquet {name}, {label}", round(parquet, 1), "img/s", peer="folders",
               peer_value=round(folders, 1), ratio=round(ratio, 3), goal=goal,
               met=ratio >= 0.9 if goal else None)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--images", type=int, default=1500)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--small-cache", action="store_true")
    args = ap.parse_args()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        folders, parquet = _build(Path(tmp), args.images, args.size)
        cases = [("in order", "in order"), ("random order", "random")]
        if args.small_cache:
            cases += [("random, 1-group cache", "random")]
            cases += [("block-shuffled, 1-group cache", "block-shuffled")]
        for label, how in cases:
            if label.endswith("1-group cache"):
                parquet_images.ROW_GROUP_CACHE_BYTES = 0  # type: ignore[misc]
            order = _order(parquet, how)
            for name, (f, p) in _measure(folders, parquet, args.repeats, order).items():
                rows.append(_row(label, name, f, p))
    write_results(
        "bench_parquet_read", rows, notes=f"{len(folders)} train samples, size {args.size}"
    )


if __name__ == "__main__":
    main()
