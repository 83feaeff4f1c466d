"""Serving capacity, replica sizing, the managed-service break-even, the next training's cost.

Capacity comes from ``bench/results/bench_serve.json`` when it has a requests/s row, else from
timing the run's own ONNX predictor here (decode + preprocess + ONNX Runtime on one thread,
HTTP not included). The next training's cost comes from ``oiforge estimate``'s model
(measured throughput here, scaled by the GPU table), cached in ``RUN/present/estimate.json``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from oiforge.atomic import write_text_atomic
from oiforge.errors import MalformedFileError, OiforgeError
from oiforge.present.facts import Missing, RunFacts, read_mapping, read_serve_bench

ESTIMATE_FILE = "estimate.json"
LOADS_RPS = (1, 10, 100, 1000)
TIMING_S = 1.0
#: Requests are timed at a typical upload size: phones and cameras send >= 1024 px photos,
#: and decoding, not the model, is where the size shows.
UPLOAD_SIDE = 1024


@dataclass(frozen=True)
class Capacity:
    ms_per_request: float  # CPU time of one request on one core
    rps_per_replica: float
    cores: int
    source: str
    measured_here: bool


@dataclass(frozen=True)
class Replicas:
    load_rps: float
    replicas: int
    usd_per_month: float


@dataclass(frozen=True)
class BreakEven:
    service: str
    kind: str  # "per prediction" | "per hour"
    managed_usd_per_month: float | None  # fixed services
    volume_per_month: float | None  # predictions a month where both cost the same
    self_usd_per_month: float
    replicas: int
    source: str


@dataclass
class EstimateFacts:
    images: int
    passes: int
    here_img_s: float
    here_what: str
    decode_img_s_per_core: float
    rows: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    measured_s: float = 0.0  # what measuring it cost
    cached: bool = False  # read from estimate.json rather than measured now


# --- serving capacity -----------------------------------------------------------------


def serve_capacity(
    run: RunFacts, photos: Sequence[bytes], bench: Path, cores: int
) -> Capacity | Missing:
    found = read_serve_bench(bench)
    if found is not None:
        ms, what = found
        return Capacity(ms, cores * 1000.0 / ms, cores, f"measured by {what}", False)
    if run.onnx is None:
        return Missing(
            "model.onnx",
            "the run was not exported, so its serve capacity cannot be timed",
            f"oiforge export {run.path}",
        )
    ms, what = time_predictor(run.onnx, photos)
    return Capacity(ms, cores * 1000.0 / ms, cores, what, True)


def time_predictor(onnx: Path, photos: Sequence[bytes]) -> tuple[float, str]:
    """Milliseconds per request of the run's ONNX predictor on one thread, and what was timed."""
    import numpy as np

    from oiforge.serve.images import preprocess_bytes
    from oiforge.serve.predictor import Predictor

    predictor = Predictor(onnx, threads=1, spin=False)
    pre = predictor.labels.preprocessing
    blank = np.zeros((3, pre.size, pre.size), dtype=np.float32)

    def once(data: bytes | None) -> None:
        x = preprocess_bytes(data, pre)[0] if data is not None else blank
        predictor.probabilities([x])

    inputs: list[bytes | None] = [upload_sized(p) for p in photos] or [None]
    once(inputs[0])  # warm-up: ORT allocations
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < TIMING_S or done < 5:
        once(inputs[done % len(inputs)])
        done += 1
    ms = 1000.0 * (time.perf_counter() - start) / done
    what = (
        f"timed here: {done} requests, {len(photos)} dataset photos enlarged to {UPLOAD_SIDE} px "
        "(a typical upload), decode + preprocess + ONNX Runtime on one thread, HTTP not included"
        if photos
        else f"timed here: {done} inferences, ONNX Runtime on one thread (no photos to decode)"
    )
    return ms, what


