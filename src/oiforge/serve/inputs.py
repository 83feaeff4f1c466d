"""Turn a ``POST /v1/predict`` request into a list of image inputs, enforcing the limits.

Three body types: ``multipart/form-data`` (one or more ``image`` file fields, optional
``top_k``), ``application/json`` (``{"images": [{"data": base64} | {"url": ...}], "top_k"}``)
and a raw ``image/*`` body (one image). Anything else is 415; too big is 413.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oiforge.serve.api_errors import ApiError
from oiforge.serve.multipart import FormPart, MultipartError, TooManyFiles, boundary_of, split_form

IMAGE_TYPES: Final = frozenset(
    {"image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp", "image/tiff"}
)
PART_TYPES: Final = IMAGE_TYPES | {"application/octet-stream", ""}
FILE_FIELD: Final = "image"
MAX_TOP_K: Final = 1000


@dataclass(frozen=True)
class ImageInput:
    name: str
    data: bytes | None = None
    url: str | None = None


@dataclass(frozen=True)
class ParsedRequest:
    images: list[ImageInput]
    top_k: int | None


def _text(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")


def parse_top_k(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ApiError(422, "invalid_top_k", "top_k must be an integer")
    try:
        k = int(value)
    except ValueError:
        raise ApiError(422, "invalid_top_k", "top_k must be an integer") from None
    if not 1 <= k <= MAX_TOP_K:
        raise ApiError(422, "invalid_top_k", f"top_k must be between 1 and {MAX_TOP_K}")
    return k


def _check_count(n: int, max_images: int) -> None:
    if n == 0:
        raise ApiError(422, "no_images", f"send at least one image (field {FILE_FIELD!r})")
    if n > max_images:
        raise ApiError(413, "too_many_images", f"{n} images; at most {max_images} per request")


def _form_image(part: FormPart, i: int) -> ImageInput:
    if part.filename is None:
        raise ApiError(422, "not_a_file", f"field {FILE_FIELD!r} #{i} is not a file")
    if part.content_type not in PART_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"file #{i} is {part.content_type!r}; allowed: {sorted(IMAGE_TYPES)}",
            index=i,
        )
    return ImageInput(part.filename or f"image-{i}", data=part.data)


def _form_parts(content_type: str, body: bytes, max_images: int) -> list[FormPart]:
    try:
        return split_form(body, boundary_of(content_type), max_images)
    except TooManyFiles:
        raise ApiError(
            413, "too_many_images", f"over {max_images} images; at most {max_images} per request"
        ) from None
    except MultipartError as exc:
        raise ApiError(400, "bad_request", f"malformed multipart body: {exc}") from None


def _parse_multipart(content_type: str, body: bytes, max_images: int) -> ParsedRequest:
    parts = _form_parts(content_type, body, max_images)
    unknown = sorted({p.name for p in parts if p.name not in (FILE_FIELD, "top_k")})
    if unknown:
        raise ApiError(
            422,
            "unknown_field",
            f"unknown form fields {unknown}; send files as {FILE_FIELD!r} and optionally 'top_k'",
        )
    files = [p for p in parts if p.name == FILE_FIELD]
    images = [_form_image(part, i) for i, part in enumerate(files)]
    _check_count(len(images), max_images)
    top_k = next((p for p in parts if p.name == "top_k"), None)
    if top_k is not None and top_k.filename is not None:
        raise ApiError(422, "invalid_top_k", "top_k must be an integer")
    return ParsedRequest(images, parse_top_k(None if top_k is None else _text(top_k.data)))


def _decode_b64(value: str, i: int) -> bytes:
    if value.startswith("data:") and "," in value:
        value = value.split(",", 1)[1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, "invalid_base64", f"images[{i}].data is not base64", index=i) from None


def _json_image(item: object, i: int) -> ImageInput:
    if not isinstance(item, dict) or set(item) - {"data", "url", "name"}:
        raise ApiError(422, "invalid_request", f"images[{i}] must be {{'data'}} or {{'url'}}")
    data, url, name = item.get("data"), item.get("url"), item.get("name")
    if (data is None) == (url is None):
        raise ApiError(422, "invalid_request", f"images[{i}] needs exactly one of data, url")
    label = name if isinstance(name, str) else f"image-{i}"
    if isinstance(data, str):
        return ImageInput(label, data=_decode_b64(data, i))
    if isinstance(url, str):
        return ImageInput(label if name else url, url=url)
    raise ApiError(422, "invalid_request", f"images[{i}].data/url must be a string")


def _parse_json(body: bytes, max_images: int) -> ParsedRequest:
    try:
        payload: Any = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(payload, dict) or set(payload) - {"images", "top_k"}:
        raise ApiError(422, "invalid_request", "expected {'images': [...], 'top_k': int}")
    items = payload.get("images")
    if not isinstance(items, list):
        raise ApiError(422, "invalid_request", "'images' must be a list")
    _check_count(len(items), max_images)
    images = [_json_image(item, i) for i, item in enumerate(items)]
    return ParsedRequest(images, parse_top_k(payload.get("top_k")))


def parse_body(content_type: str, body: bytes, max_images: int) -> ParsedRequest:
    """The images (and form/JSON ``top_k``) of a whole request body of ``content_type``."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "multipart/form-data":
        return _parse_multipart(content_type, body, max_images)
    if kind == "application/json":
        return _parse_json(body, max_images)
    if kind in IMAGE_TYPES:
        _check_count(1 if body else 0, max_images)
        return ParsedRequest([ImageInput("image-0", data=body)], None)
    allowed = ["multipart/form-data", "application/json", *sorted(IMAGE_TYPES)]
    raise ApiError(415, "unsupported_media_type", f"content type {kind!r}; allowed: {allowed}")


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes``: by Content-Length up front, else while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            scope["oiforge.too_large"] = True
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise ApiError(413, "payload_too_large", f"body over {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)
