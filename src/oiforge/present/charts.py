"""Small SVG line charts (no plotting library: text, lines and points, sized for a slide)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape

FONT = "system-ui, 'DejaVu Sans', sans-serif"
INK, MUTED, GRID = "#1d2430", "#5b6472", "#e3e7ee"
Scale = Callable[[float], float]


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[tuple[float, float]]
    color: str
    dashed: bool = False
    dots: bool = True


@dataclass(frozen=True)
class Chart:
    series: Sequence[Series]
    x_label: str
    y_label: str
    y_range: tuple[float, float] = (0.0, 1.0)
    x_log: bool = False
    width: int = 860
    height: int = 440
    hlines: Sequence[tuple[float, str]] = field(default_factory=tuple)  # (y, label)
    vlines: Sequence[tuple[float, str]] = field(default_factory=tuple)  # (x, label)
    y_percent: bool = True


def _ticks(lo: float, hi: float, log: bool) -> list[float]:
    if log:
        first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        steps = [10.0**e * m for e in range(first, last + 1) for m in (1, 2, 5)]
        return [t for t in steps if lo <= t <= hi] or [lo, hi]
    span = hi - lo or 1.0
    step = 10 ** math.floor(math.log10(span / 5))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if span / (step * m) <= 6)
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step + 1e-9) + 1)]


def _x_range(chart: Chart) -> tuple[float, float]:
    xs = [x for s in chart.series for x, _ in s.points] + [x for x, _ in chart.vlines]
    lo, hi = min(xs), max(xs)
    if chart.x_log:
        return lo / 1.25, hi * 1.25
    pad = (hi - lo) * 0.04 or 0.5
    return lo - pad, hi + pad


def _label(value: float, percent: bool) -> str:
    if percent:
        return f"{100 * value:.0f}%"
    return f"{value:,.0f}" if abs(value) >= 10 or float(value).is_integer() else f"{value:.2g}"


def render_chart(chart: Chart) -> str:
    """An SVG document of the chart."""
    left, right, top, bottom = 96, 24, 48, 70
    w, h = chart.width - left - right, chart.height - top - bottom
    x_lo, x_hi = _x_range(chart)
    y_lo, y_hi = chart.y_range

    def sx(x: float) -> float:
        if chart.x_log:
            return left + w * (math.log(x) - math.log(x_lo)) / (math.log(x_hi) - math.log(x_lo))
        return left + w * (x - x_lo) / ((x_hi - x_lo) or 1)

    def sy(y: float) -> float:
        y = min(max(y, y_lo), y_hi)
        return top + h * (1 - (y - y_lo) / ((y_hi - y_lo) or 1))

    out = [_grid(chart, sx, sy, (left, top, w, h), (x_lo, x_hi))]
    for y, text in chart.hlines:
        out.append(_hline(sy(y), left, left + w, text))
    for x, text in chart.vlines:
        out.append(_vline(sx(x), top, top + h, text))
    for s in chart.series:
        out.append(_series(s, sx, sy))
    out.append(_legend(chart.series, left, 26))
    return _svg(chart.width, chart.height, "".join(out))


def _svg(width: int, height: int, inner: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="{FONT}" font-size="22" fill="{INK}">'
        f'<rect width="{width}" height="{height}" fill="#fff"/>{inner}</svg>\n'
    )


def _grid(
    chart: Chart, sx: Scale, sy: Scale, box: tuple[float, ...], xr: tuple[float, float]
) -> str:
    left, top, w, h = box
    parts = []
    for t in _ticks(*chart.y_range, False):
        y = sy(t)
        parts.append(
            f'<line x1="{left}" x2="{left + w}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
        )
        parts.append(
            f'<text x="{left - 10}" y="{y + 7:.1f}" text-anchor="end" fill="{MUTED}">'
            f"{_label(t, chart.y_percent)}</text>"
        )
    for t in _ticks(*xr, chart.x_log):
        x = sx(t)
        parts.append(
            f'<text x="{x:.1f}" y="{top + h + 28}" text-anchor="middle" fill="{MUTED}">'
            f"{_label(t, False)}</text>"
        )
    parts.append(
        f'<line x1="{left}" x2="{left + w}" y1="{top + h}" y2="{top + h}" stroke="{MUTED}"/>'
        f'<text x="{left + w / 2:.0f}" y="{top + h + 56}" text-anchor="middle">'
        f"{escape(chart.x_label)}</text>"
        f'<text transform="translate(24 {top + h / 2:.0f}) rotate(-90)" text-anchor="middle">'
        f"{escape(chart.y_label)}</text>"
    )
    return "".join(parts)


def _hline(y: float, x1: float, x2: float, text: str) -> str:
    return (
        f'<line x1="{x1}" x2="{x2}" y1="{y:.1f}" y2="{y:.1f}" stroke="#b91c1c" '
        f'stroke-dasharray="8 6" stroke-width="2"/>'
        f'<text x="{x2 - 6}" y="{y - 8:.1f}" text-anchor="end" fill="#b91c1c">{escape(text)}</text>'
    )


def _vline(x: float, y1: float, y2: float, text: str) -> str:
    return (
        f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y1}" y2="{y2}" stroke="{MUTED}" '
        f'stroke-dasharray="4 5" stroke-width="2"/>'
        f'<text x="{x + 8:.1f}" y="{y1 + 22}" fill="{MUTED}">{escape(text)}</text>'
    )


def _series(s: Series, sx: Scale, sy: Scale) -> str:
    pts = [(sx(x), sy(y)) for x, y in s.points if not math.isnan(y)]
    if not pts:
        return ""
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
    dash = ' stroke-dasharray="10 7"' if s.dashed else ""
    out = [
        f'<polyline points="{path}" fill="none" stroke="{s.color}" stroke-width="4"{dash} '
        'stroke-linejoin="round"/>'
    ]
    if s.dots:
        out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="7" fill="{s.color}"/>' for x, y in pts]
    return "".join(out)


def _legend(series: Sequence[Series], x: float, y: float) -> str:
    out = []
    for s in series:
        dash = ' stroke-dasharray="10 7"' if s.dashed else ""
        out.append(
            f'<line x1="{x:.0f}" x2="{x + 36:.0f}" y1="{y - 7}" y2="{y - 7}" stroke="{s.color}" '
            f'stroke-width="4"{dash}/><text x="{x + 44:.0f}" y="{y}">{escape(s.name)}</text>'
        )
        x += 60 + 11 * len(s.name)
    return "".join(out)
