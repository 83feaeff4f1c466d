"""HTTP details of the mirror: byte ranges, content types, placeholder and junk bodies."""

from __future__ import annotations

import re
from dataclasses import dataclass

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
