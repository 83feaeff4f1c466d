"""Box checks and crop rectangles: pure functions of numbers (property-tested)."""

from __future__ import annotations

import math
from typing import Final

from oiforge.build.records import Box

#: Boxes may overshoot [0, 1] by this much (annotation rounding); more is an error.
BOX_TOLERANCE: Final = 1e-3
ASPECTS: Final = ("keep", "square-pad", "square-crop")

Rect = tuple[int, int, int, int]  # left, top, right, bottom in pixels (right/bottom exclusive)


def box_problem(box: Box) -> str | None:
    """Why a box cannot be used (``None`` when it can)."""
    values = (box.x_min, box.x_max, box.y_min, box.y_max)
    if not all(isinstance(v, float | int) and math.isfinite(v) for v in values):
        return "box_not_finite"
    if box.x_min > box.x_max or box.y_min > box.y_max:
        return "box_inverted"
    if min(values) < -BOX_TOLERANCE or max(values) > 1 + BOX_TOLERANCE:
        return "box_out_of_range"
    if box.x_max - box.x_min <= 0 or box.y_max - box.y_min <= 0:
        return "box_empty"
    return None


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def padded_rect(box: Box, width: int, height: int, padding: float) -> tuple[float, ...]:
    """The box in pixels, grown by ``padding`` × its own side on every side, clamped."""
    bw = (box.x_max - box.x_min) * width
    bh = (box.y_max - box.y_min) * height
    left = _clamp(box.x_min * width - padding * bw, 0, width)
    right = _clamp(box.x_max * width + padding * bw, 0, width)
    top = _clamp(box.y_min * height - padding * bh, 0, height)
    bottom = _clamp(box.y_max * height + padding * bh, 0, height)
    return left, top, right, bottom


def _square_around(rect: tuple[float, ...], width: int, height: int) -> tuple[float, ...]:
    """The square centred on ``rect`` with its longer side, shrunk and shifted into the image."""
    left, top, right, bottom = rect
    side = min(max(right - left, bottom - top), width, height)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    x0 = _clamp(cx - side / 2, 0, width - side)
    y0 = _clamp(cy - side / 2, 0, height - side)
    return x0, y0, x0 + side, y0 + side


def _to_pixels(rect: tuple[float, ...], width: int, height: int) -> Rect:
    left, top, right, bottom = rect
    x0 = min(math.floor(left), width - 1)
    y0 = min(math.floor(top), height - 1)
    x1 = max(math.ceil(right), x0 + 1)
    y1 = max(math.ceil(bottom), y0 + 1)
    return max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)


def crop_rect(box: Box, width: int, height: int, padding: float, aspect: str) -> Rect:
    """The pixel rectangle to cut for ``box`` from a ``width`` × ``height`` image."""
    rect = padded_rect(box, width, height, padding)
    if aspect == "square-crop":
        rect = _square_around(rect, width, height)
    return _to_pixels(rect, width, height)


def scale_rect(rect: Rect, sx: float, sy: float, width: int, height: int) -> Rect:
    """``rect`` in an image scaled by (sx, sy) (e.g. a JPEG decoded in draft mode)."""
    left, top, right, bottom = rect
    return _to_pixels((left * sx, top * sy, right * sx, bottom * sy), width, height)


def output_size(width: int, height: int, size: int, aspect: str) -> tuple[int, int]:
    """The exported size: ``size`` square, or the longer side ``size`` with the aspect kept."""
    if aspect != "keep":
        return size, size
    if width >= height:
        return size, max(1, round(height * size / width))
    return max(1, round(width * size / height)), size
