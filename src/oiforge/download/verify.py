"""Is a fetched body the image we asked for? Placeholder, checksum and header checks.

Each check returns a failure as a value (:class:`Rejection`), never raises.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from oiforge.download.sniff import ImageInfo, NotAnImage, sniff_image
from oiforge.headers import goog_hash_md5

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
) -> ImageInfo | Rejection:
    """Known placeholder bodies, size/MD5 (when known), then a cheap header check.

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
    rejection = check_md5(body, expected_md5_b64) if expected_md5_b64 else None
    if rejection is not None:
        return rejection
    return info if info is not None else Rejection("not_image", why)


def check_md5(body: bytes, expected_b64: str) -> Rejection | None:
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
    return Rejection("bad_md5", f"MD5 {got} != expected {expected_b64}")


def header_md5(headers: dict[str, str]) -> str | None:
    """A base64 MD5 the server vouches for (``Content-MD5`` or ``x-goog-hash: md5=``)."""
    if "content-md5" in headers:
        return headers["content-md5"].strip()
    return goog_hash_md5([headers.get("x-goog-hash", "")])
