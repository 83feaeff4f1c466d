"""Download throughput: oiforge vs img2dataset on loopback, same URL list, one run.

    .venv/bin/python bench/bench_download.py [--images 5000] [--reps 2] [--compare-src OLD/src]

Generates photo-like JPEGs (640x480 to 1024x768, q90) into a mirror root under bench/out/,
serves it with `oiforge mirror serve` (or `--server static`: a plain aiohttp static server),
and times, alternating, for two settings (as served; resize to 256 max side):
  - the loopback ceiling ("ceiling"): an aiohttp GET loop, 64 in flight, bodies discarded
    (and once an httpx loop, which is how the HTTP client was picked);
  - `oiforge download` (subprocess, end to end);
  - img2dataset 1.47 in its own venv (bench/out/i2d-venv, pip-installed on first use),
    `--processes_count 2 --thread_count 32 --output_format files`.
  - with ``--compare-src OLD/src``: also `oiforge download` of that source tree (another
    checkout's ``src``), in the same alternation, for a before/after in one run.
Prints images/s, CPU seconds (user+sys of the client process tree) and the ratio oiforge /
img2dataset for each setting.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from record import Row, write_results

OUT = Path(__file__).resolve().parent / "out"
VENV_BIN = Path(sys.executable).parent
I2D_VENV = OUT / "i2d-venv"
SIZES = ((640, 480), (800, 600), (1024, 768), (768, 1024), (480, 640))


def _photo(seed: int) -> bytes:
    """A photo-like JPEG: smooth colour fields, edges and sensor-like noise, q90."""
    rng = np.random.default_rng(seed)
    w, h = SIZES[seed % len(SIZES)]
    low = rng.integers(0, 255, (h // 32 + 2, w // 32 + 2, 3), dtype=np.uint8)
    img = Image.fromarray(low).resize((w, h), Image.Resampling.BICUBIC)
    arr = np.asarray(img).astype(np.int16) + rng.normal(0, 6, (h, w, 3)).astype(np.int16)
    out = io.BytesIO()
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=90)
    return out.getvalue()


def _write_photo(args: tuple[Path, int]) -> int:
    path, seed = args
    data = _photo(seed)
    path.write_bytes(data)
    return len(data)


def make_root(n: int) -> tuple[Path, list[str]]:
    root = OUT / f"mirror-root-{n}"
    folder = root / "open-images-dataset" / "train"
    ids = [f"{(i * 2654435761) % (1 << 64):016x}" for i in range(1, n + 1)]
    if not (root / ".complete").exists():
        folder.mkdir(parents=True, exist_ok=True)
        with ProcessPoolExecutor(os.cpu_count()) as pool:
            jobs = [(folder / f"{i}.jpg", k) for k, i in enumerate(ids)]
            list(pool.map(_write_photo, jobs, chunksize=64))
        (root / ".complete").touch()
    return root, ids


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(kind: str, root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    if kind == "mirror":
        cmd = [
            str(VENV_BIN / "oiforge"),
            "mirror",
            "serve",
            "--root",
            str(root),
            "--port",
            str(port),
        ]
    else:
        code = (
            "import sys; from aiohttp import web; app = web.Application(); "
            "app.router.add_static('/', sys.argv[1]); "
            "web.run_app(app, host='127.0.0.1', port=int(sys.argv[2]), print=None)"
        )
        cmd = [sys.executable, "-c", code, str(root), str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"http://127.0.0.1:{port}"
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{kind} server did not start: {' '.join(cmd)}")


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user+sys of the child tree) of a command."""
    subprocess.run(["sync"], check=True)  # the last run's dirty pages are not this run's work
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


CEILING = """
import asyncio, sys, aiohttp
async def main(urls):
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as s:
        it = iter(urls)
        async def worker():
            for u in it:
                async with s.get(u) as r:
                    await r.read()
        await asyncio.gather(*(worker() for _ in range(64)))
asyncio.run(main(open(sys.argv[1]).read().split()))
"""


CEILING_HTTPX = """
import asyncio, sys, httpx
async def main(urls):
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits) as c:
        it = iter(urls)
        async def worker():
            for u in it:
                (await c.get(u)).content
        await asyncio.gather(*(worker() for _ in range(64)))
asyncio.run(main(open(sys.argv[1]).read().split()))
"""


def run_ceiling(url_file: Path, code: str = CEILING) -> tuple[float, float]:
    return timed([sys.executable, "-c", code, str(url_file)])


def run_oiforge(sel: Path, base: str, resize: bool, src: Path | None = None) -> tuple[float, float]:
    """`oiforge download` end to end; ``src``: of that source tree instead of this one's."""
    out = OUT / "oiforge-store"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [str(VENV_BIN / "oiforge"), "download", str(sel), "--out", str(out), "--mirror", base]
    cmd += ["--sources", "resized"] + (["--max-side", "256"] if resize else [])
    env = {**os.environ, "PYTHONPATH": str(src.resolve())} if src is not None else None
    result = timed(cmd, env)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["successes"] == stats["selected"], stats["status_dict"]
    return result


