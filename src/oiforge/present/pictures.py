"""What a slide shows besides text: credited photos, charts and the architecture diagram.

Photos: a small JPEG under ``assets/`` and the credit printed beside it. Every photo carries
its ImageID, title and author exactly as written in the manifest, and its licence (named,
linked to the licence URL as written); the same values sit in data attributes, so a test can
compare them with the manifest.

SVG drawings, no plotting library: small line charts (text, lines, points, sized for a
slide), and the operational architecture (the service, storage, monitoring, the retraining
loop, all open-source parts) with the replica count and capacity the sizing computed.
"""

from __future__ import annotations

import io
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from oiforge.atomic import write_bytes_atomic
from oiforge.present.facts import DatasetFacts, SampleRow, photo_bytes

log = logging.getLogger(__name__)

SIDE = 420
_CC = re.compile(r"creativecommons\.org/(licenses|publicdomain)/([a-z-]+)/(\d\.\d)", re.I)
_SAFE = re.compile(r"[^A-Za-z0-9_-]")


def licence_name(url: str) -> str:
    """``https://creativecommons.org/licenses/by/2.0/`` -> ``CC BY 2.0``; else the text."""
    match = _CC.search(url or "")
    if not match:
        return url or "licence not given"
    if match[1].lower() == "publicdomain":
        return f"public domain ({match[2].upper()} {match[3]})"
    return f"CC {match[2].upper()} {match[3]}"


def save_photo(dataset: DatasetFacts, sample: SampleRow, assets: Path) -> str | None:
    """Write a thumbnail of the sample into ``assets``; its ``assets/...`` path, or None."""
    from PIL import Image, UnidentifiedImageError

    name = f"photo-{_SAFE.sub('_', sample.key or sample.image_id)}.jpg"
    target = assets / name
    if not target.is_file():
        data = photo_bytes(dataset, sample)
        if data is None:
            log.warning("no file for sample %s of %s", sample.key, dataset.path)
            return None
        try:
            with Image.open(io.BytesIO(data)) as img:
                rgb = img.convert("RGB")
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            log.warning("cannot decode sample %s: %s", sample.key, exc)
            return None
        rgb.thumbnail((SIDE, SIDE))
        buf = io.BytesIO()
        rgb.save(buf, format="JPEG", quality=85)
        write_bytes_atomic(target, buf.getvalue())
    return f"{assets.name}/{name}"


def credit_html(sample: SampleRow) -> str:
    """ImageID, “title” by author, licence: as written in the manifest."""
    title = f"“{escape(sample.title)}”" if sample.title else "untitled"
    author = escape(sample.author) if sample.author else "author not given"
    licence = escape(licence_name(sample.license))
    link = (
        f'<a href="{escape(sample.license)}">{licence}</a>'
        if sample.license.startswith(("http://", "https://"))
        else licence
    )
    return f"ImageID {escape(sample.image_id)}<br>{title} by {author}<br>{link}"


def figure_html(asset: str, sample: SampleRow, heading: str) -> str:
    attrs = " ".join(
        f'data-{k}="{escape(v)}"'
        for k, v in (
            ("image-id", sample.image_id),
            ("author", sample.author),
            ("title", sample.title),
            ("license", sample.license),
        )
    )
    return (
        f'<figure class="photo" {attrs}><img src="{escape(asset)}" alt="{escape(heading)}">'
        f"<figcaption><b>{escape(heading)}</b><br>{credit_html(sample)}</figcaption></figure>"
    )


def photos_html(figures: list[str]) -> str:
    """A row of credited photos (one HTML block: no blank line inside)."""
    return '<div class="photos">' + "".join(figures) + "</div>"


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
    x_integer: bool = False  # whole numbers only on the x axis (epochs, rounds)


def _ticks(lo: float, hi: float, log: bool, integer: bool = False) -> list[float]:
    if log:
        first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        steps = [10.0**e * m for e in range(first, last + 1) for m in (1, 2, 5)]
        return [t for t in steps if lo <= t <= hi] or [lo, hi]
    span = hi - lo or 1.0
    step = 10 ** math.floor(math.log10(span / 5))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if span / (step * m) <= 6)
    if integer:
        step = max(1.0, math.ceil(step))
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
    for t in _ticks(*xr, chart.x_log, chart.x_integer):
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


# --- the architecture diagram ----------------------------------------------------------

SERVE, STORE, WATCH, LOOP = "#2563eb", "#5b6472", "#15803d", "#b45309"
WIDTH, HEIGHT = 1720, 790


@dataclass(frozen=True)
class Box:
    key: str
    x: int
    y: int
    w: int
    h: int
    title: str
    lines: tuple[str, ...]
    color: str


@dataclass(frozen=True)
class Plan:
    """What the diagram says about the service."""

    replicas: int
    cores: int
    rps_per_replica: float
    load_rps: float
    model: str


