"""The credits section and ``attribution.json``: every printed photo, nothing else."""

from __future__ import annotations

import json
from dataclasses import dataclass

from oiforge.book.fonts import BOLD, REGULAR, clean_text, printable, wrap
from oiforge.book.geometry import PageGeometry
from oiforge.book.model import Photo
from oiforge.licences import cc_parts
from oiforge.licences import licence_name as readable_licence

INTRO = (
    "The photographs in this book come from Open Images (https://storage.googleapis.com/"
    "openimages/web/index.html). Each is used under the licence named below; annotations by "
    "Google, CC BY 4.0. Photos were cropped and resized to fit the page."
)
HEAD_SIZE, BODY_SIZE = 8.0, 7.0

#: (font, size, text) lines of one credits page
CreditPage = list[tuple[str, float, str]]


@dataclass(frozen=True)
class CreditLine:
    """One printed photo's credit."""

    photo: Photo
    letter: str
    label: str
    pages: tuple[int, ...]
    on_cover: bool
    cropped: bool
    resized: bool

    @property
    def changes(self) -> list[str]:
        return [w for w, done in (("cropped", self.cropped), ("resized", self.resized)) if done]


def licence_name(url: str) -> str:
    """``https://creativecommons.org/licenses/by/2.0/`` -> ``CC BY 2.0``; else the text."""
    if cc_parts(url) is None:
        return clean_text(url, 120) or "licence unknown"
    return readable_licence(url)


def is_cc_by(url: str) -> bool:
    """True for a plain CC BY licence (not BY-SA, BY-NC, ...)."""
    parts = cc_parts(url)
    return parts is not None and parts[:2] == ("licenses", "by")


def credit_text(line: CreditLine) -> tuple[str, str]:
    """(heading, body) of one credit."""
    pages = ", ".join(str(p) for p in line.pages)
    where = f"p. {pages}" + (" and cover" if line.on_cover else "")
    p = line.photo
    title = clean_text(p.title, 160) or "Untitled"
    author = clean_text(p.author, 100) or "unknown author"
    parts = [f"“{title}” by {author}", licence_name(p.license)]
    link = clean_text(p.landing_url or p.original_url, 300)
    if link:
        parts.append(link)
    if line.changes:
        parts.append(", ".join(line.changes))
    ident = p.image_id if p.source == "openimages" else "own photo"
    heading = f"{where} · {clean_text(line.label, 60)} ({line.letter}) · {ident}"
    return printable(heading, BOLD), printable(" · ".join(parts), REGULAR)


def credit_pages(lines: list[CreditLine], geo: PageGeometry) -> list[CreditPage]:
    """Credit lines broken into pages that fit the safe area (the first has a heading)."""
    width, height = geo.safe.w, geo.safe.h
    items: list[tuple[str, float, str]] = [
        (REGULAR, BODY_SIZE, t) for t in wrap(INTRO, REGULAR, BODY_SIZE, width)
    ]
    items.append((REGULAR, BODY_SIZE, ""))
    for line in lines:
        heading, body = credit_text(line)
        items += [(BOLD, HEAD_SIZE, t) for t in wrap(heading, BOLD, HEAD_SIZE, width)]
        items += [(REGULAR, BODY_SIZE, t) for t in wrap(body, REGULAR, BODY_SIZE, width)]
    pages: list[CreditPage] = [[]]
    used = 28.0  # the "Photo credits" heading on the first page
    for item in items:
        step = item[1] * 1.25
        if used + step > height and pages[-1]:
            pages.append([])
            used = 0.0
        pages[-1].append(item)
        used += step
    return pages


def attribution_json(lines: list[CreditLine]) -> str:
    """``attribution.json``: one entry per printed photo, in print order."""
    entries = [
        {
            "image_id": line.photo.image_id,
            "source": line.photo.source,
            "letter": line.letter,
            "label": line.label,
            "pages": list(line.pages),
            "on_cover": line.on_cover,
            "title": line.photo.title,
            "author": line.photo.author,
            "author_profile_url": line.photo.author_profile_url,
            "license": line.photo.license,
            "license_name": licence_name(line.photo.license),
            "landing_url": line.photo.landing_url,
            "original_url": line.photo.original_url,
            "modifications": line.changes,
        }
        for line in lines
    ]
    doc = {"count": len(entries), "photos": entries}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
