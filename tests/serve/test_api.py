"""The HTTP service through real HTTP on 127.0.0.1: happy paths, limits, hostile inputs."""

from __future__ import annotations

import base64
import io
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from tests.helpers.serve import CLASSES, LiveServer, StaticFiles, huge_png, photo, wait_ready

from oiforge.serve.app import create_app
from oiforge.serve.holder import ServeConfig

JPEG = ("a.jpg", photo(200, 150), "image/jpeg")
OBJECT_REPR = re.compile(r"object at 0x|<[\w.]+[ >]")


def _post(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{url}/v1/predict", timeout=30, **kwargs)


def _assert_error(resp: httpx.Response, status: int, code: str | None = None) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()["error"]
    assert body["message"]
    assert not OBJECT_REPR.search(body["message"]), body["message"]  # no Python reprs
    if code:
        assert body["code"] == code, body


def test_health_ready_model_and_openapi(service: str) -> None:
    assert httpx.get(f"{service}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{service}/readyz").status_code == 200
    info = httpx.get(f"{service}/v1/model").json()
    assert [(c["name"], c["mid"]) for c in info["classes"]] == CLASSES
    assert info["preprocessing"]["size"] == 96 and len(info["version"]) == 12
    spec = httpx.get(f"{service}/openapi.json").json()
    assert "/v1/predict" in spec["paths"] and "/v1/model" in spec["paths"]


def test_multipart_batch_json_base64_and_raw_body(service: str) -> None:
    files = [("image", JPEG), ("image", ("b.png", photo(64, 300, fmt="PNG"), "image/png"))]
    resp = _post(service, files=files, data={"top_k": "2"})
    assert resp.status_code == 200, resp.text
    preds = resp.json()["predictions"]
    assert [p["name"] for p in preds] == ["a.jpg", "b.png"]
    assert all(len(p["top_k"]) == 2 for p in preds) and preds[0]["width"] == 200
    b64 = base64.b64encode(photo()).decode()
    resp = _post(service, json={"images": [{"data": b64}], "top_k": 3})
    assert resp.status_code == 200 and len(resp.json()["predictions"][0]["top_k"]) == 3
    same = _post(service, content=JPEG[1], headers={"content-type": "image/jpeg"})
    first = _post(service, files=[("image", JPEG)]).json()["predictions"][0]["top_k"]
    assert same.json()["predictions"][0]["top_k"] == first


def test_url_input_from_a_local_server(service: str, tmp_path: Path) -> None:
    (tmp_path / "cat.jpg").write_bytes(photo())
    with StaticFiles(tmp_path) as files:
        ok = _post(service, json={"images": [{"url": f"{files.url}/cat.jpg"}]})
        assert ok.status_code == 200, ok.text
        missing = _post(service, json={"images": [{"url": f"{files.url}/nope.jpg"}]})
        _assert_error(missing, 422, "url_http_error")
        (tmp_path / "big.jpg").write_bytes(b"\xff" * 2_500_000)  # over the 2 MB limit
        big = _post(service, json={"images": [{"url": f"{files.url}/big.jpg"}]})
        _assert_error(big, 413, "url_too_large")


def _cmyk_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(photo())).convert("CMYK").save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "ctype"),
    [
        ("alpha.png", photo(120, 90, mode="RGBA", fmt="PNG"), "image/png"),
        ("cmyk.jpg", _cmyk_jpeg(), "image/jpeg"),
        ("one.png", photo(1, 1, fmt="PNG"), "image/png"),
        ("grey.webp", photo(50, 80, mode="L", fmt="WEBP"), "image/webp"),
        ("noext", photo(), "application/octet-stream"),
    ],
)
def test_unusual_but_valid_images_are_classified(
    service: str, name: str, data: bytes, ctype: str
) -> None:
    resp = _post(service, files=[("image", (name, data, ctype))])
    assert resp.status_code == 200, resp.text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


