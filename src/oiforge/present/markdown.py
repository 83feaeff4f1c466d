"""The deck as editable Markdown, and back: ``parse_markdown(render_markdown(d)) == d``.

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
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from oiforge.errors import MalformedFileError
from oiforge.present.model import LAYOUTS, Deck, Slide

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