def upload_sized(photo: bytes) -> bytes:
    """The photo as a JPEG of ``UPLOAD_SIDE`` px on its long side (quality 90)."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(photo)) as img:
        rgb = img.convert("RGB")
    scale = UPLOAD_SIDE / max(rgb.size)
    big = rgb.resize(
        (round(rgb.width * scale), round(rgb.height * scale)), Image.Resampling.BICUBIC
    )
    buf = io.BytesIO()
    big.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def replicas_for(load_rps: float, capacity: Capacity, prices: dict[str, Any]) -> Replicas:
    replica = prices["replica"]
    usable = capacity.rps_per_replica * float(replica["utilisation"])
    n = max(int(replica["min_replicas"]), math.ceil(load_rps / usable))
    monthly = n * float(replica["usd_per_hour"]) * float(prices["hours_per_month"])
    return Replicas(load_rps, n, monthly)


def self_hosted_month(replicas: int, prices: dict[str, Any]) -> float:
    replica, ops = prices["replica"], prices.get("operations") or {}
    machines = replicas * float(replica["usd_per_hour"]) * float(prices["hours_per_month"])
    return machines + float(ops.get("hours_per_month", 0)) * float(ops.get("usd_per_hour", 0))


def break_even(capacity: Capacity, prices: dict[str, Any]) -> list[BreakEven]:
    """Per managed service: the monthly volume where it costs what self-hosting costs."""
    out = []
    seconds_month = float(prices["hours_per_month"]) * 3600
    peak = float(prices.get("peak_to_average", 3.0))
    for service in prices["managed"]:
        name, source = str(service["name"]), str(service.get("source", ""))
        if "usd_per_1000_predictions" in service:
            per = float(service["usd_per_1000_predictions"]) / 1000
            n = int(prices["replica"]["min_replicas"])
            while True:  # the volume where managed = self-hosted with the replicas it needs
                volume = self_hosted_month(n, prices) / per
                need = replicas_for(volume / seconds_month * peak, capacity, prices).replicas
                if need <= n:
                    break
                n = need
            out.append(
                BreakEven(
                    name, "per prediction", None, volume, self_hosted_month(n, prices), n, source
                )
            )
        elif "usd_per_hour" in service:
            fixed = float(service["usd_per_hour"]) * float(prices["hours_per_month"])
            n = int(prices["replica"]["min_replicas"])
            out.append(
                BreakEven(name, "per hour", fixed, None, self_hosted_month(n, prices), n, source)
            )
        else:
            raise MalformedFileError(
                "prices", f"{name}: no usd_per_1000_predictions or usd_per_hour"
            )
    return out


# --- the next training run: oiforge estimate, cached ---------------------------------------


def estimate_key(run: RunFacts, dataset_identity: str) -> str:
    digest = hashlib.sha256((run.path / "config.yaml").read_bytes())
    digest.update(dataset_identity.encode())
    return digest.hexdigest()[:24]


def cached_estimate(
    run: RunFacts, dataset: Path, identity: str, *, measure: bool
) -> EstimateFacts | Missing:
    path = run.path / "present" / ESTIMATE_FILE
    key = estimate_key(run, identity)
    if path.is_file():
        data = read_mapping(path)
        if data.get("key") == key:
            try:
                fields = {k: v for k, v in data.items() if k not in ("key", "cached")}
                return EstimateFacts(**fields, cached=True)
            except TypeError as exc:
                raise MalformedFileError(str(path), f"bad estimate ({exc})") from exc
    command = f"oiforge present {run.path}   (without --no-estimate)"
    if not measure:
        return Missing("training estimate", "it was not measured (--no-estimate)", command)
    try:
        facts = _measure_estimate(run, dataset)
    except OiforgeError as exc:
        return Missing("training estimate", f"`oiforge estimate` failed: {exc}", command)
    saved = {k: v for k, v in asdict(facts).items() if k != "cached"}
    write_text_atomic(path, json.dumps({"key": key, **saved}, indent=2) + "\n")
    return facts


def _measure_estimate(run: RunFacts, dataset: Path) -> EstimateFacts:
    from oiforge.train.estimate import estimate

    cfg = run.config
    start = time.perf_counter()
    result = estimate(
        dataset,
        model=str(cfg.get("model") or "efficientnet_lite0"),
        mode=str(cfg.get("mode") or "probe"),
        epochs=int(cfg.get("epochs") or 20),
        image_size=int(cfg.get("image_size") or 224),
        batch_size=int(cfg.get("batch_size") or 32),
        steps=2,
    )
    rows = [asdict(r) for r in result.rows]
    return EstimateFacts(
        result.images,
        result.epochs_effective,
        result.here_img_s,
        result.here_what,
        result.decode_img_s_per_core,
        rows,
        list(result.warnings),
        round(time.perf_counter() - start, 3),
    )
