"""Prometheus metrics for the service, in a registry of its own (one per app).

``MetricsMiddleware`` counts every HTTP request by route template (never the raw path, so
hostile paths cannot explode the label set), method and status, and times it.
"""

from __future__ import annotations

import time
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

KNOWN_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "oiforge_http_requests_total",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "oiforge_http_request_duration_seconds",
            "HTTP request latency by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "oiforge_http_errors_total",
            "Error responses by error code.",
            ["code"],
            registry=self.registry,
        )
        self.images = Counter(
            "oiforge_images_predicted_total", "Images classified.", registry=self.registry
        )
        self.inference = Histogram(
            "oiforge_inference_seconds",
            "ONNX Runtime time per model call.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "oiforge_inference_batch_images",
            "Images per ONNX Runtime call (dynamic batching).",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )
        self.in_progress = Gauge(
            "oiforge_http_requests_in_progress", "Requests being served.", registry=self.registry
        )
        self.pending = Gauge(
            "oiforge_images_pending",
            "Images accepted and not answered yet (decoding or queued for the model).",
            registry=self.registry,
        )
        self.ready = Gauge(
            "oiforge_model_ready", "1 once the model is loaded.", registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _route_label(scope: Scope) -> str:
    route: Any = scope.get("route")
    return route.path if isinstance(route, Route) else "unmatched"


class MetricsMiddleware:
    """Pure ASGI middleware: request count and latency per route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        self.metrics.in_progress.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.in_progress.dec()
            route = _route_label(scope)
            method = str(scope.get("method", ""))
            method = method if method in KNOWN_METHODS else "OTHER"
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)
