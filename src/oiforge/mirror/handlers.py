"""Request handling of the mirror: files, byte ranges, content types, hashes, placeholder and
junk bodies, and fault injection.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from oiforge.mirror.faults import FaultRule, find_rule
from oiforge.mirror.images import PLACEHOLDER_RELPATH, placeholder_png

if TYPE_CHECKING:
    from oiforge.mirror.server import MirrorState


JPEG_HEADER = bytes.fromhex("ffd8ffe000104a46494600010100000100010000")
CONTENT_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".csv": "text/csv",
    ".json": "application/json",
    ".txt": "text/plain",
    ".zip": "application/zip",
}
HTML_BODY = (
    b"<!DOCTYPE html>\n<html><head><title>Flickr: Page Not Found</title></head>\n"
    b"<body><h1>This page is private or does not exist.</h1></body></html>\n"
)
_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")
#: Bytes before the first one ``wrong`` flips, so the corrupted file still looks like a JPEG.
WRONG_SKIP = 1024
WRONG_STEP = 997


class RangeNotSatisfiable(Exception):
    """The Range header is valid but selects no byte of the file (HTTP 416)."""


@dataclass(frozen=True)
class ByteRange:
    """An inclusive byte range ``start..end`` of a file of ``size`` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end}/{self.size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The single byte range a ``Range`` header asks for; ``None`` = serve the whole file.

    Malformed or multi-range headers are ignored (200 with the whole file, as RFC 9110
    allows); a well-formed range that selects nothing raises :class:`RangeNotSatisfiable`.
    """
    if not header:
        return None
    match = _RANGE_RE.match(header)
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return ByteRange(max(0, size - suffix), size - 1, size)
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable(header)
    end = min(int(last), size - 1) if last else size - 1
    return ByteRange(start, end, size)


def content_type(path: str) -> str:
    """The Content-Type the real hosts send for a file name."""
    dot = path.rfind(".")
    return (
        CONTENT_TYPES.get(path[dot:].lower(), "application/octet-stream")
        if dot >= 0
        else ("application/octet-stream")
    )


def corrupt(chunk: bytes, offset: int, size: int) -> bytes:
    """``chunk`` (at ``offset`` of a ``size``-byte file) with some bytes flipped, same length.

    Flips every 997th byte after the first 1 KiB (or the last byte of a tiny file), so the MD5
    differs but the body still starts like the original.
    """
    out = bytearray(chunk)
    if size <= WRONG_SKIP:
        if offset <= size - 1 < offset + len(chunk):
            out[size - 1 - offset] ^= 0xFF
        return bytes(out)
    first = max(offset, WRONG_SKIP)
    first += (-(first - WRONG_SKIP)) % WRONG_STEP
    for pos in range(first, offset + len(chunk), WRONG_STEP):
        out[pos - offset] ^= 0xFF
    return bytes(out)


log = logging.getLogger(__name__)
CHUNK = 256 * 1024
SERVED_PREFIXES = ("openimages/", "open-images-dataset/", "flickr/")
DEFAULT_SLOW_BPS = 65536
DEFAULT_OVERSIZE_MB = 64
PLACEHOLDER_PATH = "/" + PLACEHOLDER_RELPATH


def _md5(path: Path) -> bytes:
    digest = hashlib.md5()
    with path.open("rb") as fh:
        while block := fh.read(4 * 1024 * 1024):
            digest.update(block)
    return digest.digest()


class MirrorHandler:
    """The aiohttp handlers over one root, rule list and shared state."""

    def __init__(self, root: Path, rules: Sequence[FaultRule], state: MirrorState) -> None:
        self.root = root
        self.rules = list(rules)
        self.state = state
        self._md5: dict[tuple[str, int, int], bytes] = {}

    async def stats(self, _request: web.Request) -> web.Response:
        counts = self.state.counts()
        return web.json_response({"requests": counts, "total": sum(counts.values())})

    async def reset(self, _request: web.Request) -> web.Response:
        self.state.reset()
        return web.json_response({"reset": True})

    def _file(self, path: str) -> Path | None:
        rel = path.lstrip("/")
        if not rel.startswith(SERVED_PREFIXES) or ".." in rel.split("/"):
            return None
        target = (self.root / rel).resolve()
        if not target.is_relative_to(self.root) or not target.is_file():
            return None
        return target

    async def serve(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, headers={"Allow": "GET, HEAD"})
        self.state.count(path)
        rule = None if path == PLACEHOLDER_PATH else find_rule(self.rules, path)
        early = await self._early_fault(request, rule, path)
        if early is not None:
            return early
        file = self._file(path)
        if file is None:
            if path == PLACEHOLDER_PATH:
                return web.Response(body=placeholder_png(), content_type="image/png")
            return web.Response(status=404, text="Not Found")
        return await self._send_file(request, file, rule)

    async def _early_fault(
        self, request: web.Request, rule: FaultRule | None, path: str
    ) -> web.StreamResponse | None:
        if rule is None:
            return None
        if rule.kind == "status":
            return web.Response(status=rule.status, text=f"mirror fault {rule.status}")
        if rule.kind == "burst":
            if self.state.burst_attempt(rule.glob, path) > (
                rule.arg if rule.arg is not None else 2
            ):
                return None
            headers = {"Retry-After": str(rule.retry_after)} if rule.retry_after is not None else {}
            return web.Response(status=rule.status, text="mirror burst", headers=headers)
        if rule.kind == "placeholder":
            location = f"{request.scheme}://{request.host}{PLACEHOLDER_PATH}"
            raise web.HTTPFound(location)
        if rule.kind == "html":
            return web.Response(body=HTML_BODY, content_type="text/html", charset="utf-8")
        if rule.kind == "oversize":
            return await self._oversize(request, rule)
        return None

    async def _oversize(self, request: web.Request, rule: FaultRule) -> web.StreamResponse:
        size = (rule.arg if rule.arg is not None else DEFAULT_OVERSIZE_MB) * 1024 * 1024
        resp = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        resp.content_length = size
        await resp.prepare(request)
        if request.method == "HEAD":
            return resp
        head = JPEG_HEADER[:size]
        sent, zeros = len(head), bytes(CHUNK)
        try:
            await resp.write(head)
            while sent < size:
                n = min(CHUNK, size - sent)
                await resp.write(zeros[:n])
                sent += n
        except ConnectionError:  # a client that stops reading at its size limit
            log.debug("client closed %s after %d bytes", request.path, sent)
        return resp

    async def _digest(self, file: Path) -> bytes:
        st = file.stat()
        key = (str(file), st.st_size, st.st_mtime_ns)
        if key not in self._md5:
            self._md5[key] = await asyncio.get_running_loop().run_in_executor(None, _md5, file)
        return self._md5[key]

    async def _headers(self, request: web.Request, file: Path) -> dict[str, str]:
        headers = {"Content-Type": content_type(file.name), "Accept-Ranges": "bytes"}
        if request.path.startswith(("/openimages/", "/open-images-dataset/")):
            digest = await self._digest(file)
            headers["ETag"] = f'"{digest.hex()}"'
            if request.path.startswith("/openimages/"):
                headers["x-goog-hash"] = f"md5={base64.b64encode(digest).decode('ascii')}"
                headers["x-goog-stored-content-length"] = str(file.stat().st_size)
        return headers

    async def _send_file(
        self, request: web.Request, file: Path, rule: FaultRule | None
    ) -> web.StreamResponse:
        size = file.stat().st_size
        headers = await self._headers(request, file)
        try:
            byte_range = parse_range(request.headers.get("Range"), size)
        except RangeNotSatisfiable:
            headers = {"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"}
            return web.Response(status=416, headers=headers)
        span = byte_range or ByteRange(0, size - 1, size)
        if byte_range is not None:
            headers["Content-Range"] = byte_range.content_range
        resp = web.StreamResponse(status=206 if byte_range else 200, headers=headers)
        resp.content_length = span.length if size else 0
        await resp.prepare(request)
        if request.method == "HEAD" or size == 0:
            return resp
        try:
            await self._stream(request, resp, file, span, rule)
        except ConnectionError:  # the client went away (e.g. gave up on a slow body)
            log.debug("client closed %s early", request.path)
        return resp

    async def _stream(
        self, request: web.Request, resp: web.StreamResponse, file: Path, span: ByteRange,
        rule: FaultRule | None,
    ) -> None:  # fmt: skip
        kind = rule.kind if rule else ""
        limit = span.length
        if kind == "truncate":
            limit = min(
                span.length - 1, rule.arg if rule and rule.arg is not None else span.length // 2
            )
        rate = (rule.arg or DEFAULT_SLOW_BPS) if rule and kind == "slow" else 0
        chunk_size = max(1, min(CHUNK, rate // 10)) if rate else CHUNK
        offset, end = span.start, span.start + limit
        with file.open("rb") as fh:
            fh.seek(offset)
            while offset < end:
                chunk = fh.read(min(chunk_size, end - offset))
                if not chunk:
                    break
                if kind == "wrong":
                    chunk = corrupt(chunk, offset, span.size)
                await resp.write(chunk)
                offset += len(chunk)
                if rate:
                    await asyncio.sleep(len(chunk) / rate)
        if kind == "truncate" and request.transport is not None:
            request.transport.close()
