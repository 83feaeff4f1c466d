"""The service's model holder and the per-request work (fetch, decode, infer) in a thread."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from oiforge.errors import OiforgeError
from oiforge.serve.api_errors import ApiError
from oiforge.serve.batcher import DEFAULT_MAX_BATCH, Batcher
from oiforge.serve.fetch import FetchPolicy, FetchRejected, fetch_url
from oiforge.serve.inputs import ImageInput
from oiforge.serve.metrics import Metrics
from oiforge.serve.predictor import Predictor, Score
from oiforge.serve.preprocess import DEFAULT_MAX_PIXELS, ImageRejected, preprocess_bytes

log = logging.getLogger(__name__)

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
        self.batcher: Batcher | None = None

    def load(self) -> None:
        with self._lock:
            if self._predictor is None and self._path is not None:
                try:
                    self._predictor = Predictor(self._path, threads=self.config.threads)
                except OiforgeError as exc:
                    self._error = str(exc)
                    log.error("model failed to load: %s", exc)
            if self._predictor is not None and self.batcher is None:
                self.batcher = Batcher(self._predictor, self.metrics, self.config.max_batch)
            self.metrics.ready.set(1 if self.batcher else 0)

    def close(self) -> None:
        self.draining = True
        if self.batcher is not None:
            self.batcher.close()

    def require_ready(self) -> Predictor:
        if self._predictor is None or self.batcher is None:
            raise ApiError(503, "not_ready", f"not ready: {self._error or 'model loading'}")
        return self._predictor

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


def predict_inputs(
    holder: ModelHolder, predictor: Predictor, items: list[ImageInput], top_k: int
) -> list[ItemPrediction]:
    """Fetch, decode and classify every image; the first bad one fails the request (4xx)."""
    config = holder.config
    arrays, sizes = [], []
    for i, item in enumerate(items):
        try:
            arr, decoded = preprocess_bytes(
                _image_bytes(item, i, config), predictor.labels.preprocessing, config.max_pixels
            )
        except ImageRejected as exc:
            status = FAILURE_STATUS.get(exc.code, 422)
            raise ApiError(status, exc.code, f"image {i} ({item.name}): {exc}", index=i) from exc
        arrays.append(arr)
        sizes.append((decoded.width, decoded.height))
    assert holder.batcher is not None  # require_ready() checked it
    ranked = predictor.top_k(holder.batcher.probabilities(arrays), top_k)
    holder.metrics.images.inc(len(items))
    return [
        ItemPrediction(item.name, w, h, scores)
        for item, (w, h), scores in zip(items, sizes, ranked, strict=True)
    ]
