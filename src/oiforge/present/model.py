"""The deck: slides of Markdown, with every number tied to the artefact it came from.

A number on a slide is a ``fact``: ``<span class="fact" data-fact="metrics.accuracy"
data-value="0.5454545454545454">54.5%</span>`` (inline HTML, so it survives the Markdown
source and anyone can check the deck against the files). ``data-fact`` names the file and the
field (``metrics`` = metrics.json, ``manifest`` = manifest.parquet, ...), ``data-key`` a row
(a class, a split, a status), ``data-value`` the exact value read.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html import escape

#: Splits a slide body into columns (a line of its own in the Markdown).
COLUMN_BREAK = "<!-- column -->"
LAYOUTS = ("plain", "columns", "title", "wide-left", "wide-right")


@dataclass(frozen=True)
class Slide:
    """One slide: a Markdown body (columns split by ``COLUMN_BREAK``), notes, its sources."""

    id: str
    title: str
    body: str
    notes: str = ""
    sources: tuple[str, ...] = ()
    layout: str = "plain"


@dataclass(frozen=True)
class Deck:
    title: str
    slides: tuple[Slide, ...]
    meta: dict[str, str] = field(default_factory=dict)


def fact(name: str, value: object, text: str | None = None, key: str | None = None) -> str:
    """A number (or name) as shown, carrying the exact value it was read as."""
    shown = escape(text if text is not None else str(value))
    raw = repr(value) if isinstance(value, float) else str(value)
    key_attr = f' data-key="{escape(key)}"' if key is not None else ""
    attrs = f'data-fact="{escape(name)}"{key_attr} data-value="{escape(raw)}"'
    return f'<span class="fact" {attrs}>{shown}</span>'


def pct(x: float, digits: int = 1) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:.{digits}f}%"


def num(n: float) -> str:
    return f"{n:,.0f}" if float(n).is_integer() else f"{n:,.2f}"


def usd(x: float) -> str:
    if 0 < x < 0.0001:
        return "<$0.0001"
    if x >= 100:
        return f"${x:,.0f}"
    return f"${x:,.2f}" if x >= 0.1 else f"${x:.4f}"


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.1f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def cell(text: object) -> str:
    """Text safe inside a Markdown table cell (and HTML)."""
    return escape(" ".join(str(text).split())).replace("|", "&#124;")


def table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], right: Sequence[int] | None = None
) -> str:
    """A Markdown table; ``right`` columns (default: all but the first) are right-aligned."""
    shown = range(1, len(headers)) if right is None else right
    align = ["---:" if i in shown else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def code(text: str) -> str:
    """Inline code safe for any text (backticks inside are fenced around)."""
    fence = "``" if "`" in text else "`"
    pad = " " if "`" in text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def plural(n: int, word: str) -> str:
    return f"{num(n)} {word}" + ("" if n == 1 else "s")


def bullets(items: Iterable[str]) -> str:
    return "\n".join(f"- {item}" for item in items)


def columns(*parts: str) -> str:
    return f"\n\n{COLUMN_BREAK}\n\n".join(p.strip() for p in parts)


def missing_block(what: str, why: str, command: str) -> str:
    """A panel saying what is missing and the exact command that makes it."""
    return (
        f'<div class="missing" data-missing="{escape(what)}">\n\n'
        f"**Missing: {escape(what)}**: {escape(why)}.\n\n"
        f"Make it with:\n\n```bash\n{command}\n```\n\n</div>"
    )
