"""The service's configuration (:class:`ServeConfig`), its model holder (:class:`ModelHolder`)
and the per-request work: fetch, decode, infer.

A request never holds a thread while it waits: URL fetches run in the loop's default
executor; decoding, preprocessing and inference run in the inference pool's workers, one per
core (FIFO, so under load requests finish in arrival order instead of 40 threads
time-slicing each other), each image's future awaited on the event loop.

The pools are sized by the cores this process may really use (:func:`usable_cores`):
``os.cpu_count()`` is the host's count: in a container limited to 2 CPUs on a 64-core host
it says 64, and a service sized by it would run 64 workers on 2 CPUs.
This reads the CPU affinity and the cgroup CPU quota (v2 ``cpu.max``, v1 ``cfs_quota_us``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from oiforge.errors import OiforgeError
from oiforge.serve.api_errors import ApiError
from oiforge.serve.images import (
    DEFAULT_MAX_PIXELS,
    FetchPolicy,
    FetchRejected,
    ImageRejected,
    fetch_url,
)
from oiforge.serve.inputs import ImageInput
from oiforge.serve.metrics import Metrics
from oiforge.serve.predictor import (
    DEFAULT_MAX_BATCH,
    InferencePool,
    Prediction,
    Predictor,
    Score,
)

log = logging.getLogger(__name__)

#: Images accepted but not answered yet, beyond which requests get a quick 503: at ~25 ms of
#: CPU per image on 2 cores, a request then waits at most ~1 s instead of queueing for tens.
DEFAULT_MAX_PENDING: Final = 64
#: HTTP status per per-image failure code.
FAILURE_STATUS = {"image_too_large": 413, "url_too_large": 413}


@dataclass(frozen=True)
class ServeConfig:
    """The service's limits and switches (one frozen object, built by the CLI)."""

    max_upload_bytes: int = 20 * 1024 * 1024
    max_images: int = 16
    max_pixels: int = DEFAULT_MAX_PIXELS
    default_top_k: int = 5
    url_inputs: bool = True
    url_allow_private: bool = False
    url_timeout_s: float = 10.0
    threads: int = 0
    max_batch: int = DEFAULT_MAX_BATCH
    workers: int = 0
    max_pending: int = DEFAULT_MAX_PENDING

    @property
    def worker_threads(self) -> int:
        """Threads that decode images and run the model (``workers`` 0: one per usable core)."""
        return self.workers or usable_cores()

    @property
    def inference_threads(self) -> int:
        """ONNX Runtime intra-op threads per model call (``threads`` 0: one).

        Throughput comes from the workers running calls side by side; one thread per call
        costs the least CPU per image (no intra-op synchronisation; bench/RESULTS.md, "serve").
        """
        return self.threads or 1

    @property
    def fetch_policy(self) -> FetchPolicy:
        return FetchPolicy(self.max_upload_bytes, self.url_timeout_s, self.url_allow_private)


