"""Serving speed: ONNX Runtime vs torch eager per image, and `oiforge serve` over loopback.

    .venv/bin/python bench/bench_serve.py [--iters 200] [--seconds 10] [--rates 10,50,100]

1. Builds the default model (EfficientNet-Lite0, offline ImageNet weights, a 10-class head,
   224 px) as the train stage does, exports it with `export_model` into bench/out/serve/.
2. Per-image latency at batch 1, both on the same threads (1, then all cores): torch eager
   (`torch.no_grad`) vs the ONNX Runtime `Predictor`, interleaved call by call; prints the
   ratio (target >= 2x).
   Also the end-to-end predictor time for a real 1024x683 JPEG (decode + preprocess + infer).
3. Starts `oiforge serve` (its own process) on 127.0.0.1 and drives it with an open-loop
   aiohttp load generator (requests are sent on a fixed schedule whatever the replies, at
   most 256 in flight) at each rate for --seconds: p50/p99 latency, achieved rate, errors.
   Prints p99 / 100 ms at 50 rps (target < 1). Client and server share the machine's cores.
   Server CPU per answered request against its peer (#25: <= 1.25x): the predictor run in a
   process of its own on the same photo, back to back, as the server sets it up; the peer runs
   right before each server (its mean CPU per photo; median over those runs).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
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

from record import Row, write_results

OUT = Path(__file__).resolve().parent / "out" / "serve"
NUM_CLASSES = 10
SIZE = 224
MAX_IN_FLIGHT = 256
PHOTO_WIDTH = 1024
BOUNDARY = "oiforge-bench-boundary"
PCTS = (50, 90, 99)
MEDIAN_KEYS = (
    "ok_rps",
    "p50",
    "p99",
    "server_ms_per_req",
    "client_ms_per_req",
    "client_share",
    "load",
)


def build_export() -> Path:
    if all((OUT / name).is_file() for name in ("model.onnx", "labels.json", "eager.pt")):
        print(f"reusing the export in {OUT} (delete it to rebuild)")
        return OUT
    import torch

    from oiforge.contracts import ClassInfo, Labels, ModelInfo, parse_preprocessing
    from oiforge.serve.export import export_model
    from oiforge.train.models import DEFAULT_MODEL, create_model, preprocessing_for

    torch.manual_seed(0)
    model = create_model(DEFAULT_MODEL, NUM_CLASSES, pretrained=True).eval()
    pre = parse_preprocessing("bench", preprocessing_for(DEFAULT_MODEL, SIZE, 0.875))
    classes = tuple(ClassInfo(i, f"class {i}", mid=f"/m/bench{i}") for i in range(NUM_CLASSES))
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


def photo_jpeg(width: int = PHOTO_WIDTH) -> bytes:
    """A real photo (scikit-learn's china.jpg, 640x427, CC BY 2.0) at Open Images' size.

    Scaled to ``width`` (default 1024 x 683, the resized set's longest side) with mild sensor
    grain so the file is as dense as a real photo of that size (~220 KB at q90).
    """
    from PIL import Image
    from sklearn.datasets import load_sample_image

    src = Image.fromarray(load_sample_image("china.jpg"))
    height = round(src.height * width / src.width)
    big = np.asarray(src.resize((width, height), Image.Resampling.LANCZOS), dtype=np.int16)
    grain = np.random.default_rng(0).normal(0, 4, big.shape).astype(np.int16)
    buf = io.BytesIO()
    Image.fromarray(np.clip(big + grain, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def bench_end_to_end(export: Path, iters: int, threads: int) -> None:
    from oiforge.serve.images import preprocess_bytes
    from oiforge.serve.predictor import Predictor

    predictor = Predictor(export, threads=threads)
    jpeg = photo_jpeg()
    pre = predictor.labels.preprocessing

    def once() -> None:
        arr, _ = preprocess_bytes(jpeg, pre)
        predictor.top_k(predictor.probabilities([arr]), 5)

    _time_ms(once, 10)
    med = statistics.median(_time_ms(once, iters))
    print(
        f"  predictor end to end ({PHOTO_WIDTH}px JPEG decode+preprocess+infer): {med:.2f} ms/image"
    )


def in_process_cpu_ms(export: Path, iters: int) -> float:
    """CPU ms of one photo through the predictor in this process, set up as the server sets
    it up (its inference threads, no spinning): the peer of the server's CPU per request."""
    from oiforge.serve.holder import ServeConfig
    from oiforge.serve.images import preprocess_bytes
    from oiforge.serve.predictor import Predictor

    threads = ServeConfig().inference_threads
    predictor = Predictor(export, threads=threads, spin=False)
    jpeg, pre = photo_jpeg(), predictor.labels.preprocessing

    def once() -> None:
        arr, _ = preprocess_bytes(jpeg, pre)
        predictor.top_k(predictor.probabilities([arr]), 5)

    cpu, _ = _cpu_ms(once, max(10, iters))
    print(f"  predictor in process, as the server runs it ({threads} thread, no spin): "
          f"{cpu:.2f} ms CPU/image")  # fmt: skip
    return cpu


def peer_cpu_ms(export: Path, iters: int) -> float:
    """Mean CPU ms per photo of the predictor run back to back in a fresh process, set up as
    the server sets it up: the server's figure is a mean (CPU over requests), so is this one,
    and it is taken right beside each server run because the host's speed drifts by 10-25%
    within minutes (a peer timed once at the start made the ratio swing with it)."""
    cmd = [sys.executable, __file__, "--peer", "--iters", str(iters)]
    out = subprocess.run(cmd, capture_output=True, check=True, text=True).stdout
    return float(json.loads(out.strip().splitlines()[-1])["cpu_ms"])


def run_peer(export: Path, iters: int) -> None:
    """The peer's own process: prints one JSON line, the mean CPU ms per photo."""
    from oiforge.serve.holder import ServeConfig
    from oiforge.serve.images import preprocess_bytes
    from oiforge.serve.predictor import Predictor

    predictor = Predictor(export, threads=ServeConfig().inference_threads, spin=False)
    jpeg, pre = photo_jpeg(), predictor.labels.preprocessing
    for _ in range(10):  # warm-up, as the server's first requests
        predictor.top_k(predictor.probabilities([preprocess_bytes(jpeg, pre)[0]]), 5)
    start = time.process_time()
    for _ in range(iters):
        predictor.top_k(predictor.probabilities([preprocess_bytes(jpeg, pre)[0]]), 5)
    print(json.dumps({"cpu_ms": (time.process_time() - start) * 1000 / iters}))


def _cpu_ms(fn: Any, iters: int) -> tuple[float, float]:
    """Median (CPU ms, wall ms) of ``fn()``: CPU time is what a loaded machine cannot hide."""
    cpu, wall = [], []
    for _ in range(iters):
        c, w = time.process_time(), time.perf_counter()
        fn()
        cpu.append((time.process_time() - c) * 1000)
        wall.append((time.perf_counter() - w) * 1000)
    return statistics.median(cpu), statistics.median(wall)


def _breakdown_steps(export: Path) -> dict[str, tuple[Any, int]]:
    """Each step of one request's work, as (callable, images per call)."""
    from oiforge.serve.images import RESAMPLE, center_box, decode_image, normalise, resized_size
    from oiforge.serve.predictor import Predictor

    jpeg = photo_jpeg()
    pre = Predictor(export).labels.preprocessing
    image = decode_image(jpeg, pre.size).image
    size = resized_size(*image.size, pre.scale_size)
    box = center_box(*size, pre.size)
    pixels = np.asarray(image.resize(size, RESAMPLE).crop(box))
    mean, std = np.asarray(pre.mean, np.float32), np.asarray(pre.std, np.float32)
    x = normalise(pixels, pre)[None]
    ort = {
        f"ORT {t} thread{'s' * (t > 1)}, {'spin' if spin else 'no spin'}, batch {n}": (
            Predictor(export, threads=t, spin=spin),
            np.repeat(x, n, 0),
        )
        for t, spin, n in [(2, True, 1), (2, False, 1), (1, False, 1), (1, False, 8)]
    }
    steps: dict[str, tuple[Any, int]] = {
        "JPEG decode (draft)": (lambda: decode_image(jpeg, pre.size), 1),
        "resize + crop": (lambda: image.resize(size, RESAMPLE).crop(box).load(), 1),
        "normalise, textbook": (
            lambda: np.ascontiguousarray(
                ((pixels / np.float32(255) - mean) / std).transpose(2, 0, 1)
            ),
            1,
        ),
        "normalise, one pass": (lambda: normalise(pixels, pre), 1),
    }
    for name, (pred, batch) in ort.items():
        steps[name] = ((lambda p=pred, b=batch: p.logits(b)), len(batch))
    return steps


def bench_breakdown(export: Path, iters: int) -> None:
    """CPU per step of a request, the steps interleaved so they share the background load."""
    steps = _breakdown_steps(export)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in steps}
    for _ in range(max(3, iters // 10)):
        for name, (fn, _) in steps.items():
            results[name].append(_cpu_ms(fn, 10))
    print(f"  CPU per step ({PHOTO_WIDTH}px photo; median, steps interleaved):")
    for name, (_, n) in steps.items():
        cpu = statistics.median(c for c, _ in results[name]) / n
        wall = statistics.median(w for _, w in results[name]) / n
        print(f"    {name:34s} {cpu:6.2f} ms CPU, {wall:6.2f} ms wall per image")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(export: Path, src: Path | None) -> tuple[subprocess.Popen[bytes], str]:
    """`oiforge serve EXPORT` in its own process; ``src`` runs another checkout's code."""
    import urllib.request

    port = free_port()
    cmd = [sys.executable, "-c", "from oiforge.cli import main; main()", "serve", str(export)]
    env = dict(os.environ, PYTHONPATH=str(src)) if src else None
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc), all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def multipart(jpeg: bytes) -> tuple[bytes, str]:
    """One multipart body, built once: the client must not spend CPU re-encoding it."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="photo.jpg"'
        "\r\nContent-Type: image/jpeg\r\n\r\n"
    )
    body = head.encode() + jpeg + f"\r\n--{BOUNDARY}--\r\n".encode()
    return body, f"multipart/form-data; boundary={BOUNDARY}"


async def _one(session: Any, url: str, body: bytes, ctype: str, due: float) -> tuple[float, int]:
    """Latency from the request's scheduled time (no coordinated omission), and its status."""
    import aiohttp

    try:
        async with session.post(url, data=body, headers={"Content-Type": ctype}) as resp:
            await resp.read()
            return (time.perf_counter() - due) * 1000, resp.status
    except (aiohttp.ClientError, TimeoutError):
        return (time.perf_counter() - due) * 1000, 0


async def _open_loop(url: str, rate: float, seconds: float, jpeg: bytes) -> dict[str, Any]:
    import aiohttp

    body, ctype = multipart(jpeg)
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for _ in range(3):  # warm connections and the model
            await _one(session, f"{url}/v1/predict", body, ctype, time.perf_counter())
        cpu0, start, tasks = time.process_time(), time.perf_counter(), []
        for i in range(int(rate * seconds)):
            due = start + i / rate
            if (delay := due - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_one(session, f"{url}/v1/predict", body, ctype, due)))
        results = await asyncio.gather(*tasks)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    return _summary(results, wall, cpu, rate)


def _summary(
    results: list[tuple[float, int]], wall: float, cpu: float, rate: float
) -> dict[str, Any]:
    lat = np.array([ms for ms, status in results if status == 200])
    pct = {f"p{q}": float(np.percentile(lat, q)) if lat.size else float("nan") for q in PCTS}
    errors = Counter(str(status) for _, status in results if status != 200)
    return {
        "rate": rate,
        "sent": len(results),
        "ok": int(lat.size),
        "ok_rps": lat.size / wall,
        **pct,
        "errors": sum(errors.values()),
        "by_status": dict(errors),
        "client_cpu_s": cpu,
        "wall_s": wall,
    }


def run_client(url: str, rate: float, seconds: float, jpeg_path: Path) -> None:
    """The load generator's own process: prints one JSON line of results."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(_open_loop(url, rate, seconds, jpeg_path.read_bytes()))))


def drive(pid: int, url: str, rate: float, seconds: float, jpeg_path: Path) -> dict[str, Any]:
    """One rate against the server ``pid``: the client's results plus both processes' CPU."""
    cmd = [sys.executable, __file__, "--client", url, "--rate", str(rate)]
    cmd += ["--seconds", str(seconds), "--jpeg", str(jpeg_path)]
    server0, load0 = cpu_seconds(pid), os.getloadavg()[0]
    out = subprocess.run(cmd, capture_output=True, check=True, text=True).stdout
    row: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    server_cpu = cpu_seconds(pid) - server0
    # per answered request (+3 warm-ups): uvicorn's 503s for connections over its limit are cheap
    row["server_ms_per_req"] = server_cpu * 1000 / (row["ok"] + 3)
    row["client_ms_per_req"] = row["client_cpu_s"] * 1000 / row["sent"]
    row["client_share"] = row["client_cpu_s"] / max(1e-9, row["client_cpu_s"] + server_cpu)
    row["load"] = (load0 + os.getloadavg()[0]) / 2
    return row


def print_row(name: str, row: dict[str, Any]) -> None:
    print(
        f"  {name:7s} {row['rate']:5.0f} rps offered: {row['ok_rps']:6.1f} ok/s, "
        f"p50 {row['p50']:7.1f} ms, p99 {row['p99']:7.1f} ms, "
        f"errors {row['errors']}/{row['sent']} {row['by_status'] or ''}; "
        f"CPU/req server {row['server_ms_per_req']:.1f} ms, client "
        f"{row['client_ms_per_req']:.2f} ms ({row['client_share']:.0%} of the two); "
        f"load {row['load']:.1f}",
        flush=True,
    )


def bench_http(
    export: Path,
    rates: list[float],
    seconds: float,
    rounds: int,
    variants: dict[str, Path | None],
    peer_iters: int,
) -> tuple[list[tuple[str, dict[str, Any]]], list[float]]:
    """Every variant at every rate, ``rounds`` times, variants alternating within a round;
    the in-process peer (``peer_iters`` photos, 0: none) runs before each server."""
    jpeg_path = OUT / "photo.jpg"
    jpeg_path.write_bytes(photo_jpeg())
    print(f"  request: multipart, one {len(jpeg_path.read_bytes()) / 1000:.0f} KB JPEG")
    rows, peers = [], []
    for _ in range(rounds):
        for name, src in variants.items():
            if peer_iters:
                peers.append(peer_cpu_ms(export, peer_iters))
                print(f"  peer: predictor in process, back to back: {peers[-1]:.2f} ms CPU/photo")
            proc, url = start_server(export, src)
            try:
                for rate in rates:
                    rows.append((name, drive(proc.pid, url, rate, seconds, jpeg_path)))
                    print_row(name, rows[-1][1])
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
    return rows, peers


def print_medians(
    rows: list[tuple[str, dict[str, Any]]], in_process_cpu: float | None, at_start: float | None
) -> list[Row]:
    """Prints the medians over rounds; returns p99 against 100 ms and server CPU per request
    against the in-process predictor's CPU for the same photo, for each variant and rate."""
    print("medians over rounds:")
    results = []
    keys = sorted({(name, row["rate"]) for name, row in rows}, key=lambda k: (k[1], k[0]))
    for name, rate in keys:
        runs = [row for n, row in rows if (n, row["rate"]) == (name, rate)]
        med = {k: statistics.median(r[k] for r in runs) for k in MEDIAN_KEYS}
        errors = sum(r["errors"] for r in runs)
        per_req = med["server_ms_per_req"] + med["client_ms_per_req"]
        print(
            f"  {name:7s} {rate:5.0f} rps: {med['ok_rps']:6.1f} ok/s, p50 {med['p50']:7.1f}, "
            f"p99 {med['p99']:7.1f} ms (p99/100 ms = {med['p99'] / 100:.2f}), errors {errors}, "
            f"server {med['server_ms_per_req']:.1f} ms CPU/req, client "
            f"{med['client_ms_per_req']:.2f} ms ({med['client_share']:.0%}), "
            f"CPU-bound capacity {(os.cpu_count() or 1) * 1000 / per_req:.0f} rps, "
            f"load {med['load']:.1f} ({len(runs)} runs)"
        )
        results += http_rows(f"{name} {rate:.0f} rps", med, errors, in_process_cpu, at_start)
    return results


#: Issue #6: p99 < 100 ms at 50 rps; #25: server CPU per request <= 1.25x the in-process one.
P99_LIMIT_MS, CPU_GOAL = 100.0, 1.25


def http_rows(
    what: str,
    med: dict[str, float],
    errors: int,
    in_process_cpu: float | None,
    at_start: float | None = None,
) -> list[Row]:
    at_50 = what.endswith(" 50 rps")
    p99 = med["p99"] / P99_LIMIT_MS
    extra = {"ok_rps": med["ok_rps"], "p50_ms": med["p50"], "errors": errors, "load": med["load"]}
    rows = [
        Row(f"{what}: p99 latency", med["p99"], "ms", "limit", P99_LIMIT_MS, p99,
            "< 100 ms at 50 rps (#6)" if at_50 else "", p99 < 1 if at_50 else None, extra=extra)
    ]  # fmt: skip
    if in_process_cpu:
        cpu = med["server_ms_per_req"] / in_process_cpu
        rows.append(
            Row(f"{what}: server CPU per request", med["server_ms_per_req"], "ms",
                "in-process predictor CPU, same photo (mean, beside each server run)",
                in_process_cpu, cpu, f"<= {CPU_GOAL} (#25)", cpu <= CPU_GOAL,
                extra={"peer_median_per_call_at_start_ms": at_start})
        )  # fmt: skip
    return rows


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rates", default="10,50,100")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--http-only", action="store_true", help="Skip the latency part.")
    parser.add_argument(
        "--compare-src", type=Path, help="Also run this checkout's src/ (e.g. a `git archive`)."
    )
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--jpeg", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.client:
        run_client(args.client, args.rate, args.seconds, args.jpeg)
        return
    if args.peer:
        run_peer(build_export(), args.iters)
        return
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    export = build_export()
    results: list[Row] = []
    in_process_cpu = None
    if not args.http_only:
        print("per-image latency (same model, same input):")
        for threads in sorted({1, args.threads}):
            results.append(latency_row(threads, *bench_latency(export, args.iters, threads)))
        bench_end_to_end(export, args.iters, args.threads)
        in_process_cpu = in_process_cpu_ms(export, args.iters)
        bench_breakdown(export, args.iters)
    print(
        f"HTTP: oiforge serve on loopback, open-loop client process, {args.seconds:.0f} s per rate:"
    )
    variants: dict[str, Path | None] = {"current": None}
    if args.compare_src:
        variants["compare"] = args.compare_src.resolve()
    rates = [float(r) for r in args.rates.split(",") if r]  # --rates "": no HTTP part
    if rates:
        peer_iters = args.iters * 2 if in_process_cpu else 0
        rows, peers = bench_http(export, rates, args.seconds, args.rounds, variants, peer_iters)
        peer = statistics.median(peers) if peers else None
        if peer and in_process_cpu:
            print(f"peer: {peer:.2f} ms CPU/photo (median of {len(peers)} runs beside the servers;"
                  f" {in_process_cpu:.2f} ms as a median per call at the start)")  # fmt: skip
        results += print_medians(rows, peer, in_process_cpu)
    how = f"--iters {args.iters} --seconds {args.seconds} --rates {args.rates}"
    write_results("bench_serve", results, notes=f"{how}, {args.rounds} rounds")


def latency_row(threads: int, eager_ms: float, ort_ms: float) -> Row:
    """ONNX Runtime against torch eager at batch 1 (issue #6: >= 2x on one thread)."""
    ratio = eager_ms / ort_ms
    goal = ">= 2x (torch/ORT)" if threads == 1 else ""
    return Row(f"batch 1, {threads} thread(s): ONNX Runtime", ort_ms, "ms", "torch eager",
               eager_ms, ratio, goal, ratio >= 2 if threads == 1 else None)  # fmt: skip


if __name__ == "__main__":
    main()
