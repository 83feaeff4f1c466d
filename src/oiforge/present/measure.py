"""What a deck measures, each once, cached in ``RUN/present/``: the learning curve, the
serving capacity and the next training's cost; and the sizing arithmetic on them.

The learning curve: the run's recipe retrained on 25% and 50% of its training photos. Each
point trains with the run's own config.yaml on a seeded, stratified subset of the training
split (whole source photos per class, at least one per class; val unchanged) and is evaluated
on the run's test split, through the public ``oiforge.train`` and ``oiforge.evaluate`` APIs.
The 100% point is the run's own metrics.json. Points are cached in
``RUN/present/learning_curve.json`` (keyed by config, dataset and fractions) as they finish,
so a rerun reads them, and a killed measurement resumes at the next fraction.

Serving capacity comes from ``bench/results/bench_serve.json`` when it has a requests/s row,
else from timing the run's own ONNX predictor here (decode + preprocess + ONNX Runtime on one
thread, HTTP not included); from it, the replica sizing and the managed-service break-even.
The next training's cost comes from ``oiforge estimate``'s model (measured throughput here,
scaled by the GPU table), cached in ``RUN/present/estimate.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from oiforge.atomic import write_bytes_atomic, write_text_atomic
from oiforge.errors import MalformedFileError, OiforgeError, StageError
from oiforge.present.facts import (
    DatasetFacts,
    EvalFacts,
    Missing,
    RunFacts,
    SampleRow,
    photo_bytes,
    read_mapping,
    read_serve_bench,
    sha256_of,
)
from oiforge.present.figures import PowerFit, class_scores, headline, power_fit

log = logging.getLogger(__name__)

FRACTIONS = (0.25, 0.5)
CACHE_VERSION = 1
WORK_DIR = "present"
CURVE_FILE = "learning_curve.json"


@dataclass(frozen=True)
class CurvePoint:
    fraction: float
    train_images: int
    score: float  # accuracy, or mAP for multilabel
    test_samples: int
    per_class: dict[str, tuple[int, float]]  # class -> (train images, recall or AP)
    seconds: float  # what training + evaluating this point cost (0: the run itself)


@dataclass(frozen=True)
class LearningCurve:
    metric: str
    points: tuple[CurvePoint, ...]
    measured_s: float  # spent now (0 when every point came from the cache)
    cost_s: float  # what all points cost when they were measured


def cache_key(run: RunFacts, dataset: DatasetFacts, fractions: Sequence[float]) -> str:
    digest = hashlib.sha256(f"v{CACHE_VERSION}|{sorted(fractions)}|".encode())
    digest.update((run.path / "config.yaml").read_bytes())
    digest.update(
        str(dataset.lock.get("top_hash") or sha256_of(dataset.path / "manifest.parquet")).encode()
    )
    return digest.hexdigest()[:24]


def full_point(dataset: DatasetFacts, evaluation: EvalFacts) -> CurvePoint:
    """The run itself: all its training photos, its own metrics.json."""
    head = headline(evaluation.metrics)
    per = {
        c.name: (dataset.count("train", c.name), c.score) for c in class_scores(evaluation.metrics)
    }
    return CurvePoint(1.0, dataset.count("train"), head.value, head.samples, per, 0.0)


def learning_curve(
    run: RunFacts,
    dataset: DatasetFacts,
    evaluation: EvalFacts,
    *,
    measure: bool = True,
    fractions: Sequence[float] = FRACTIONS,
    progress: Callable[[str], None] | None = None,
) -> LearningCurve | None:
    """The curve from the cache, measuring what is missing when ``measure``; None if nothing."""
    key = cache_key(run, dataset, fractions)
    cache = run.path / WORK_DIR / CURVE_FILE
    done = _read_cache(cache, key)
    spent = 0.0
    for fraction in fractions:
        if fraction in done or not measure:
            continue
        if progress:
            progress(f"learning curve: training on {fraction:.0%} of the training photos")
        start = time.perf_counter()
        done[fraction] = _measure(run, dataset, fraction)
        spent += time.perf_counter() - start
        _write_cache(cache, key, done)
    if not done:
        return None
    points = sorted([*done.values(), full_point(dataset, evaluation)], key=lambda p: p.fraction)
    metric = headline(evaluation.metrics).name
    return LearningCurve(metric, tuple(points), spent, sum(p.seconds for p in points))


def _read_cache(path: Path, key: str) -> dict[float, CurvePoint]:
    if not path.is_file():
        return {}
    data = read_mapping(path)
    if data.get("key") != key:
        log.info("learning curve cache %s is for another config or dataset: remeasuring", path)
        return {}
    try:
        points = [
            CurvePoint(**{**p, "per_class": {k: tuple(v) for k, v in p["per_class"].items()}})
            for p in data["points"]
        ]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MalformedFileError(str(path), f"bad learning-curve point ({exc})") from exc
    return {p.fraction: p for p in points}


def _write_cache(path: Path, key: str, done: dict[float, CurvePoint]) -> None:
    points = [asdict(done[f]) for f in sorted(done)]
    write_text_atomic(path, json.dumps({"key": key, "points": points}, indent=2) + "\n")


def pick_subset(rows: Sequence[SampleRow], fraction: float, seed: int) -> list[SampleRow]:
    """Whole source photos per class, seeded: ``round(fraction * photos)``, at least one."""
    by_class: dict[str, dict[str, list[SampleRow]]] = {}
    for row in rows:
        by_class.setdefault(row.class_name, {}).setdefault(row.image_id, []).append(row)
    rng = random.Random(seed)
    chosen: list[SampleRow] = []
    for name in sorted(by_class):
        photos = sorted(by_class[name])
        rng.shuffle(photos)
        for image_id in photos[: max(1, round(fraction * len(photos)))]:
            chosen += by_class[name][image_id]
    return chosen


def _measure(run: RunFacts, dataset: DatasetFacts, fraction: float) -> CurvePoint:
    from oiforge.evaluate import evaluate
    from oiforge.train import build_config, train

    work = run.path / WORK_DIR / f"curve-{round(fraction * 100)}"
    shutil.rmtree(work, ignore_errors=True)  # a point killed half-way starts again
    train_rows = [s for s in dataset.samples if s.split == "train"]
    chosen = pick_subset(train_rows, fraction, int(run.config.get("seed") or 0))
    val_rows = [s for s in dataset.samples if s.split == "val"]
    _write_subset(dataset, [*chosen, *val_rows], work / "data")
    options: dict[str, Any] = {
        **run.config,
        "dataset": str(work / "data"),
        "out": str(work / "run"),
    }
    options["world_size"] = 1
    start = time.perf_counter()
    try:
        train(build_config(**options))
        evaluate(work / "run", dataset.path, workers=int(options.get("workers") or 0))
    except OiforgeError as exc:
        raise StageError(f"learning curve at {fraction:.0%}: {exc}") from exc
    seconds = time.perf_counter() - start
    metrics = read_mapping(work / "run" / "metrics.json")
    for weights in (work / "run").glob("*.safetensors"):
        weights.unlink()  # only the numbers are kept; the weights are 10s of MB a point
    shutil.rmtree(work / "data", ignore_errors=True)
    per_train = {n: sum(1 for s in chosen if s.class_name == n) for n in dataset.classes}
    per = {c.name: (per_train.get(c.name, 0), c.score) for c in class_scores(metrics)}
    head = headline(metrics)
    return CurvePoint(fraction, len(chosen), head.value, head.samples, per, round(seconds, 3))


def _write_subset(dataset: DatasetFacts, rows: Sequence[SampleRow], root: Path) -> None:
    """Class folders of the chosen samples: links to the dataset's files, or the bytes of
    their WebDataset members; classes.json copied so class indexes stay the same."""
    for row in rows:
        folder = row.class_folder or row.class_name
        target = root / row.split / folder / f"{row.key or row.image_id}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        source = dataset.path / row.sample_path if row.sample_path else None
        if source is not None and source.is_file():
            target.symlink_to(source.resolve())
            continue
        data = photo_bytes(dataset, row)
        if data is None:
            raise StageError(f"learning curve: cannot read sample {row.key} of {dataset.path}")
        write_bytes_atomic(target, data)
    if (dataset.path / "classes.json").is_file():
        shutil.copyfile(dataset.path / "classes.json", root / "classes.json")


def overall_fit(curve: LearningCurve) -> PowerFit | None:
    """The power law through the headline metric's points (errors floored at half a test
    mistake)."""
    floor = 0.5 / max(1, max(p.test_samples for p in curve.points))
    return power_fit([(p.train_images, 1 - p.score) for p in curve.points], floor)


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
