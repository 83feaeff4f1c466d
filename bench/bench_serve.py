"""Serving speed: ONNX Runtime vs torch eager per image, and `oiforge serve` over loopback.

    .venv/bin/python bench/bench_serve.py [--iters 200] [--seconds 10] [--rates 10,50,100]

1. Builds the default model (EfficientNet-Lite0, offline ImageNet weights, a 10-class head,
   224 px) as the train stage does, exports it with `export_model` into bench/out/serve/.
2. Per-image latency at batch 1, both on the same threads (1, then all cores): torch eager
   (`torch.no_grad`) vs the ONNX Runtime `Predictor`, interleaved call by call; prints the
   ratio (target >= 2x).
   Also the end-to-end predictor time for a real 600x400 JPEG (decode + preprocess + infer).
3. Starts `oiforge serve` (its own process) on 127.0.0.1 and drives it with an open-loop
   aiohttp load generator (requests are sent on a fixed schedule whatever the replies, at
   most 256 in flight) at each rate for --seconds: p50/p99 latency, achieved rate, errors.
   Prints p99 / 100 ms at 50 rps (target < 1). Client and server share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path(__file__).resolve().parent / "out" / "serve"
NUM_CLASSES = 10
SIZE = 224
MAX_IN_FLIGHT = 256


def build_export() -> Path:
    import torch

    from oiforge.serve.export import export_model
    from oiforge.serve.labels import ClassInfo, Labels, ModelInfo, parse_preprocessing
    from oiforge.train.models import DEFAULT_MODEL, create_model, preprocessing_for

    torch.manual_seed(0)
    model = create_model(DEFAULT_MODEL, NUM_CLASSES, pretrained=True).eval()
    pre = parse_preprocessing("bench", preprocessing_for(DEFAULT_MODEL, SIZE, 0.875))
    classes = tuple(ClassInfo(i, f"class {i}", f"/m/bench{i}") for i in range(NUM_CLASSES))
    labels = Labels(classes, pre, ModelInfo("bench-lite0", "x", DEFAULT_MODEL))
    result = export_model(model, labels, OUT)
    print(f"exported {DEFAULT_MODEL} to {OUT} (parity max |diff| {result.max_abs_diff:.1e})")
    torch.save(model, OUT / "eager.pt")  # the same module for the eager timing
    return OUT


def _time_ms(fn: object, iters: int) -> list[float]:
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append((time.perf_counter() - start) * 1000)
    return times


def bench_latency(export: Path, iters: int, threads: int) -> tuple[float, float]:
    import torch

    from oiforge.serve.predictor import Predictor

    torch.set_num_threads(threads)
    model = torch.load(export / "eager.pt", weights_only=False).eval()
    predictor = Predictor(export, threads=threads)
    x = np.random.default_rng(0).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    xt = torch.from_numpy(x)

    def eager() -> None:
        with torch.no_grad():
            model(xt)

    runners = {"torch eager": eager, "onnxruntime": lambda: predictor.logits(x)}
    times: dict[str, list[float]] = {name: [] for name in runners}
    for fn in runners.values():
        _time_ms(fn, 10)  # warm-up
    for _ in range(iters):  # interleaved, so both see the same background load
        for name, fn in runners.items():
            times[name] += _time_ms(fn, 1)
    results = {name: statistics.median(values) for name, values in times.items()}
    for name, ms in results.items():
        print(f"  {name:12s} batch 1, {threads} threads: median {ms:.2f} ms/image")
    ratio = results["torch eager"] / results["onnxruntime"]
    print(f"  ratio torch eager / onnxruntime = {ratio:.2f}x (target >= 2x)")
    return results["torch eager"], results["onnxruntime"]


def photo_jpeg() -> bytes:
    from PIL import Image
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.coffee()).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def bench_end_to_end(export: Path, iters: int, threads: int) -> None:
    from oiforge.serve.predictor import Predictor
    from oiforge.serve.preprocess import preprocess_bytes

    predictor = Predictor(export, threads=threads)
    jpeg = photo_jpeg()
    pre = predictor.labels.preprocessing

    def once() -> None:
        arr, _ = preprocess_bytes(jpeg, pre)
        predictor.top_k(predictor.probabilities([arr]), 5)

    _time_ms(once, 10)
    med = statistics.median(_time_ms(once, iters))
    print(f"  predictor end to end (600x400 JPEG decode+preprocess+infer): {med:.2f} ms/image")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(export: Path) -> tuple[subprocess.Popen[bytes], str]:
    import urllib.request

    port = free_port()
    cmd = [
        sys.executable,
        "-c",
        "from oiforge.cli import main; main()",
        "serve",
        str(export),
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=1) as resp:
                if resp.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("oiforge serve did not become ready")


async def _one(session: object, url: str, body: bytes) -> tuple[float, int]:
    import aiohttp

    assert isinstance(session, aiohttp.ClientSession)
    form = aiohttp.FormData()
    form.add_field("image", body, filename="coffee.jpg", content_type="image/jpeg")
    start = time.perf_counter()
    try:
        async with session.post(f"{url}/v1/predict", data=form) as resp:
            await resp.read()
            return (time.perf_counter() - start) * 1000, resp.status
    except aiohttp.ClientError:
        return (time.perf_counter() - start) * 1000, 0


async def load_run(url: str, rate: float, seconds: float, body: bytes) -> dict[str, Any]:
    import aiohttp

    total = int(rate * seconds)
    connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(3):  # warm connections and the model
            await _one(session, url, body)
        start = time.perf_counter()
        tasks = []
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_one(session, url, body)))
        results = await asyncio.gather(*tasks)
        wall = time.perf_counter() - start
    lat = np.array([ms for ms, status in results if status == 200])
    errors = sum(1 for _, status in results if status != 200)
    by_status = Counter(str(status) for _, status in results if status != 200)
    p50, p99 = (float(np.percentile(lat, q)) if lat.size else float("nan") for q in (50, 99))
    return {
        "rate": rate,
        "sent": total,
        "ok_rps": lat.size / wall,
        "p50": p50,
        "p99": p99,
        "errors": errors,
        "by_status": dict(by_status),
    }


def bench_http(export: Path, rates: list[float], seconds: float) -> list[dict[str, Any]]:
    proc, url = start_server(export)
    body = photo_jpeg()
    rows = []
    try:
        for rate in rates:
            row = asyncio.run(load_run(url, rate, seconds, body))
            rows.append(row)
            print(
                f"  {rate:5.0f} rps offered: {row['ok_rps']:6.1f} rps ok, "
                f"p50 {row['p50']:6.1f} ms, p99 {row['p99']:6.1f} ms, "
                f"errors {row['errors']:.0f}/{row['sent']:.0f} {row['by_status'] or ''}"
            )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rates", default="10,50,100")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    export = build_export()
    print("per-image latency (same model, same input):")
    for threads in sorted({1, args.threads}):
        bench_latency(export, args.iters, threads)
    bench_end_to_end(export, args.iters, args.threads)
    print(
        "HTTP: oiforge serve on loopback, multipart 600x400 JPEG, open loop, "
        f"{args.seconds:.0f} s per rate:"
    )
    rows = bench_http(export, [float(r) for r in args.rates.split(",")], args.seconds)
    at50 = next((r for r in rows if r["rate"] == 50), None)
    if at50:
        print(f"  p99 at 50 rps / 100 ms limit = {at50['p99'] / 100:.2f} (target < 1)")


if __name__ == "__main__":
    main()
