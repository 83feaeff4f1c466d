"""Engine overhead at a realistic job size: download and build, local vs Ray, one machine.

    .venv/bin/python bench/bench_distributed.py [--images 5000] [--repeats 3] [--cold 2]
                                                [--shards auto 1] [--stage download|build|both]
                                                [--cli]

Data: the download bench's photo-like JPEGs (640x480 to 1024x768, q90; generated once into
bench/out/mirror-root-<N>), served by ``oiforge mirror serve`` in its own process on
127.0.0.1. One selection row per image (3 classes), resized-bucket source.

1. **Ray start-up included** (``--cold`` rounds): ``run_download_sharded(backend="ray")``
   starts and stops its own Ray instance, as a one-off ``oiforge download --backend ray`` on a
   machine without a cluster does, alternating with a plain ``download()``.
2. **Ray cluster already running** (``--repeats`` rounds): a Ray head is started once in a
   child process (timed, not counted); every Ray run connects to it as a new Ray job (new
   driver connection, new worker processes, as one ``oiforge download --ray-address ...``
   run): download local / Ray alternating, then build local (``build_dataset``) / Ray
   (``run_build_sharded``, on the local download's store), alternating.

``--cli``: each build is an ``oiforge build`` command in a fresh process (interpreter, imports,
the local render pool's fork server and the Ray driver's connection included), as a user runs
it; without it the builds run in this process (imports and the fork server warm after the
first local build). Every run gets a fresh output folder. Prints each run, the medians, the
ratio Ray/local, the driver's own time (split, merge: ``stats.json``) and an N-node
extrapolation from the measured per-shard rates. Shards: the default (``auto_num_shards``:
~10,000 images per shard, at least one per CPU) and/or the counts given to ``--shards``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_build import settled_dir
from bench_download import make_root, start_server
from oiforge.build import BuildInputs, build_dataset
from oiforge.build.synthetic import selection_row, write_selection
from oiforge.distributed import run_build_sharded, run_download_sharded
from oiforge.download import DownloadConfig, download
from oiforge.endpoints import Endpoints
from record import Row, write_results

OUT = Path(__file__).resolve().parent / "out" / "distributed"
CLASSES = (("/m/01yrx", "Cat"), ("/m/0bt9lr", "Dog"), ("/m/015p6", "Bird"))
CONFIG = DownloadConfig(sources=("resized",))
Runs = dict[str, list[float]]
#: Ray >= 2.5x turns on token authentication for every cluster; the head this bench starts and
#: the drivers that join it are all local, so it is off (a real cluster keeps it on).
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def write_selection_for(ids: list[str], path: Path) -> None:
    rows = [selection_row(i, *CLASSES[k % len(CLASSES)], "train") for k, i in enumerate(ids)]
    write_selection(path, rows)


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def fresh(name: str) -> Path:
    path = OUT / name
    shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(OUT / f".{name}.oiforge-partial", ignore_errors=True)
    shutil.rmtree(OUT / f".{name}.oiforge-shards", ignore_errors=True)
    return path


BUILDS = OUT / "build-runs"
_RUN_COUNTER = itertools.count()


def new_build_out(name: str) -> Path:
    """A folder no earlier build used (all are removed after timing: ``settled_dir``)."""
    return BUILDS / f"{name}-{next(_RUN_COUNTER)}"


def driver_times(store: Path) -> dict[str, Any]:
    stats = json.loads((store / "stats.json").read_text(encoding="utf-8"))
    done = [s["stats"] for s in stats["shards_run"] if s["stats"]]
    rates = [d["count"] / d["duration_s"] for d in done if d["duration_s"]]
    slowest = max((d["duration_s"] for d in done), default=0.0)
    return {**stats.get("driver_s", {}), "slowest_shard": slowest, "shard_rates": rates}


def shards_of(variant: str) -> int | None:
    return None if variant == "ray:auto" else int(variant.split(":")[1])


def one_download(
    sel: Path, ep: Endpoints, variant: str, address: str | None
) -> tuple[float, dict[str, Any]]:
    """``local``: a plain ``download()``; ``ray:auto`` / ``ray:<n>``: the Ray backend, on the
    cluster at ``address`` (a new Ray job, as one ``oiforge download`` run) or, with None, on
    a Ray instance the engine starts and stops itself."""
    store = fresh(f"store-{variant.replace(':', '-')}")
    if variant == "local":
        return timed(lambda: download(sel, store, CONFIG, ep)), {}
    kw: dict[str, Any] = {"backend": "ray", "address": address, "num_shards": shards_of(variant)}
    took = timed(lambda: run_download_sharded(sel, store, CONFIG, ep, **kw))
    return took, driver_times(store)


def one_build(sel: Path, store: Path, variant: str, address: str) -> float:
    """One build; prints where its time went (for Ray: the shard jobs, then the driver's
    final ``build_dataset``, whose render phase is only the cache check)."""
    out = new_build_out(f"dataset-{variant.replace(':', '-')}")
    inputs = BuildInputs(sel, store, out)
    start = time.perf_counter()
    if variant == "local":
        res = build_dataset(inputs)
    else:
        shards = shards_of(variant)
        res = run_build_sharded(inputs, backend="ray", address=address, num_shards=shards)
    took = time.perf_counter() - start
    final = sum(res.timings.values())
    phases = ", ".join(f"{k} {v:.2f}" for k, v in res.timings.items())
    print(f"    {variant}: {took:.2f} s = before the final build {took - final:.2f} s + "
          f"final build ({phases})", flush=True)  # fmt: skip
    return took


def one_build_cli(sel: Path, store: Path, variant: str, address: str) -> float:
    """One ``oiforge build`` command in a fresh process, as a user runs it (interpreter,
    imports and, for local, the render pool's fork server included on both sides)."""
    out = new_build_out(f"dataset-{variant.replace(':', '-')}-cli")
    cmd = [str(Path(sys.executable).parent / "oiforge"), "build", "--selection", str(sel),
           "--store", str(store), "--out", str(out)]  # fmt: skip
    if variant != "local":
        cmd += ["--backend", "ray", "--ray-address", address]
        if (shards := shards_of(variant)) is not None:
            cmd += ["--shards", str(shards)]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    took = time.perf_counter() - start
    print(f"    {variant} (command): {took:.2f} s", flush=True)
    return took


def rounds(variants: list[str], repeats: int, run: Callable[[str], float], tag: str) -> Runs:
    """``repeats`` rounds over the variants, the order rotated each round (drift hits all)."""
    runs: Runs = {v: [] for v in variants}
    for i in range(repeats):
        order = variants[i % len(variants) :] + variants[: i % len(variants)]
        for v in order:
            runs[v].append(run(v))
        print(f"  {tag} {i}: " + "   ".join(f"{v} {runs[v][-1]:6.2f} s" for v in variants),
              flush=True)  # fmt: skip
    return runs


#: Issue #8 (and #25 for a 5,000-photo build): the engine costs at most 15% of a local run.
GOAL = 1.15


def summarize(title: str, images: int, runs: Runs, judge: bool = True) -> list[Row]:
    local = statistics.median(runs["local"])
    print(f"{title}: {images} images, median of {len(runs['local'])}, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    for v, times in runs.items():
        t = statistics.median(times)
        print(f"  {v:9s} {images / t:7,.0f} img/s ({t:6.2f} s)   throughput vs local "
              f"{local / t:.2f}   time {t / local - 1:+.0%}", flush=True)  # fmt: skip
    return [ray_row(f"{title}: {v}", runs[v], runs["local"], judge) for v in runs if v != "local"]


def ray_row(metric: str, ray: list[float], local: list[float], judge: bool) -> Row:
    """Median Ray time against the median local time (goal only with a cluster running)."""
    t, peer = statistics.median(ray), statistics.median(local)
    goal = f"<= {GOAL} (time Ray/local)" if judge else ""
    met = t / peer <= GOAL if judge else None
    extra = {"runs_s": ray, "peer_runs_s": local}
    return Row(metric, t, "s", "local", peer, t / peer, goal, met, extra=extra)


def extrapolate(notes: list[dict[str, Any]], fixed_s: float) -> None:
    rates = [r for n in notes for r in n["shard_rates"]]
    if not rates:
        return
    per_slot = statistics.median(rates)
    print(f"per shard: median {per_slot:,.0f} img/s; fixed cost (run - slowest shard) "
          f"≈ {fixed_s:.2f} s per run")  # fmt: skip
    for nodes in (1, 8, 64):
        rate = per_slot * 2 * nodes
        hours = 9e6 / rate / 3600
        print(f"  {nodes:>3} nodes x 2 slots ≈ {rate:7,.0f} img/s; 9M images ≈ {hours:5.1f} h")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cold", type=int, default=2, help="rounds with Ray start-up included")
    ap.add_argument("--shards", nargs="+", default=["auto"], help="auto and/or numbers")
    ap.add_argument("--stage", choices=("download", "build", "both"), default="both")
    ap.add_argument("--cli", action="store_true", help="each build an `oiforge build` process")
    args = ap.parse_args()
    root, ids = make_root(args.images)
    OUT.mkdir(parents=True, exist_ok=True)
    sel = OUT / f"selection-{args.images}.parquet"
    write_selection_for(ids, sel)
    proc, base = start_server("mirror", root)
    try:
        rows = run_all(args, sel, Endpoints.for_mirror(base), len(ids))
    finally:
        proc.kill()
    how = f"{args.repeats} repeats, {args.cold} cold, shards {' '.join(args.shards)}"
    write_results("bench_distributed", rows, notes=f"{len(ids)} images, {how}")


HEAD = """
import sys, ray
ray.init(include_dashboard=False, _system_config={"worker_niceness": 0})
print(ray.get_runtime_context().gcs_address, flush=True)
sys.stdin.read()
ray.shutdown()
"""


def start_head() -> tuple[subprocess.Popen[str], str, float]:
    """A Ray cluster in a child process (as `ray start --head` would run one, but without
    publishing it as this machine's current cluster); closing its stdin stops it."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", HEAD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    address = proc.stdout.readline().strip()
    if not address:
        proc.kill()
        raise RuntimeError("the Ray head did not start")
    return proc, address, time.perf_counter() - t0


def run_all(args: argparse.Namespace, sel: Path, ep: Endpoints, images: int) -> list[Row]:
    import ray

    print(f"python {sys.version.split()[0]}, ray {ray.__version__}, cpus {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    variants = ["local"] + [f"ray:{s}" for s in args.shards]
    rows: list[Row] = []
    if args.stage != "build" and args.cold:
        firsts = variants[:2]  # the start-up is the same whatever the shard count
        cold = rounds(firsts, args.cold, lambda v: one_download(sel, ep, v, None)[0], "cold")
        title = "download, Ray start-up included (each Ray run starts and stops Ray)"
        rows += summarize(title, images, cold, judge=False)
    head, address, took = start_head()
    print(f"Ray head started at {address} in {took:.1f} s (not counted below)", flush=True)
    try:
        rows += warm_runs(args, variants, sel, ep, images, address)
    finally:
        assert head.stdin is not None
        head.stdin.close()
        head.wait(timeout=120)
    return rows


def warm_runs(
    args: argparse.Namespace,
    variants: list[str],
    sel: Path,
    ep: Endpoints,
    images: int,
    address: str,
) -> list[Row]:
    notes: list[dict[str, Any]] = []
    fixed: list[float] = []

    def download_noted(v: str) -> float:
        took, note = one_download(sel, ep, v, address)
        if note:
            notes.append(note)
            fixed.append(took - note["slowest_shard"])
            print(f"    {v}: driver {note}", flush=True)
        return took

    reps = args.repeats if args.stage != "build" else 1
    warm = rounds(variants, reps, download_noted, "warm")
    rows: list[Row] = []
    if args.stage != "build":
        title = "download, Ray cluster already running (each run a new Ray job)"
        rows += summarize(title, images, warm)
        extrapolate(notes, statistics.median(fixed))
    if args.stage == "download":
        return rows
    store = OUT / "store-local"
    build_one = one_build_cli if args.cli else one_build
    settled_dir(BUILDS, after_deletions=True)  # the download rounds just deleted stores
    built = rounds(variants[:2], args.repeats, lambda v: build_one(sel, store, v, address), "build")
    how = " (each an `oiforge build` command)" if args.cli else ""
    rows += summarize(f"build, Ray cluster already running{how}", images, built)
    shutil.rmtree(BUILDS)
    return rows


if __name__ == "__main__":
    main()
