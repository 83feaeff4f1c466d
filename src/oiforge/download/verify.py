"""Is a fetched body the image we asked for? Header sniff, placeholder and checksum checks.

A cheap header check gives format and size without decoding pixels (a full decode happens in
the build stage): the body *is* an image of a known format, reports a sane size and (for JPEG)
is not cut short. Each check returns a failure as a value (:class:`Rejection`), never raises.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Sequence
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


#: Flickr sends deleted photos to a "photo unavailable" image (e.g. s.yimg.com/.../
#: photo_unavailable.png); any hop of the redirect chain naming it marks a placeholder.
PLACEHOLDER_URL_RE: Final = re.compile(r"photo[_-]?unavailable", re.IGNORECASE)


@dataclass(frozen=True)
class Rejection:
    """Why a body is not stored: a journal status and a human reason."""

    status: str
    error: str


def is_placeholder_url(urls: Sequence[str]) -> bool:
    """True when any URL of the redirect chain is Flickr's "photo unavailable" image."""
    return any(PLACEHOLDER_URL_RE.search(u) for u in urls)


def check_body(
    body: bytes,
    *,
    expected_md5_b64: str | None = None,
    expected_size: int | None = None,
    placeholder_sha256: frozenset[str] = frozenset(),
    md5_from: str = "expected",
) -> ImageInfo | Rejection:
    """Known placeholder bodies, size/MD5 (when known), then a cheap header check.

    ``md5_from`` names where ``expected_md5_b64`` came from (``OriginalMD5``, ``ETag``, ...)
    for the error text.

    A body of the expected size with another MD5 is the file, corrupted: ``bad_md5``. A body
    of another size is ``not_image`` when its header is no image, else ``bad_md5``.
    """
    if placeholder_sha256 and hashlib.sha256(body).hexdigest() in placeholder_sha256:
        return Rejection("placeholder", "body is a known placeholder image")
    try:
        info: ImageInfo | None = sniff_image(body)
        why = ""
    except NotAnImage as exc:
        info, why = None, str(exc)
    if expected_size is not None and len(body) != expected_size:
        if info is None:
            return Rejection("not_image", f"{why} ({len(body)} bytes, expected {expected_size})")
        return Rejection("bad_md5", f"size {len(body)} != OriginalSize {expected_size}")
    rejection = check_md5(body, expected_md5_b64, md5_from) if expected_md5_b64 else None
    if rejection is not None:
        return rejection
    return info if info is not None else Rejection("not_image", why)


def check_md5(body: bytes, expected_b64: str, md5_from: str = "expected") -> Rejection | None:
    """Compare with a base64 MD5 (as in OriginalMD5 / Content-MD5); None when it matches."""
    try:
        expected = base64.b64decode(expected_b64, validate=True)
    except (binascii.Error, ValueError):
        return None  # an unreadable expectation is no evidence against the body
    if len(expected) != 16:
        return None
    actual = hashlib.md5(body, usedforsecurity=False).digest()
    if actual == expected:
        return None
    got = base64.b64encode(actual).decode()
    return Rejection("bad_md5", f"MD5 {got} != {md5_from} {expected_b64}")
