"""HTTP response headers the fetchers act on: ``Retry-After`` and the MD5 a server vouches for.

Shared by the catalog's metadata fetch (urllib) and the image download (aiohttp), so both read
the same headers the same way. Every parser returns None for anything it cannot read: a bad
header is no reason to fail a download.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import math
import time
from collections.abc import Iterable


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
