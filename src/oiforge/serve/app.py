"""The HTTP service: FastAPI over an ONNX Runtime ``Predictor``.

``create_app(model, config)`` returns the ASGI app. The model loads in a background thread at
start-up, so ``/healthz`` answers at once and ``/readyz`` turns 200 when the model is ready.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response

from oiforge import __version__
from oiforge.paths import package_data
from oiforge.serve.api_errors import ApiError, install_error_handlers
from oiforge.serve.docs import add_offline_docs
from oiforge.serve.holder import ModelHolder, ServeConfig, predict_inputs
from oiforge.serve.inputs import BodyLimitMiddleware, parse_body, parse_top_k
from oiforge.serve.metrics import Metrics, MetricsMiddleware
from oiforge.serve.models import (
    ERROR_RESPONSES,
    PREDICT_BODY,
    PREDICT_QUERY,
    ModelResponse,
    PredictResponse,
    predict_json,
)
from oiforge.serve.predictor import Predictor

API_KEY_ENV = "OIFORGE_API_KEY"
STATIC = Path(__file__).parent / "static"
log = logging.getLogger(__name__)

__all__ = ["API_KEY_ENV", "ServeConfig", "create_app"]


def _check_key(request: Request, api_key: str | None) -> None:
    if not api_key:
        return
    auth = request.headers.get("authorization", "")
    given = request.headers.get("x-api-key") or auth.removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), api_key.encode()):
        raise ApiError(401, "unauthorized", "missing or wrong API key (X-API-Key header)")


def _lifespan(holder: ModelHolder) -> Any:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().run_in_executor(None, holder.load)
        yield
        holder.draining = True
        await asyncio.wait_for(asyncio.shield(task), timeout=60)
        holder.close()

    return lifespan


def create_app(
    model: Path | Predictor, config: ServeConfig | None = None, api_key: str | None = None
) -> FastAPI:
    """The service for ``model`` (an export dir, a model.onnx, or a loaded Predictor)."""
    config = config or ServeConfig()
    api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV) or None
    metrics = Metrics()
    holder = ModelHolder(model, config, metrics)
    app = FastAPI(
        title="oiforge image classifier",
        version=__version__,
        description="Top-k classes for photos, from an ONNX model exported by oiforge.",
        lifespan=_lifespan(holder),
        docs_url=None,
        redoc_url=None,
    )
    app.state.holder = holder
    install_error_handlers(app, metrics)
    add_offline_docs(app, app.title)
    _add_ops_routes(app, holder, metrics)
    _add_v1_routes(app, holder, api_key)
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_upload_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def _add_ops_routes(app: FastAPI, holder: ModelHolder, metrics: Metrics) -> None:
    # async (no thread pool): probes must answer even while every worker thread is busy
    @app.get("/healthz", summary="Liveness: the process answers.")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness: the model is loaded.", responses=ERROR_RESPONSES)
    async def readyz() -> dict[str, str]:
        holder.require_serving()
        return {"status": "ready"}

    @app.get("/metrics", summary="Prometheus metrics.", response_class=Response)
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/static/app.js", include_in_schema=False)
    async def script() -> FileResponse:
        return FileResponse(STATIC / "app.js", media_type="text/javascript")

    @app.get("/static/oiforge.css", include_in_schema=False)
    async def style() -> FileResponse:
        return FileResponse(package_data("web", "oiforge.css"), media_type="text/css")


def _add_v1_routes(app: FastAPI, holder: ModelHolder, api_key: str | None) -> None:
    @app.get("/v1/model", response_model=ModelResponse, responses=ERROR_RESPONSES)
    async def model_info(request: Request) -> ModelResponse:
        _check_key(request, api_key)
        return ModelResponse.of(holder.require_ready())

    @app.post(
        "/v1/predict",
        response_model=PredictResponse,
        responses=ERROR_RESPONSES,
        openapi_extra={"requestBody": PREDICT_BODY, "parameters": PREDICT_QUERY},
        summary="Top-k classes for one or more images.",
    )
    async def predict(request: Request) -> Response:
        # The hot path: the request is parsed and the answer written here (no FastAPI
        # parameter or response-model handling; see docs/serving.md, "Performance").
        start = time.perf_counter()
        _check_key(request, api_key)
        if request.scope.get("oiforge.too_large"):
            limit = holder.config.max_upload_bytes
            raise ApiError(413, "payload_too_large", f"body over {limit} bytes")
        top_k = parse_top_k(request.query_params.get("top_k"))
        predictor = holder.require_ready()
        holder.check_capacity()  # shed before reading the body: the cheapest possible 503
        ctype = request.headers.get("content-type", "")
        parsed = parse_body(ctype, await request.body(), holder.config.max_images)
        k = parsed.top_k or top_k or holder.config.default_top_k
        items = await predict_inputs(holder, predictor, parsed.images, k)
        body = predict_json(predictor, items, time.perf_counter() - start)
        return Response(body, media_type="application/json")
