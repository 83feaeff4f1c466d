"""Page geometry in PDF points (1/72 in): trim sizes, bleed, safe area, photo grids."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from oiforge.errors import InvalidInputError

POINTS_PER_INCH = 72.0
MM_PER_INCH = 25.4
NAMED_TRIMS: dict[str, tuple[float, float]] = {  # inches (width, height)
    "square": (8.5, 8.5),
    "letter": (8.5, 11.0),
    "a4": (210 / MM_PER_INCH, 297 / MM_PER_INCH),
    "a5": (148 / MM_PER_INCH, 210 / MM_PER_INCH),
}
_TRIM_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[x×]\s*(\d+(?:\.\d+)?)\s*(in|mm|cm)?\s*$", re.I)
_MIN_SIDE_IN, _MAX_SIDE_IN = 2.0, 40.0


@dataclass(frozen=True)
class Rect:
    """A rectangle with its origin at the bottom left (PDF convention)."""

    x: float
    y: float
    w: float
    h: float


def parse_trim(text: str) -> tuple[float, float]:
    """Trim size in inches from ``8.5x8.5``, ``8x10``, ``210x297mm``, ``A4`` ..."""
    named = NAMED_TRIMS.get(text.strip().lower())
    if named:
        return named
    match = _TRIM_RE.match(text)
    if not match:
        raise InvalidInputError(
            f"trim size {text!r}: use WxH in inches (8.5x8.5), WxHmm (210x297mm) "
            f"or one of {', '.join(NAMED_TRIMS)}"
        )
    scale = {"mm": 1 / MM_PER_INCH, "cm": 10 / MM_PER_INCH}.get((match[3] or "in").lower(), 1.0)
    w, h = float(match[1]) * scale, float(match[2]) * scale
    if not (_MIN_SIDE_IN <= w <= _MAX_SIDE_IN and _MIN_SIDE_IN <= h <= _MAX_SIDE_IN):
        raise InvalidInputError(
            f"trim size {text!r}: sides must be {_MIN_SIDE_IN}-{_MAX_SIDE_IN} in"
        )
    return w, h


@dataclass(frozen=True)
class PageGeometry:
    """One interior page: trim, bleed and margin, in points."""

    trim_w: float
    trim_h: float
    bleed: float
    margin: float

    @property
    def page_size(self) -> tuple[float, float]:
        """The PDF page (MediaBox): trim plus bleed on every side."""
        return self.trim_w + 2 * self.bleed, self.trim_h + 2 * self.bleed

    @property
    def trim_box(self) -> Rect:
        return Rect(self.bleed, self.bleed, self.trim_w, self.trim_h)

    @property
    def safe(self) -> Rect:
        """Where text and photos go: the trim box less the margin."""
        m = self.bleed + self.margin
        return Rect(m, m, self.trim_w - 2 * self.margin, self.trim_h - 2 * self.margin)


def create_geometry(trim: str, bleed_in: float, margin_in: float) -> PageGeometry:
    """Geometry from layout options; refuses margins that leave no room."""
    w, h = parse_trim(trim)
    if 2 * margin_in >= min(w, h) * 0.8:
        raise InvalidInputError(f"margin {margin_in} in leaves no room on a {w:.2f}x{h:.2f} page")
    pt = POINTS_PER_INCH
    return PageGeometry(w * pt, h * pt, bleed_in * pt, margin_in * pt)


def grid_size(available: int, max_photos: int) -> int:
    """Photos on a letter page: the largest of 16/9/4 that is available, else 1."""
    for size in (16, 9, 4):
        if size <= max_photos and available >= size:
            return size
    return 1 if available >= 1 else 0


def grid_cells(area: Rect, count: int, gutter: float) -> list[Rect]:
    """``count`` (a square number) square cells centred in ``area``, row by row from the top."""
    n = math.isqrt(count)
    if n * n != count or n == 0:
        raise ValueError(f"grid needs a square number of cells, got {count}")
    side = min((area.w - gutter * (n - 1)) / n, (area.h - gutter * (n - 1)) / n)
    total = side * n + gutter * (n - 1)
    x0 = area.x + (area.w - total) / 2
    top = area.y + (area.h + total) / 2
    cells = []
    for row in range(n):
        for col in range(n):
            x = x0 + col * (side + gutter)
            y = top - (row + 1) * side - row * gutter
            cells.append(Rect(x, y, side, side))
    return cells
