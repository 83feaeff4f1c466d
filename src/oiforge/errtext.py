"""Exceptions as text for a person: what went wrong, never a Python object's repr.

Library exceptions often embed reprs (Pillow: ``cannot identify image file <_io.BytesIO object
at 0x7f...>``; urllib: ``<urlopen error [Errno 111] Connection refused>``). Every message that
reaches a user from ``serve`` or ``browse`` goes through :func:`exception_text`.
"""

from __future__ import annotations

import re
from typing import Final

#: ``<_io.BytesIO object at 0x7f...>``, ``<PIL.Image.Image image mode=RGB size=1x1 at 0x...>``
_OBJECT_REPR: Final = re.compile(r"<[^<>]*\bat 0x[0-9a-fA-F]+>")
#: ``<urlopen error reason>`` → ``reason``
_WRAPPED: Final = re.compile(r"<urlopen error (.*)>")
_KNOWN: Final = {
    "UnidentifiedImageError": "not an image format this service reads",
    "DecompressionBombError": "the image has too many pixels",
    "TimeoutError": "timed out",
}


def exception_text(exc: BaseException, limit: int = 300) -> str:
    """``exc`` as one plain line (at most ``limit`` characters)."""
    known = next((v for k, v in _KNOWN.items() if k in _names(type(exc))), None)
    if known is not None:
        return known
    text = _WRAPPED.sub(r"\1", str(exc))
    text = _OBJECT_REPR.sub("the data", text)
    text = " ".join(text.split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _names(cls: type) -> set[str]:
    return {c.__name__ for c in cls.__mro__}
