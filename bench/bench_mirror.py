"""Benchmark of the mirror: sample generation, serving throughput, full-size metadata.

1. ``make_sample`` wall time against the 15 s limit of the issue.
2. Serving: all sample JPEGs (resized copies + Flickr originals), 64 requests in flight from
   an aiohttp client, against ``oiforge mirror serve --no-faults`` and against the peer, a
   plain aiohttp static server (``web.static``, sendfile) over the same directory; each
   server in its own process; median of ``--repeat`` rounds.
3. ``--scale``: ``make_scaled`` for ``--rows`` box rows (plus ~0.62 image rows and ~4.1 label
   rows per box row) against the peer, Python's ``csv`` writer writing only the box rows.

    .venv/bin/python bench/bench_mirror.py --repeat 3 --rows 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from oiforge.mirror.sample import make_sample  # noqa: E402
from oiforge.mirror.scale import make_scaled  # noqa: E402
from record import Row, write_results  # noqa: E402

#: The mirror's issue: the sample is written in under 15 s.
SAMPLE_LIMIT_S = 15.0

PEER = """
import sys
from aiohttp import web
app = web.Application()
app.router.add_static("/", sys.argv[1])
web.run_app(app, host="127.0.0.1", port=int(sys.argv[2]), print=None, access_log=None)
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(command: list[str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env={"COLUMNS": "200"})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+", line)
    if not match:
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return proc, match.group(0)


def _start_peer(root: Path) -> tuple[subprocess.Popen[str], str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", PEER, str(root), str(port)], text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            asyncio.run(_get_all(url, ["/openimages/v7/oidv7-class-descriptions.csv"], 1))
            return proc, url
        except aiohttp.ClientError:
            time.sleep(0.05)
    raise RuntimeError("peer did not start")


async def _get_all(base: str, paths: list[str], in_flight: int) -> int:
    sem = asyncio.Semaphore(in_flight)
    total = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight)) as s:

        async def one(path: str) -> None:
            nonlocal total
            async with sem, s.get(base + path) as resp:
                resp.raise_for_status()
                async for chunk in resp.content.iter_chunked(1 << 16):
                    total += len(chunk)

        await asyncio.gather(*(one(p) for p in paths))
    return total


def _paths(root: Path) -> list[str]:
    files = [*root.glob("open-images-dataset/*/*.jpg"), *root.glob("flickr/*/**/*_o.jpg")]
    paths = sorted("/" + str(p.relative_to(root)) for p in files)
    random.Random(0).shuffle(paths)
    return paths


def _rate(base: str, paths: list[str], repeat: int) -> tuple[float, float]:
    rates, mbs = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        size = asyncio.run(_get_all(base, paths, 64))
        dt = time.perf_counter() - t0
        rates.append(len(paths) / dt)
        mbs.append(size / dt / 1e6)
    return statistics.median(rates), statistics.median(mbs)


def bench_serving(root: Path, repeat: int) -> dict[str, float]:
    paths = _paths(root)
    mirror_cmd = [sys.executable, "-c", "from oiforge.cli import main; main()", "mirror",
                  "serve", "--root", str(root), "--port", "0", "--no-faults"]  # fmt: skip
    out: dict[str, float] = {"files": len(paths)}
    for name, start in (
        ("mirror", lambda: _start(mirror_cmd)),
        ("peer", lambda: _start_peer(root)),
    ):
        proc, url = start()
        try:
            out[f"{name}_files_per_s"], out[f"{name}_mb_per_s"] = _rate(url, paths, repeat)
        finally:
            proc.terminate()
            proc.wait()
    return out


def bench_scale(rows: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        written = make_scaled(Path(tmp) / "scaled", box_rows=rows)
        ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        rng = random.Random(0)
        with (Path(tmp) / "peer.csv").open("w", newline="") as fh:
            writer = csv.writer(fh)
            for i in range(rows):
                v = [f"{rng.random():.6f}" for _ in range(12)]
                writer.writerow([f"{i // 8:016x}", "xclick", "/m/01g317", "1", *v[:4],
                                 "0", "1", "0", "0", "0", *v[4:]])  # fmt: skip
        peer = time.perf_counter() - t0
    total_rows = sum(r for r, _ in written.values())
    return {"box_rows": rows, "all_rows": total_rows, "bytes": sum(b for _, b in written.values()),
            "ours_s": ours, "peer_box_only_s": peer}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        make_sample(Path(tmp) / "sample", seed=0)
        sample_s = time.perf_counter() - t0
        limit = sample_s / SAMPLE_LIMIT_S
        print(f"make_sample: {sample_s:.1f} s (limit 15 s: {limit:.2f}x of the limit)")
        serving = bench_serving(Path(tmp) / "sample", args.repeat)
    ratio = serving["mirror_files_per_s"] / serving["peer_files_per_s"]
    print(f"serving {serving['files']:.0f} JPEGs, 64 in flight: mirror "
          f"{serving['mirror_files_per_s']:.0f} files/s ({serving['mirror_mb_per_s']:.0f} MB/s), "
          f"aiohttp static peer {serving['peer_files_per_s']:.0f} files/s "
          f"({serving['peer_mb_per_s']:.0f} MB/s): ratio {ratio:.2f}")  # fmt: skip
    scale = bench_scale(args.rows)
    speed = (scale["all_rows"] / scale["ours_s"]) / (args.rows / scale["peer_box_only_s"])
    print(f"--scale {args.rows:,}: {scale['all_rows']:,.0f} rows, {scale['bytes'] / 1e6:,.0f} MB "
          f"in {scale['ours_s']:.1f} s ({scale['all_rows'] / scale['ours_s'] / 1e6:.2f} M rows/s); "
          f"peer csv.writer, box rows only: {scale['peer_box_only_s']:.1f} s "
          f"({args.rows / scale['peer_box_only_s'] / 1e6:.2f} M rows/s); "
          f"rows/s ratio {speed:.1f}x")  # fmt: skip
    print(json.dumps({"make_sample_s": sample_s, **serving, **scale}))
    write_results("bench_mirror", [
        Row("make_sample (600 images)", sample_s, "s", "limit", SAMPLE_LIMIT_S, limit,
            "<= 15 s", limit <= 1),
        Row("serving sample JPEGs, 64 in flight", serving["mirror_files_per_s"], "files/s",
            "aiohttp static server", serving["peer_files_per_s"], ratio),
        Row("make-sample --scale", scale["all_rows"] / scale["ours_s"], "rows/s",
            "csv.writer, box rows only", args.rows / scale["peer_box_only_s"], speed,
            extra={"box_rows": args.rows, "all_rows": scale["all_rows"], "s": scale["ours_s"]}),
    ], notes=f"--repeat {args.repeat} --rows {args.rows}")  # fmt: skip


if __name__ == "__main__":
    main()
