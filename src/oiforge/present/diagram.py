"""The operational architecture as an SVG: the service, storage, monitoring, the retraining
loop, all open-source parts, with the replica count and capacity the sizing computed."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from oiforge.present.charts import FONT, INK, MUTED

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


def _legend() -> str:
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
        f"{arrows}{''.join(_box_svg(b) for b in by_key.values())}{_legend()}</svg>\n"
    )
