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

from python_multipart.multipart import parse_options_header
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oiforge.serve.api_errors import ApiError

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


# --- multipart/form-data, split in memory --------------------------------------------------
#
# Split a ``multipart/form-data`` body that is already in memory into its parts.
#
# The service reads a request's whole body before parsing it (it is capped by
# ``--max-upload-mb`` and every image must be in memory to be decoded anyway), so the parts are
# found with ``bytes.find`` over that one buffer: no per-chunk callbacks, no spooled temporary
# files, one copy per part. Header values (``Content-Disposition`` parameters, the boundary) are
# parsed by python-multipart's ``parse_options_header``, as Starlette's form parser does.
# Malformed bodies raise :class:`MultipartError` with a message fit for the client.

CRLF: Final = b"\r\n"
#: Form fields that are not files, at most (``top_k`` is the only one the API reads).
MAX_FIELDS: Final = 8


class MultipartError(ValueError):
    """A body that is not well-formed ``multipart/form-data``."""


class TooManyFiles(MultipartError):
    """More file parts than the caller allows (parsing stops at the first one too many)."""


@dataclass(frozen=True)
class FormPart:
    name: str
    filename: str | None  # None: a plain field, not a file
    content_type: str  # lower-cased media type without parameters; "" when not given
    data: bytes


def _header_text(value: bytes) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value.decode("latin-1")


def boundary_of(content_type: str) -> bytes:
    """The boundary parameter of a ``multipart/form-data`` Content-Type header."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary", b"")
    if not boundary or len(boundary) > 200:
        raise MultipartError("multipart body without a valid boundary parameter")
    return boundary


def _part(head: bytes, data: bytes) -> FormPart:
    disposition, ctype = b"", b""
    for line in head.split(CRLF):
        name, sep, value = line.partition(b":")
        if not sep:
            raise MultipartError("multipart part header without a colon")
        key = name.strip().lower()
        if key == b"content-disposition":
            disposition = value.strip()
        elif key == b"content-type":
            ctype = value.strip()
    _, options = parse_options_header(disposition)
    if b"name" not in options:
        raise MultipartError('a multipart part without a Content-Disposition "name"')
    filename = options.get(b"filename")
    media = ctype.split(b";", 1)[0].strip().lower()
    return FormPart(
        _header_text(options[b"name"]),
        None if filename is None else _header_text(filename),
        _header_text(media),
        data,
    )


def _next_part(body: bytes, pos: int, delimiter: bytes) -> tuple[FormPart, int]:
    """The part that starts after the boundary line ending at ``pos``, and where it ends."""
    eol = body.find(CRLF, pos)
    if eol < 0 or body[pos:eol].strip(b" \t"):
        raise MultipartError("malformed multipart boundary line")
    head_end = body.find(CRLF + CRLF, eol)
    if head_end < 0:
        raise MultipartError("multipart part without the blank line after its headers")
    end = body.find(delimiter, head_end + 4)
    if end < 0:
        raise MultipartError("multipart body without its closing boundary")
    if head_end == eol:
        raise MultipartError("a multipart part without headers")
    return _part(body[eol + 2 : head_end], body[head_end + 4 : end]), end


def split_form(body: bytes, boundary: bytes, max_files: int) -> list[FormPart]:
    """Every part of ``body``, in order; raises ``TooManyFiles`` past ``max_files`` files."""
    dash = b"--" + boundary
    start = 0 if body.startswith(dash) else body.find(CRLF + dash)
    if start < 0:
        raise MultipartError("the multipart body does not contain its boundary")
    delimiter = CRLF + dash
    pos = start + (len(dash) if start == 0 else len(delimiter))
    parts: list[FormPart] = []
    files = 0
    while not body.startswith(b"--", pos):
        part, end = _next_part(body, pos, delimiter)
        parts.append(part)
        files += part.filename is not None
        if files > max_files:
            raise TooManyFiles(f"more than {max_files} files")
        if len(parts) - files > MAX_FIELDS:
            raise MultipartError(f"more than {MAX_FIELDS} form fields that are not files")
        pos = end + len(delimiter)
    return parts
