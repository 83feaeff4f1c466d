"""Readable names for the licence URLs of Open Images photos (``CC BY 2.0``, not a raw URL).

Every page that shows a photo (browse, report.html, the contact sheet, the book's credits)
names its licence with :func:`licence_name` and links the URL as written.
"""

from __future__ import annotations

import re
from typing import Final

_CC_RE: Final = re.compile(
    r"creativecommons\.org/(licenses|publicdomain)/([a-z-]+)/(\d+(?:\.\d+)?)", re.I
)
UNKNOWN: Final = "licence unknown"


def cc_parts(url: str) -> tuple[str, str, str] | None:
    """``(kind, terms, version)`` of a Creative Commons URL, e.g. ``("licenses", "by", "2.0")``."""
    match = _CC_RE.search(url or "")
    return (match[1].lower(), match[2].lower(), match[3]) if match else None


def licence_name(url: str | None, limit: int = 60) -> str:
    """``https://creativecommons.org/licenses/by/2.0/`` → ``CC BY 2.0``; other text shortened.

    A URL that is not Creative Commons keeps its host and path (no scheme), cut at ``limit``.
    """
    text = " ".join((url or "").split())
    if not text:
        return UNKNOWN
    parts = cc_parts(text)
    if parts is None:
        short = re.sub(r"^[a-z]+://(www\.)?", "", text, flags=re.I).rstrip("/") or UNKNOWN
        return short if len(short) <= limit else short[: limit - 1] + "…"
    kind, terms, version = parts
    if kind == "publicdomain":
        return f"CC0 {version}" if terms == "zero" else f"Public domain {version}"
    return f"CC {terms.upper()} {version}"
