"""The deck: slides of Markdown with every number tied to the artefact it came from, and the
deck's two renderings: editable Markdown (and back) and one self-contained HTML file.

A number on a slide is a ``fact``: ``<span class="fact" data-fact="metrics.accuracy"
data-value="0.5454545454545454">54.5%</span>`` (inline HTML, so it survives the Markdown
source and anyone can check the deck against the files). ``data-fact`` names the file and the
field (``metrics`` = metrics.json, ``manifest`` = manifest.parquet, ...), ``data-key`` a row
(a class, a split, a status), ``data-value`` the exact value read.

Markdown: ``parse_markdown(render_markdown(d)) == d``::

    ---
    title: ...            (YAML front matter: title, meta)
    ---

    <!-- slide id="results" layout="columns" -->
    ## The title
    The body: CommonMark + tables; inline HTML for facts and credited photos;
    a line <!-- column --> starts the next column.
    <!-- notes -->
    Speaker notes.
    <!-- sources: run/metrics.json | run/predictions.csv -->

Anything a person edits between the markers stays as written; the HTML deck is rendered
from this text alone (plus the files under ``assets/``), so an edited Markdown gives an
edited deck.

HTML: every picture under ``assets/`` is inlined as a data URI and the page's
Content-Security-Policy allows nothing else (no network, no external script, style or font),
so the file works from a ``file://`` URL on a machine with no network, and a stray reference
fails loudly.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from oiforge.errors import InvalidInputError, MalformedFileError

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
    if n == 1:
        return f"{num(n)} {word}"
    return f"{num(n)} {word}" + ("es" if word.endswith(("s", "x", "ch", "sh")) else "s")


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


SLIDE_RE = re.compile(r'^<!-- slide id="([a-z0-9][a-z0-9-]*)"(?: layout="([a-z-]+)")? -->$')
NOTES = "<!-- notes -->"
SOURCES_RE = re.compile(r"^<!-- sources: (.*) -->$")


def render_markdown(deck: Deck) -> str:
    head = {"title": deck.title, "meta": dict(deck.meta)}
    parts = ["---", yaml.safe_dump(head, sort_keys=False, allow_unicode=True).strip(), "---", ""]
    for slide in deck.slides:
        parts += [_slide_md(slide), ""]
    return "\n".join(parts)


def _slide_md(slide: Slide) -> str:
    lines = [f'<!-- slide id="{slide.id}" layout="{slide.layout}" -->', f"## {slide.title}", ""]
    if slide.body:
        lines += [slide.body, ""]
    lines += [NOTES]
    if slide.notes:
        lines += [slide.notes, ""]
    lines.append(f"<!-- sources: {' | '.join(slide.sources)} -->")
    return "\n".join(lines)


def parse_markdown(text: str, source: str = "slides.md") -> Deck:
    """A deck from its Markdown; a broken structure names the file and line."""
    lines = text.splitlines()
    if not lines or lines[0] != "---" or "---" not in lines[1:]:
        raise MalformedFileError(source, "no YAML front matter (--- ... ---) at the top", 1)
    end = lines.index("---", 1)
    try:
        head = yaml.safe_load("\n".join(lines[1:end])) or {}
    except yaml.YAMLError as exc:
        raise MalformedFileError(source, f"bad front matter ({exc})", 2) from exc
    if not isinstance(head, dict):
        raise MalformedFileError(source, "the front matter must be a mapping", 2)
    starts = [i for i in range(end + 1, len(lines)) if lines[i].startswith("<!-- slide ")]
    slides = []
    for n, start in enumerate(starts):
        stop = starts[n + 1] if n + 1 < len(starts) else len(lines)
        slides.append(_parse_slide(lines, start, stop, source))
    if not slides:
        raise MalformedFileError(source, 'no slides (lines like <!-- slide id="name" -->)')
    meta = head.get("meta") or {}
    return Deck(
        title=str(head.get("title") or ""),
        slides=tuple(slides),
        meta={str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {},
    )


def _parse_slide(lines: list[str], start: int, stop: int, source: str) -> Slide:
    match = SLIDE_RE.match(lines[start])
    if not match:
        raise MalformedFileError(
            source,
            'a slide starts with <!-- slide id="lower-case-name" layout="..." -->',
            start + 1,
        )
    layout = match[2] or "plain"
    if layout not in LAYOUTS:
        raise MalformedFileError(
            source, f"unknown layout {layout!r} ({', '.join(LAYOUTS)})", start + 1
        )
    chunk = lines[start + 1 : stop]
    sources: tuple[str, ...] = ()
    while chunk and not chunk[-1].strip():
        chunk.pop()
    if chunk and (m := SOURCES_RE.match(chunk[-1])):
        sources = tuple(s.strip() for s in m[1].split("|") if s.strip())
        chunk.pop()
    body_lines, notes_lines = _split_notes(chunk)
    title, body = _title(body_lines, source, start + 2)
    return Slide(match[1], title, body, "\n".join(notes_lines).strip(), sources, layout)


def _split_notes(chunk: list[str]) -> tuple[list[str], list[str]]:
    if NOTES in chunk:
        at = chunk.index(NOTES)
        return chunk[:at], chunk[at + 1 :]
    return chunk, []


def _title(lines: list[str], source: str, line: int) -> tuple[str, str]:
    for i, text in enumerate(lines):
        if text.strip():
            if not text.startswith("## "):
                raise MalformedFileError(source, "a slide's first line is its `## Title`", line + i)
            return text[3:].strip(), "\n".join(lines[i + 1 :]).strip()
    raise MalformedFileError(source, "a slide without a `## Title` line", line)


def read_markdown(path: Path) -> Deck:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MalformedFileError(str(path), f"cannot read it ({exc})") from exc
    return parse_markdown(text, str(path))


# --- HTML ------------------------------------------------------------------------------


CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "script-src 'unsafe-inline'; font-src data:"
)
ASSET_RE = re.compile(r'(src|href)="(assets/[^"]+)"')
MIME = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".svg": "image/svg+xml"}


@lru_cache(maxsize=1)
def _markdown() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable("table")


@lru_cache(maxsize=2)
def static_text(name: str) -> str:
    return resources.files("oiforge.present").joinpath("static", name).read_text("utf-8")


def md_to_html(text: str) -> str:
    return str(_markdown().render(text))


def render_slide(slide: Slide, number: int, total: int) -> str:
    cols = [c.strip() for c in slide.body.split(COLUMN_BREAK)] if slide.body else []
    body = "".join(f'<div class="col">{md_to_html(c)}</div>' for c in cols)
    sources = ", ".join(escape(s) for s in slide.sources)
    source_html = f'<span class="source">Source: {sources}</span>' if sources else "<span></span>"
    notes = md_to_html(slide.notes) if slide.notes else ""
    return (
        f'<section class="slide layout-{escape(slide.layout)}" id="{escape(slide.id)}" '
        f'data-index="{number}" aria-label="slide {number} of {total}: {escape(slide.title)}">'
        f"<header><h2>{escape(slide.title)}</h2></header>"
        f'<div class="body">{body}</div>'
        f'<footer>{source_html}<span class="num">{number} / {total}</span></footer>'
        f'<aside class="notes">{notes}</aside></section>'
    )


def render_html(deck: Deck, assets: Path) -> str:
    """The deck's HTML; ``assets`` is the folder ``assets/...`` references resolve in."""
    total = len(deck.slides)
    slides = "\n".join(render_slide(s, i + 1, total) for i, s in enumerate(deck.slides))
    page = (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="generator" content="{escape(deck.meta.get("tool", "oiforge present"))}">\n'
        f"<title>{escape(deck.title)}</title>\n"
        f"<style>\n{static_text('deck.css')}</style>\n</head>\n"
        '<body class="screen">\n<main id="deck">\n'
        f"{slides}\n</main>\n"
        '<nav id="nav" aria-label="slides"><button id="prev" type="button" '
        'aria-label="previous slide">&#8249;</button><span id="count"></span>'
        '<button id="next" type="button" aria-label="next slide">&#8250;</button>'
        '<button id="notes-toggle" type="button" aria-pressed="false">notes (N)</button></nav>\n'
        '<div id="notes-panel" hidden></div>\n'
        f"<script>\n{static_text('deck.js')}</script>\n</body>\n</html>\n"
    )
    return inline_assets(page, assets)


def inline_assets(page: str, assets: Path) -> str:
    """Replace every ``assets/...`` reference by a data URI of that file."""
    root = assets.resolve()
    cache: dict[str, str] = {}

    def data_uri(match: re.Match[str]) -> str:
        ref = match[2]
        if ref not in cache:
            path = (root.parent / ref).resolve()
            if root not in path.parents or not path.is_file():
                raise InvalidInputError(f"the slides refer to {ref}, which is not in {root}")
            mime = MIME.get(path.suffix.lower())
            if mime is None:
                raise InvalidInputError(f"{ref}: only {', '.join(MIME)} pictures can be embedded")
            cache[ref] = f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()
        return f'{match[1]}="{cache[ref]}"'

    return ASSET_RE.sub(data_uri, page)
