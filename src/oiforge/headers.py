"""HTTP response headers the fetchers act on: ``Retry-After`` and the MD5 a server vouches for.

Shared by the catalog's metadata fetch (urllib), the image download and ``download --verify``
(aiohttp), so all read the same headers the same way. Every parser returns None for anything
it cannot read: a bad header is no reason to fail a download.

The MD5 a server vouches for: ``Content-MD5`` (base64), GCS's ``x-goog-hash: md5=`` (base64)
and, from S3 (the resized-image bucket), a strong ETag of 32 hex digits: S3 makes it the MD5
of a single-part object; a multipart upload's ETag has a ``-<parts>`` suffix and is no MD5.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import math
import re
import time
from collections.abc import Iterable, Mapping
from typing import Final


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date (seconds
    from ``now``, at least 0); None when absent or unreadable."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until(text, time.time() if now is None else now)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _seconds_until(http_date: str, now: float) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def goog_hash_md5(values: Iterable[str]) -> str | None:
    """The base64 ``md5=`` item of ``x-goog-hash`` headers (GCS sends ``crc32c=...,md5=...``,
    in one header or several), as sent; None when there is none."""
    for value in values:
        for item in value.split(","):
            key, _, b64 = item.strip().partition("=")
            if key.strip().lower() == "md5" and b64.strip():
                return b64.strip()
    return None


def server_md5(goog_hash: Iterable[str]) -> str | None:
    """The hex MD5 in ``x-goog-hash`` headers, if sent and readable."""
    return md5_b64_to_hex(goog_hash_md5(goog_hash))


def md5_b64_to_hex(b64: str | None) -> str | None:
    """A base64 MD5 as 32 hex chars; None unless it decodes to exactly 16 bytes."""
    if not b64:
        return None
    try:
        raw = base64.b64decode(b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 16 else None


#: A strong ETag that is an MD5: exactly 32 hex digits in quotes (no ``W/``, no ``-<parts>``).
_ETAG_MD5: Final = re.compile(r'"([0-9a-fA-F]{32})"')


def etag_md5(value: str | None) -> str | None:
    """The hex MD5 in an S3 ETag, or None for a weak, multipart or otherwise shaped one."""
    if not value:
        return None
    match = _ETAG_MD5.fullmatch(value.strip())
    return match.group(1).lower() if match else None


def md5_hex_to_b64(hexed: str) -> str:
    """32 hex chars as base64 (the form of ``Content-MD5`` and ``OriginalMD5``)."""
    return base64.b64encode(bytes.fromhex(hexed)).decode("ascii")


def header_md5(headers: Mapping[str, str], *, etag: bool = False) -> tuple[str, str] | None:
    """``(base64 MD5, header name)`` a server vouches for in lower-case ``headers``:
    ``Content-MD5``, else ``x-goog-hash: md5=``, else (only with ``etag``: a host where the
    ETag is the MD5, such as S3) an MD5-shaped ETag; None when it vouches for none."""
    if headers.get("content-md5", "").strip():
        return headers["content-md5"].strip(), "Content-MD5"
    goog = goog_hash_md5([headers.get("x-goog-hash", "")])
    if goog is not None:
        return goog, "x-goog-hash"
    hexed = etag_md5(headers.get("etag")) if etag else None
    return (md5_hex_to_b64(hexed), "ETag") if hexed is not None else None