class ModelHolder:
    """Loads the model once (in a thread at start-up) and says whether it is ready."""

    def __init__(self, model: Path | Predictor, config: ServeConfig, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics
        self.draining = False  # set on SIGTERM: /readyz says 503, requests still served
        self._path = None if isinstance(model, Predictor) else Path(model)
        self._predictor = model if isinstance(model, Predictor) else None
        self._error = ""
        self._lock = threading.Lock()
        self.pool: InferencePool | None = None
        self.pending = 0  # images accepted and not answered; touched by the event loop only

    def load(self) -> None:
        with self._lock:
            if self._predictor is None and self._path is not None:
                try:
                    self._predictor = Predictor(
                        self._path, self.config.inference_threads, spin=False
                    )
                except OiforgeError as exc:
                    self._error = str(exc)
                    log.error("model failed to load: %s", exc)
            if self._predictor is not None and self.pool is None:
                self.pool = InferencePool(
                    self._predictor,
                    self.metrics,
                    self.config.worker_threads,
                    self.config.max_batch,
                    self.config.max_pixels,
                )
            self.metrics.ready.set(1 if self.pool else 0)
        # everything alive now (modules, the model) lives as long as the process: keep it out
        # of the cyclic collector's sweeps, which each request's garbage would otherwise pay
        gc.freeze()

    def close(self) -> None:
        self.draining = True
        if self.pool is not None:
            self.pool.close()

    def require_ready(self) -> Predictor:
        if self._predictor is None or self.pool is None:
            raise ApiError(503, "not_ready", f"not ready: {self._error or 'model loading'}")
        return self._predictor

    def check_capacity(self, images: int = 1) -> None:
        """503 ``overloaded`` when ``images`` more would exceed ``max_pending`` (not when idle)."""
        if self.pending and self.pending + images > self.config.max_pending:
            raise ApiError(
                503, "overloaded", f"{self.pending} images are queued; retry in a moment"
            )

    def require_serving(self) -> None:
        """Ready and not draining (what a load balancer's readiness probe wants)."""
        self.require_ready()
        if self.draining:
            raise ApiError(503, "not_ready", "shutting down: finishing in-flight requests")


@dataclass(frozen=True)
class ItemPrediction:
    name: str
    width: int
    height: int
    scores: list[Score]
    labels: list[Score] | None = None  # multi-label: the classes at or above their thresholds


def _image_bytes(item: ImageInput, index: int, config: ServeConfig) -> bytes:
    if item.data is not None:
        return item.data
    if not config.url_inputs:
        raise ApiError(422, "url_inputs_disabled", "this service does not fetch URLs", index=index)
    try:
        return fetch_url(item.url or "", config.fetch_policy)
    except FetchRejected as exc:
        status = FAILURE_STATUS.get(exc.code, 422)
        raise ApiError(status, exc.code, str(exc), index=index) from exc


def _payloads(items: list[ImageInput], config: ServeConfig) -> list[bytes]:
    return [_image_bytes(item, i, config) for i, item in enumerate(items)]


def _failure(exc: BaseException, index: int, name: str) -> BaseException:
    if not isinstance(exc, ImageRejected):
        return exc
    status = FAILURE_STATUS.get(exc.code, 422)
    return ApiError(status, exc.code, f"image {index} ({name}): {exc}", index=index)


async def _infer(holder: ModelHolder, items: list[ImageInput]) -> list[Prediction]:
    if all(item.data is not None for item in items):
        payloads = [item.data or b"" for item in items]
    else:
        payloads = await asyncio.to_thread(_payloads, items, holder.config)
    assert holder.pool is not None  # require_ready() checked it
    futures = [asyncio.wrap_future(holder.pool.submit(data)) for data in payloads]
    results = await asyncio.gather(*futures, return_exceptions=True)
    for i, result in enumerate(results):  # the first bad image (by position) fails the request
        if isinstance(result, BaseException):
            raise _failure(result, i, items[i].name) from result
    return [r for r in results if isinstance(r, Prediction)]


async def predict_inputs(
    holder: ModelHolder, predictor: Predictor, items: list[ImageInput], top_k: int
) -> list[ItemPrediction]:
    """Fetch, decode and classify every image; the first bad one fails the request (4xx)."""
    holder.check_capacity(len(items))
    holder.pending += len(items)
    holder.metrics.pending.set(holder.pending)
    try:
        predictions = await _infer(holder, items)
    finally:
        holder.pending -= len(items)
        holder.metrics.pending.set(holder.pending)
    probs = np.stack([p.probs for p in predictions])
    ranked = predictor.top_k(probs, top_k)
    above: list[list[Score] | None] = [None] * len(items)
    above = list(predictor.above_thresholds(probs) or above)
    holder.metrics.images.inc(len(items))
    return [
        ItemPrediction(item.name, p.width, p.height, scores, labels)
        for item, p, scores, labels in zip(items, predictions, ranked, above, strict=True)
    ]


CGROUP_ROOT: Final = Path("/sys/fs/cgroup")


def _ratio(quota: str, period: str) -> int | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None  # "max" (no limit) or an unreadable value
    return math.ceil(q / p) if q > 0 and p > 0 else None


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> int | None:
    """Whole CPUs allowed by the cgroup quota (rounded up), or None when unlimited/unknown."""
    try:
        fields = (root / "cpu.max").read_text().split()
        return _ratio(fields[0], fields[1]) if len(fields) == 2 else None
    except OSError:
        pass
    try:
        quota = (root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
        period = (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
    except OSError:
        return None
    return _ratio(quota, period)


def usable_cores(root: Path = CGROUP_ROOT) -> int:
    """CPUs this process may run on (affinity), capped by a cgroup quota; at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    limit = cgroup_cpu_limit(root)
    return max(1, min(cores, limit) if limit else cores)
