"""Cheap image header checks for the hot path: format and size without decoding pixels.

A full decode happens in the build stage; here we only make sure the body *is* an image of a
known format, reports a sane size and (for JPEG) is not cut short.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

_SOF_MARKERS: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_MAX_SIDE: Final = 65_535


@dataclass(frozen=True)
class ImageInfo:
    """What a header says: format (``jpeg``, ``png``, ``gif``, ``webp``) and pixel size."""

    format: str
    width: int
    height: int


class NotAnImage(ValueError):
    """The body is not an image we accept; the message says why."""


def sniff_image(body: bytes) -> ImageInfo:
    """Format and size from the header; raises :class:`NotAnImage` with a reason."""
    if body.startswith(b"\xff\xd8\xff"):
        info = _jpeg(body)
    elif body.startswith(b"\x89PNG\r\n\x1a\n"):
        info = _png(body)
    elif body[:6] in (b"GIF87a", b"GIF89a"):
        info = _gif(body)
    elif body[:4] == b"RIFF" and body[8:12] == b"WEBP":
        info = ImageInfo("webp", 0, 0)
    else:
        raise NotAnImage(f"not an image (starts with {body[:16]!r})")
    if info.format != "webp" and not (0 < info.width <= _MAX_SIDE and 0 < info.height <= _MAX_SIDE):
        raise NotAnImage(f"{info.format} header with impossible size {info.width}x{info.height}")
    return info


def _jpeg(body: bytes) -> ImageInfo:
    pos, size = 2, None
    while pos + 4 <= len(body):
        if body[pos] != 0xFF:
            raise NotAnImage(f"corrupt JPEG marker at byte {pos}")
        marker = body[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            pos += 2
            continue
        (length,) = struct.unpack(">H", body[pos + 2 : pos + 4])
        if marker in _SOF_MARKERS and pos + 9 <= len(body):
            height, width = struct.unpack(">HH", body[pos + 5 : pos + 9])
            size = (width, height)
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            return _jpeg_end(body, pos, size)
        if length < 2:
            raise NotAnImage(f"corrupt JPEG segment length at byte {pos}")
        pos += 2 + length
    raise NotAnImage("truncated JPEG (no image data)")


def _jpeg_end(body: bytes, sos: int, size: tuple[int, int] | None) -> ImageInfo:
    if size is None:
        raise NotAnImage("JPEG without a frame header")
    if body.rfind(b"\xff\xd9", sos) < 0:
        raise NotAnImage("truncated JPEG (no end-of-image marker)")
    return ImageInfo("jpeg", *size)


def _png(body: bytes) -> ImageInfo:
    if len(body) < 24 or body[12:16] != b"IHDR":
        raise NotAnImage("truncated PNG header")
    width, height = struct.unpack(">II", body[16:24])
    if not body.rstrip(b"\x00").endswith(b"IEND\xaeB`\x82"):
        raise NotAnImage("truncated PNG (no IEND chunk)")
    return ImageInfo("png", width, height)


def _gif(body: bytes) -> ImageInfo:
    if len(body) < 10:
        raise NotAnImage("truncated GIF header")
    width, height = struct.unpack("<HH", body[6:10])
    return ImageInfo("gif", width, height)
