"""Concurrent requests share the workers and their model calls, yet each gets its own answer."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.helpers.serve import LiveServer, photo, wait_ready

from oiforge.serve.app import create_app
from oiforge.serve.holder import ServeConfig
from oiforge.serve.images import preprocess_bytes
from oiforge.serve.predictor import Predictor, session_options

SIZES = [(40 + 7 * i, 30 + 11 * (i % 5)) for i in range(12)]


def _expected(exported: Path, images: list[bytes]) -> list[list[tuple[str, float]]]:
    predictor = Predictor(exported)
    pre = predictor.labels.preprocessing
    probs = predictor.probabilities([preprocess_bytes(data, pre)[0] for data in images])
    return [[(s.mid, s.probability) for s in row] for row in predictor.top_k(probs, 3)]


def _ask(url: str, files: list[tuple[str, Any]]) -> httpx.Response:
    return httpx.post(f"{url}/v1/predict", files=files, data={"top_k": "3"}, timeout=60)


@pytest.mark.slow
def test_concurrent_requests_get_their_own_predictions(service: str, exported: Path) -> None:
    images = [photo(w, h) for w, h in SIZES]
    requests = [[("image", (f"{i}.jpg", images[i], "image/jpeg"))] for i in range(len(images))]
    requests.append([("image", (f"{i}.jpg", images[i], "image/jpeg")) for i in (0, 5, 9)])
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda files: _ask(service, files), requests))
    want = _expected(exported, images)
    for i, resp in enumerate(responses):
        assert resp.status_code == 200, resp.text
        names = [int(p["name"].split(".")[0]) for p in resp.json()["predictions"]]
        assert names == ([i] if i < len(images) else [0, 5, 9])
        for name, pred in zip(names, resp.json()["predictions"], strict=True):
            got = [(s["mid"], s["probability"]) for s in pred["top_k"]]
            assert [m for m, _ in got] == [m for m, _ in want[name]]
            assert all(abs(p - q) < 1e-5 for (_, p), (_, q) in zip(got, want[name], strict=True))


def test_the_first_bad_image_by_position_fails_the_request(service: str) -> None:
    good = ("good.jpg", photo(), "image/jpeg")
    files = [("image", good), ("image", ("bad1.jpg", b"nope", "image/jpeg"))]
    files += [("image", ("bad2.jpg", photo()[:50], "image/jpeg"))]
    resp = _ask(service, files)
    assert resp.status_code == 422 and resp.json()["error"]["index"] == 1
    assert _ask(service, [("image", good)]).status_code == 200


def test_serving_threads_one_model_thread_per_worker_and_never_spin() -> None:
    config = ServeConfig()
    assert config.inference_threads == 1 and config.worker_threads >= 1
    assert ServeConfig(threads=3, workers=5).inference_threads == 3
    assert ServeConfig(threads=3, workers=5).worker_threads == 5
    opts = session_options(config.inference_threads, spin=False)
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert opts.intra_op_num_threads == config.inference_threads


def test_overload_is_a_quick_503_with_retry_after(exported: Path) -> None:
    app = create_app(exported, ServeConfig(max_pending=2), api_key="")
    with LiveServer(app) as server:
        wait_ready(server.url)
        holder = app.state.holder
        files = [("image", ("a.jpg", photo(), "image/jpeg"))]
        holder.pending = 2  # as if two images were being decoded or inferred
        resp = _ask(server.url, files)
        assert resp.status_code == 503 and resp.headers["retry-after"] == "1"
        assert resp.json()["error"]["code"] == "overloaded"
        holder.pending = 0  # idle: even a request over the limit is admitted
        three = files * 3
        assert _ask(server.url, three).status_code == 200
        assert holder.pending == 0
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'oiforge_http_errors_total{code="overloaded"} 1.0' in metrics
        assert "oiforge_images_pending 0.0" in metrics