BAD_CASES: list[tuple[str, dict[str, Any], int, str | None]] = [
    (
        "not an image",
        {"files": [("image", ("x.jpg", b"hello world", "image/jpeg"))]},
        422,
        "invalid_image",
    ),
    (
        "truncated jpeg",
        {"files": [("image", ("t.jpg", JPEG[1][: len(JPEG[1]) // 2], "image/jpeg"))]},
        422,
        "invalid_image",
    ),
    ("empty file", {"files": [("image", ("e.jpg", b"", "image/jpeg"))]}, 422, "invalid_image"),
    ("empty body", {"content": b"", "headers": {"content-type": "image/jpeg"}}, 422, "no_images"),
    ("no body at all", {}, 415, "unsupported_media_type"),
    ("wrong field name", {"files": [("file", JPEG)]}, 422, "unknown_field"),
    ("text part", {"files": [("image", ("a.txt", b"hi", "text/plain"))]}, 415, None),
    ("too many images", {"files": [("image", JPEG)] * 5}, 413, "too_many_images"),
    (
        "huge top_k",
        {"files": [("image", JPEG)], "data": {"top_k": str(10**12)}},
        422,
        "invalid_top_k",
    ),
    ("zero top_k json", {"json": {"images": [{"data": ""}], "top_k": 0}}, 422, "invalid_top_k"),
    ("huge top_k query", {"files": [("image", JPEG)], "params": {"top_k": 10**9}}, 422, None),
    (
        "wrong content type",
        {"content": b"x", "headers": {"content-type": "text/plain"}},
        415,
        "unsupported_media_type",
    ),
    (
        "bad json",
        {"content": b"{nope", "headers": {"content-type": "application/json"}},
        400,
        "invalid_json",
    ),
    ("json wrong keys", {"json": {"image": "x"}}, 422, "invalid_request"),
    ("bad base64", {"json": {"images": [{"data": "***"}]}}, 422, "invalid_base64"),
    ("file url", {"json": {"images": [{"url": "file:///etc/passwd"}]}}, 422, "invalid_url"),
    (
        "unreachable url",
        {"json": {"images": [{"url": f"http://127.0.0.1:{_free_port()}/a.jpg"}]}},
        422,
        "url_unreachable",
    ),
    (
        "upload too big",
        {"content": b"\xff" * 2_100_000, "headers": {"content-type": "image/jpeg"}},
        413,
        "payload_too_large",
    ),
    ("bomb", {"files": [("image", ("bomb.png", huge_png(), "image/png"))]}, 413, "image_too_large"),
]


@pytest.mark.parametrize(
    ("case", "kwargs", "status", "code"), BAD_CASES, ids=[c[0] for c in BAD_CASES]
)
def test_bad_input_is_a_4xx_json_error_and_the_server_keeps_serving(
    service: str, case: str, kwargs: dict[str, Any], status: int, code: str | None
) -> None:
    _assert_error(_post(service, **kwargs), status, code)
    assert _post(service, files=[("image", JPEG)]).status_code == 200


def test_streamed_body_over_the_limit_is_413(service: str) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"\x00" * 100_000

    resp = _post(service, content=chunks(), headers={"content-type": "image/png"})
    _assert_error(resp, 413, "payload_too_large")


def test_unknown_path_and_method_are_json(service: str) -> None:
    _assert_error(httpx.get(f"{service}/nope"), 404, "not_found")
    _assert_error(httpx.get(f"{service}/v1/predict"), 405, "method_not_allowed")


def test_metrics_count_requests_latency_and_errors(service: str) -> None:
    _post(service, files=[("image", JPEG)])
    _post(service, content=b"x", headers={"content-type": "text/plain"})
    text = httpx.get(f"{service}/metrics").text
    assert 'oiforge_http_requests_total{method="POST",route="/v1/predict",status="200"}' in text
    assert 'oiforge_http_request_duration_seconds_bucket{le="0.1",route="/v1/predict"}' in text
    assert 'oiforge_http_errors_total{code="unsupported_media_type"}' in text
    assert "oiforge_model_ready 1.0" in text


def test_api_key_and_private_urls_refused_by_default(exported: Path) -> None:
    app = create_app(exported, ServeConfig(), api_key="s3cret")
    with LiveServer(app) as server:
        wait_ready(server.url)
        _assert_error(_post(server.url, files=[("image", JPEG)]), 401, "unauthorized")
        _assert_error(httpx.get(f"{server.url}/v1/model", headers={"x-api-key": "nope"}), 401)
        ok = _post(server.url, files=[("image", JPEG)], headers={"authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        local = {"images": [{"url": f"{server.url}/healthz"}]}
        resp = _post(server.url, json=local, headers={"x-api-key": "s3cret"})
        _assert_error(resp, 422, "url_forbidden")
        assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_exception_text_drops_object_reprs() -> None:
    from PIL import UnidentifiedImageError

    from oiforge.errtext import exception_text

    pil = UnidentifiedImageError("cannot identify image file <_io.BytesIO object at 0x7f3a2b>")
    assert exception_text(pil) == "not an image format this service reads"
    wrapped = OSError("<urlopen error [Errno 111] Connection refused>")
    assert exception_text(wrapped) == "[Errno 111] Connection refused"
    other = ValueError("bad <PIL.Image.Image image mode=RGB size=1x1 at 0x7F00> here")
    assert not OBJECT_REPR.search(exception_text(other))
