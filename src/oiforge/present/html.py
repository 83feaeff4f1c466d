"""The deck as one self-contained HTML file: slides, notes, navigation, print layout.

Every picture under ``assets/`` is inlined as a data URI and the page's Content-Security-Policy
allows nothing else (no network, no external script, style or font), so the file works from
a ``file://`` URL on a machine with no network, and a stray reference fails loudly.
"""

from __future__ import annotations

import base64
import re
from functools import lru_cache
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from oiforge.errors import InvalidInputError
from oiforge.present.model import COLUMN_BREAK, Deck, Slide

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