def boxes(plan: Plan) -> list[Box]:
    serve_lines = (
        "uvicorn + ONNX Runtime, CPU only",
        f"{plan.replicas} replicas x {plan.cores} cores, ~{plan.rps_per_replica:,.0f} req/s each",
        f"sized for {plan.load_rps:,.0f} req/s at peak",
        f"model: {plan.model}",
    )
    return [
        Box(
            "clients", 20, 60, 250, 150, "Clients", ("apps, the web page", "HTTPS, API key"), SERVE
        ),
        Box(
            "lb",
            330,
            60,
            300,
            150,
            "Load balancer",
            ("nginx / k8s Ingress", "TLS, rate limits", "health: /readyz"),
            SERVE,
        ),
        Box("serve", 690, 40, 520, 190, "oiforge serve", serve_lines, SERVE),
        Box(
            "registry",
            1290,
            60,
            410,
            150,
            "Model registry",
            (
                "MinIO (S3 API): model.onnx,",
                "labels.json, MODEL.md; each",
                "replica pulls one at start",
            ),
            STORE,
        ),
        Box("prom", 20, 290, 290, 120, "Prometheus", ("scrapes /metrics", "every 15 s"), WATCH),
        Box(
            "grafana",
            350,
            290,
            400,
            120,
            "Grafana + Alertmanager",
            ("p99, 5xx, queue length,", "prediction drift"),
            WATCH,
        ),
        Box(
            "feedback",
            790,
            290,
            420,
            120,
            "Feedback store",
            ("PostgreSQL: 1% of predictions,", "users' corrections"),
            STORE,
        ),
        Box(
            "review",
            20,
            520,
            380,
            170,
            "Label review",
            ("oiforge browse:", "exclude list,", "labels to fix"),
            LOOP,
        ),
        Box(
            "data",
            450,
            520,
            380,
            170,
            "Dataset",
            ("oiforge select,", "download, build", "(catalog: DuckDB)"),
            LOOP,
        ),
        Box(
            "train",
            880,
            520,
            380,
            170,
            "Retrain + gate",
            ("oiforge train, evaluate", "on a rented GPU,", "ship only if better"),
            LOOP,
        ),
        Box(
            "export", 1310, 520, 390, 170, "Export", ("oiforge export,", "ONNX parity check"), LOOP
        ),
    ]


ARROWS = (
    ("clients", "lb", ""),
    ("lb", "serve", ""),
    ("registry", "serve", ""),
    ("prom", "serve", ""),
    ("prom", "grafana", ""),
    ("serve", "feedback", ""),
    ("feedback", "review", ""),
    ("review", "data", ""),
    ("data", "train", ""),
    ("train", "export", ""),
    ("export", "registry", "new version"),
)


def _edge(a: Box, b: Box) -> tuple[float, float, float, float]:
    """From the side of ``a`` facing ``b`` to the side of ``b`` facing ``a``."""
    ax, ay, bx, by = a.x + a.w / 2, a.y + a.h / 2, b.x + b.w / 2, b.y + b.h / 2
    if abs(by - ay) < (a.h + b.h) / 2:  # side by side
        return (a.x + a.w, ay, b.x, by) if bx > ax else (a.x, ay, b.x + b.w, by)
    down = by > ay
    x1 = min(max(bx, a.x + 30), a.x + a.w - 30)
    x2 = min(max(ax, b.x + 30), b.x + b.w - 30)
    return (x1, a.y + a.h if down else a.y, x2, b.y if down else b.y + b.h)


def fit(text: str, width: float, size: int) -> str:
    """``text`` cut (with an ellipsis) to about ``width`` pixels at ``size`` px."""
    room = int(width / (0.58 * size))
    return text if len(text) <= room else text[: max(1, room - 1)] + "…"


def _box_svg(b: Box) -> str:
    parts = [
        f'<rect x="{b.x}" y="{b.y}" width="{b.w}" height="{b.h}" rx="14" fill="#fff" '
        f'stroke="{b.color}" stroke-width="4"/>',
        f'<text x="{b.x + 20}" y="{b.y + 38}" font-size="26" font-weight="700" '
        f'fill="{b.color}">{escape(fit(b.title, b.w - 30, 28))}</text>',
    ]
    for i, line in enumerate(b.lines):
        parts.append(
            f'<text x="{b.x + 20}" y="{b.y + 72 + 30 * i}" font-size="21">'
            f"{escape(fit(line, b.w - 30, 21))}</text>"
        )
    return "".join(parts)


def _arrow_svg(a: Box, b: Box, label: str) -> str:
    x1, y1, x2, y2 = _edge(a, b)
    out = (
        f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" stroke="{MUTED}" '
        'stroke-width="3" marker-end="url(#head)"/>'
    )
    if label:
        mx, my = (x1 + x2) / 2, (y1 + y2) / 2
        out += (
            f'<text x="{mx + 10:.0f}" y="{my - 8:.0f}" font-size="19" fill="{MUTED}">'
            f"{escape(label)}</text>"
        )
    return out


def _diagram_legend() -> str:
    items = (
        (SERVE, "serving path"),
        (STORE, "storage"),
        (WATCH, "monitoring"),
        (LOOP, "retraining loop"),
    )
    out, x = [], 20
    for color, text in items:
        out.append(
            f'<rect x="{x}" y="{HEIGHT - 40}" width="26" height="26" rx="5" fill="{color}"/>'
            f'<text x="{x + 36}" y="{HEIGHT - 20}" font-size="21">{text}</text>'
        )
        x += 60 + 12 * len(text)
    return "".join(out)


def render_diagram(plan: Plan) -> str:
    by_key = {b.key: b for b in boxes(plan)}
    arrows = "".join(_arrow_svg(by_key[a], by_key[b], t) for a, b, t in ARROWS)
    loop = by_key["review"]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="{FONT}" fill="{INK}">'
        '<defs><marker id="head" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        f'markerHeight="7" orient="auto-start-reverse">'
        f'<path d="M0,0 L10,5 L0,10 z" fill="{MUTED}"/>'
        "</marker></defs>"
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>'
        f'<rect x="8" y="{loop.y - 20}" width="{WIDTH - 16}" height="{loop.h + 56}" rx="18" '
        f'fill="#fff7ed" stroke="none"/>'
        f'<text x="24" y="{loop.y + loop.h + 26}" font-size="21" fill="{LOOP}">the retraining '
        "loop: monthly, or when drift or review finds enough new labels</text>"
        f"{arrows}{''.join(_box_svg(b) for b in by_key.values())}{_diagram_legend()}</svg>\n"
    )
