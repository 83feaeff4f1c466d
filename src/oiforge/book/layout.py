"""Page geometry and print rules: trim, bleed, safe area, photo grids, print-service presets.

All lengths are PDF points (1/72 in) unless a name says ``_in``. A page's MediaBox and
BleedBox are the trim plus bleed; its TrimBox is the finished page; the safe area (trim less the
margin) holds every text and the photos' cells. Presets carry a print service's published
rules: page-count minimum and multiple, bleed, safe margin, minimum image resolution, and the
spine width from page count and paper.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

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
    """One page: trim, bleed on each side and the safe margin, in points.

    ``bleed_left``/``bleed_right`` differ only for a printer that wants bleed on the outside
    edge alone (KDP): a right-hand page then has none on its left, a left-hand page none on
    its right. ``for_page`` gives the geometry of a page number.
    """

    trim_w: float
    trim_h: float
    bleed: float  # top and bottom (and both sides unless ``outside_only``)
    margin: float
    outside_only: bool = False
    right_hand: bool = True

    @property
    def bleed_left(self) -> float:
        return 0.0 if self.outside_only and self.right_hand else self.bleed

    @property
    def bleed_right(self) -> float:
        return 0.0 if self.outside_only and not self.right_hand else self.bleed

    @property
    def page_size(self) -> tuple[float, float]:
        """The PDF page (MediaBox = BleedBox): trim plus bleed."""
        return self.trim_w + self.bleed_left + self.bleed_right, self.trim_h + 2 * self.bleed

    @property
    def trim_box(self) -> Rect:
        return Rect(self.bleed_left, self.bleed, self.trim_w, self.trim_h)

    @property
    def safe(self) -> Rect:
        """Where text and photos go: the trim box less the margin."""
        t, m = self.trim_box, self.margin
        return Rect(t.x + m, t.y + m, t.w - 2 * m, t.h - 2 * m)

    def for_page(self, number: int) -> PageGeometry:
        """This geometry for page ``number`` (1 = the first right-hand page)."""
        return replace(self, right_hand=number % 2 == 1)


def create_geometry(
    trim: str, bleed_in: float, margin_in: float, outside_only: bool = False
) -> PageGeometry:
    """Geometry from layout options; refuses margins that leave no room."""
    w, h = parse_trim(trim)
    if 2 * margin_in >= min(w, h) * 0.8:
        raise InvalidInputError(f"margin {margin_in} in leaves no room on a {w:.2f}x{h:.2f} page")
    pt = POINTS_PER_INCH
    return PageGeometry(w * pt, h * pt, bleed_in * pt, margin_in * pt, outside_only)


GRID_SIDES = (5, 4, 3, 2, 1)


def grid_size(available: int, max_photos: int) -> int:
    """Photos on a letter page: the largest square grid (25/16/9/4/1) that is available."""
    for side in GRID_SIDES:
        if side * side <= max_photos and available >= side * side:
            return side * side
    return 0


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


# -- print-on-demand presets ------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    """A print service's rules for a square 8.5 in paperback (sources in docs/book.md)."""

    name: str
    service: str
    trim: str
    bleed_in: float
    bleed_outside_only: bool  # KDP: interior bleed on the outside edge, top and bottom only
    safe_margin_in: float
    min_pages: int
    max_pages: int
    page_multiple: int
    min_dpi: int
    spine_in: Callable[[int, str], float]  # (pages, paper) -> inches
    papers: tuple[str, ...]
    min_pages_spine_text: int
    cover_bleed_in: float = 0.125


_KDP_PAPER_IN = {  # inches per page (KDP "Paperback cover calculator" multipliers)
    "premium-color": 0.002347,
    "standard-color": 0.002252,
    "white": 0.002252,
    "cream": 0.0025,
}


def _lulu_spine(pages: int, paper: str) -> float:
    del paper  # one paper for Lulu paperbacks
    return pages / 444 + 0.06


def _kdp_spine(pages: int, paper: str) -> float:
    return pages * _KDP_PAPER_IN[paper]


PRESETS: dict[str, Preset] = {
    "lulu": Preset(
        name="lulu", service="Lulu paperback (perfect bound), 8.5 x 8.5 in square",
        trim="8.5x8.5", bleed_in=0.125, bleed_outside_only=False, safe_margin_in=0.5,
        min_pages=32, max_pages=800, page_multiple=2, min_dpi=300, spine_in=_lulu_spine,
        papers=("standard",), min_pages_spine_text=80,
    ),
    "kdp": Preset(
        name="kdp", service="Amazon KDP paperback, 8.5 x 8.5 in, colour ink",
        trim="8.5x8.5", bleed_in=0.125, bleed_outside_only=True, safe_margin_in=0.375,
        min_pages=24, max_pages=828, page_multiple=2, min_dpi=300, spine_in=_kdp_spine,
        papers=tuple(_KDP_PAPER_IN), min_pages_spine_text=79,
    ),
}  # fmt: skip


def resolve_preset(name: str) -> Preset:
    """A preset by name; an unknown name is an ``InvalidInputError`` listing the known ones."""
    preset = PRESETS.get(name.strip().lower())
    if preset is None:
        raise InvalidInputError(f"preset {name!r}: one of {', '.join(PRESETS)}")
    return preset


def padded_page_count(pages: int, preset: Preset | None) -> int:
    """The page count after blank pages: even (or the preset's multiple), at least its minimum."""
    multiple = preset.page_multiple if preset else 2
    count = max(pages, preset.min_pages if preset else 0)
    return -(-count // multiple) * multiple
