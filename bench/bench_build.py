"""Build throughput against the decode-only rate of the same files, measured in the same run.

    .venv/bin/python bench/bench_build.py [--images 5000] [--boxes 2] [--size 256]

Generates photo-like JPEGs (640×480, q90) with boxes into bench/out/build (reused by later
runs), then measures on all cores:
  1. decode-only: Pillow full decode of every store file (a process pool, files read from disk),
  2. the whole ``build_dataset`` (decode check, hashes, crops, resize, encode, dedupe, split,
     export, manifest, card, contact sheet, lock), from a cold build cache.
Prints images/s and samples/s for both and the ratio (target: build >= 70% of decode-only).
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image

from oiforge.build import BuildInputs, build_dataset
from oiforge.build.synthetic import SyntheticSet, make_synthetic
from oiforge.spec import BuildSpec

OUT = Path(__file__).parent / "out" / "build"


def _make_part(args: tuple[int, int, int]) -> SyntheticSet:
    part, images, boxes = args
    return make_synthetic(OUT / f"part{part}", images, boxes_per_image=boxes, seed=part + 1)


def generate(images: int, boxes: int, workers: int) -> list[SyntheticSet]:
    """``images`` images in ``workers`` parts (generated once, reused)."""
    per = -(-images // workers)
    marker = OUT / f"generated-{per}x{workers}-{boxes}.txt"
    if marker.exists():
        return [
            SyntheticSet(OUT / f"part{p}" / "store", OUT / f"part{p}" / "selection.parquet",
                         marker.read_text().split("\n")[p].split())
            for p in range(workers)
        ]  # fmt: skip
    with ProcessPoolExecutor(workers) as pool:
        parts = list(pool.map(_make_part, [(p, per, boxes) for p in range(workers)]))
    marker.write_text("\n".join(" ".join(p.image_ids) for p in parts))
    return parts


def merge(parts: list[SyntheticSet]) -> SyntheticSet:
    """One store + selection from the parts (store files are hard-linked)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    store = OUT / "store"
    for part in parts:
        for f in part.store.rglob("*.jpg"):
            dst = store / f.parent.name / f.name
            if not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.link(f, dst)
    table = pa.concat_tables([pq.read_table(p.selection) for p in parts])
    pq.write_table(table, OUT / "selection.parquet")
    return SyntheticSet(store, OUT / "selection.parquet", [i for p in parts for i in p.image_ids])


def _decode(paths: list[str]) -> int:
    for p in paths:
        with Image.open(p) as im:
            im.load()
    return len(paths)


def decode_only(store: Path, workers: int) -> tuple[int, float]:
    paths = sorted(str(p) for p in store.rglob("*.jpg"))
    chunks = [paths[i : i + 64] for i in range(0, len(paths), 64)]
    start = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        n = sum(pool.map(_decode, chunks))
    return n, time.perf_counter() - start


def build(s: SyntheticSet, size: int, workers: int) -> tuple[int, int, float]:
    out = OUT / "dataset"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(OUT / ".dataset.oiforge-partial", ignore_errors=True)
    spec = BuildSpec(size=size, formats=("folders",))
    start = time.perf_counter()
    res = build_dataset(BuildInputs(s.selection, s.store, out, spec, workers=workers))
    elapsed = time.perf_counter() - start
    return len(s.image_ids), res.samples, elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--boxes", type=int, default=2)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    s = merge(generate(args.images, args.boxes, args.workers))
    n_dec, t_before = decode_only(s.store, args.workers)
    n_img, n_samples, t_build = build(s, args.size, args.workers)
    _, t_after = decode_only(s.store, args.workers)  # before and after: the machine is shared
    t_dec = (t_before + t_after) / 2
    dec_rate, img_rate = n_dec / t_dec, n_img / t_build
    print(f"load average {os.getloadavg()[0]:.1f}; decode-only before/after: "
          f"{n_dec / t_before:.1f} / {n_dec / t_after:.1f} images/s")  # fmt: skip
    print(f"images {n_img}, samples {n_samples}, workers {args.workers}, size {args.size}")
    print(f"decode-only (Pillow full decode): {dec_rate:8.1f} images/s ({t_dec:.1f} s)")
    print(f"build (end to end):               {img_rate:8.1f} images/s, "
          f"{n_samples / t_build:.1f} samples/s ({t_build:.1f} s)")  # fmt: skip
    print(f"ratio build/decode-only: {img_rate / dec_rate:.2f} (target >= 0.70)")


if __name__ == "__main__":
    main()
