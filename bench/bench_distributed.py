"""Engine overhead: the download stage, local vs Ray on the same machine, on the mirror sample.

    .venv/bin/python bench/bench_distributed.py [--sample DIR] [--repeats 3] [--shards 2]

Runs a plain ``download()`` (the peer) and ``run_download_sharded(backend="ray")`` on a local
Ray instance (started once, before timing; its start-up is printed separately), each on a fresh
store, alternating, ``--repeats`` times; prints the median img/s of each and their ratio. Then
it extrapolates to N nodes from the measured per-shard timings and the driver's split/merge.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from oiforge.contracts import SELECTION_SCHEMA
from oiforge.distributed import run_download_sharded
from oiforge.download import DownloadConfig, download
from oiforge.endpoints import Endpoints
from oiforge.mirror.sample import make_sample
from oiforge.mirror.server import MirrorServer


def selection_from(sample: Path, out: Path) -> int:
    facts = json.loads((sample / "sample.json").read_text(encoding="utf-8"))
    rows = [
        {"image_id": im["image_id"], "split": im["split"], "label_mid": mid, "label_name": mid,
         "original_url": im["original_url"], "thumbnail_url": im["thumbnail_url"],
         "original_size": im["original_size"], "original_md5": im["original_md5"],
         "rotation": float(im["rotation"]) if im["rotation"] else None}
        for im in facts["images"] for mid in im["classes"]
    ]  # fmt: skip
    columns = {f.name: [r.get(f.name) for r in rows] for f in SELECTION_SCHEMA}
    pq.write_table(pa.table(columns, schema=SELECTION_SCHEMA), out)
    return len(facts["images"])


def timed(fn: object, *args: object, **kwargs: object) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sample", type=Path, default=Path("bench/out/mirror-sample"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shards", type=int, default=2)
    args = ap.parse_args()
    if not (args.sample / "sample.json").is_file():
        make_sample(args.sample, seed=0)
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    ray_start = time.perf_counter() - t0
    cfg = DownloadConfig(workers=1, backoff_s=0.05)
    shards = args.shards
    local_s: list[float] = []
    ray_s: list[float] = []
    shard_s: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, MirrorServer(args.sample) as srv:
        sel = Path(tmp) / "selection.parquet"
        images = selection_from(args.sample, sel)
        ep = Endpoints.for_mirror(srv.url)
        for i in range(args.repeats):
            srv.reset()
            local_s.append(timed(download, sel, Path(tmp) / f"l{i}", cfg, ep))
            srv.reset()
            store = Path(tmp) / f"r{i}"
            ray_s.append(
                timed(run_download_sharded, sel, store, cfg, ep, backend="ray", num_shards=shards)
            )
            stats = json.loads((store / "stats.json").read_text())
            shard_s += [s["stats"]["duration_s"] for s in stats["shards_run"] if s["stats"]]
    ray.shutdown()
    report(images, local_s, ray_s, shard_s, ray_start, args.shards)


def report(
    images: int,
    local_s: list[float],
    ray_s: list[float],
    shard_s: list[float],
    ray_start: float,
    shards: int,
) -> None:
    local, on_ray = statistics.median(local_s), statistics.median(ray_s)
    shard = statistics.median(shard_s)
    print(f"images: {images}, shards: {shards}, Ray start-up (not timed below): {ray_start:.1f} s")
    print(
        f"local download(): {images / local:,.0f} img/s (median of {len(local_s)}: {local:.2f} s)"
    )
    print(f"ray backend:      {images / on_ray:,.0f} img/s (median {on_ray:.2f} s)")
    print(f"ratio ray/local throughput: {local / on_ray:.2f}  (overhead {on_ray / local - 1:+.0%})")
    per_shard = images / shards / shard
    driver = max(0.0, on_ray - shard)  # split + scheduling + merge, not overlapped with shards
    print(f"per shard: median {shard:.2f} s for {images // shards} images ({per_shard:,.0f} img/s)")
    print(f"driver (split, schedule, merge) ≈ {driver:.2f} s per run")
    for nodes in (1, 8, 64):
        rate = per_shard * nodes * 2  # 2 shard slots per 2-core node
        hours = 9e6 / rate / 3600
        print(f"  {nodes:>3} nodes x 2 slots: ≈ {rate:,.0f} img/s; 9M images ≈ {hours:,.1f} h")


if __name__ == "__main__":
    main()