def run_img2dataset(url_file: Path, resize: bool) -> tuple[float, float]:
    out = OUT / "i2d-out"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [str(I2D_VENV / "bin" / "img2dataset"), "--url_list", str(url_file),
           "--output_folder", str(out), "--processes_count", "2", "--thread_count", "32",
           "--output_format", "files", "--number_sample_per_shard", "1000",
           "--timeout", "30", "--retries", "0"]  # fmt: skip
    if resize:
        cmd += ["--image_size", "256", "--resize_mode", "keep_ratio"]
    else:
        cmd += ["--resize_mode", "no", "--disable_all_reencoding", "True"]
    return timed(cmd)


def ensure_img2dataset() -> None:
    if not (I2D_VENV / "bin" / "img2dataset").exists():
        subprocess.run([sys.executable, "-m", "venv", str(I2D_VENV)], check=True)
        pip = [str(I2D_VENV / "bin" / "pip"), "install", "-q", "img2dataset==1.47.0"]
        subprocess.run(pip, check=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--server", choices=("mirror", "static"), default="mirror")
    ap.add_argument("--httpx", action="store_true", help="also time an httpx GET loop")
    ap.add_argument("--compare-src", type=Path, help="also time oiforge from this src folder")
    args = ap.parse_args()
    ensure_img2dataset()
    root, ids = make_root(args.images)
    sizes = [p.stat().st_size for p in (root / "open-images-dataset" / "train").iterdir()]
    print(f"{len(ids)} JPEGs, mean {statistics.mean(sizes) / 1e3:.0f} KB; server: {args.server}")
    proc, base = start_server(args.server, root)
    try:
        rows = bench(ids, base, args.reps, args.httpx, args.compare_src)
    finally:
        proc.kill()
    notes = f"{len(ids)} JPEGs, {args.reps} reps, server {args.server}"
    notes += f", compared with {args.compare_src}" if args.compare_src else ""
    write_results("bench_download", rows, notes=notes)


def bench(
    ids: list[str], base: str, reps: int, httpx: bool, old_src: Path | None = None
) -> list[Row]:
    url_file, sel = OUT / "urls.txt", OUT / "selection.parquet"
    url_file.write_text("".join(f"{base}/open-images-dataset/train/{i}.jpg\n" for i in ids))
    pq.write_table(pa.table({"image_id": ids, "split": ["train"] * len(ids)}), sel)
    n = len(ids)
    rows: list[Row] = []
    if httpx:
        wall, cpu = min(run_ceiling(url_file, CEILING_HTTPX) for _ in range(reps))
        print(f"httpx GET loop (64 in flight): {n / wall:,.0f} img/s  cpu {cpu:.2f} s")
    for resize in (False, True):
        names = ["ceiling", "oiforge", "img2dataset"] + (["oiforge (old)"] if old_src else [])
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
        for _ in range(reps):  # alternate so drift and neighbours' load hit all alike
            runs["ceiling"].append(run_ceiling(url_file))
            runs["img2dataset"].append(run_img2dataset(url_file, resize))
            runs["oiforge"].append(run_oiforge(sel, base, resize))
            if old_src:
                runs["oiforge (old)"].append(run_oiforge(sel, base, resize, old_src))
        rows += report(n, "resize 256" if resize else "as served", runs)
    return rows


#: Issue #3 asked >= 1.0x as served and >= 1.5x with resize; #25 asks >= 2x for both.
GOAL = 2.0


def report(n: int, setting: str, runs: dict[str, list[tuple[float, float]]]) -> list[Row]:
    rates, cpus = {}, {}
    for name, results in runs.items():
        wall = statistics.median(w for w, _ in results)
        cpu = statistics.median(c for _, c in results)
        rates[name], cpus[name] = n / wall, cpu
        print(
            f"{setting:11s} {name:12s} {n / wall:8,.0f} img/s  wall {wall:6.2f} s  cpu {cpu:6.2f} s"
        )
    ratio = rates["oiforge"] / rates["img2dataset"]
    print(f"{setting:11s} ratio oiforge/img2dataset: {ratio:.2f}x")
    cpu = {"cpu_s": cpus["oiforge"], "peer_cpu_s": cpus["img2dataset"], "images": n}
    old: list[Row] = []
    if "oiforge (old)" in rates:
        old_ratio = rates["oiforge (old)"] / rates["img2dataset"]
        print(f"{setting:11s} ratio oiforge (old)/img2dataset: {old_ratio:.2f}x")
        old = [Row(f"{setting}: oiforge download, --compare-src", rates["oiforge (old)"],
                   "img/s", "img2dataset 1.47", rates["img2dataset"], old_ratio,
                   extra={"cpu_s": cpus["oiforge (old)"], "images": n})]  # fmt: skip
    return [
        *old,
        Row(f"{setting}: oiforge download", rates["oiforge"], "img/s", "img2dataset 1.47",
            rates["img2dataset"], ratio, f">= {GOAL:.0f}x (#25)", ratio >= GOAL, extra=cpu),
        Row(f"{setting}: oiforge download vs the loopback ceiling", rates["oiforge"], "img/s",
            "aiohttp GET loop, bodies discarded", rates["ceiling"],
            rates["oiforge"] / rates["ceiling"]),
    ]  # fmt: skip


if __name__ == "__main__":
    main()
