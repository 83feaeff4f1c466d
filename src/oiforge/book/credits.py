"""The credits section and ``attribution.json``: every printed photo, nothing else.

A credit names the page(s), the letter, the ImageID, then the title and the author each on
their own line(s) exactly as written (entities unescaped, NFC; see ``text.clean_text``), then
the licence, what was changed (cropped, resized, fitted whole) and the photo's page on Flickr.
Title and author get lines of their own so a right-to-left name reads as one paragraph.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from oiforge.book.model import Photo
from oiforge.book.text import Style, clean, wrap
from oiforge.licences import cc_parts
from oiforge.licences import licence_name as readable_licence

INTRO = (
    "The photographs in this book come from Open Images (https://storage.googleapis.com/"
    "openimages/web/index.html); annotations by Google, CC BY 4.0. Each photo is used under "
    "the licence named below. Every entry gives the page, the letter and the Open Images "
    "ImageID; the photo's title; its author; the licence, what was changed, and the source."
)
HEAD_SIZE, BODY_SIZE = 7.5, 7.5

#: (style, size, text, grey) lines of one credits page
Line = tuple[Style, float, str, bool]
CreditPage = list[Line]


@dataclass(frozen=True)
class CreditEntry:
    """One printed photo's credit."""

    photo: Photo
    letter: str
    label: str
    pages: tuple[int, ...]
    on_cover: bool
    cropped: bool
    resized: bool
    fit: bool = False

    @property
    def changes(self) -> list[str]:
        done = (
            ("cropped", self.cropped),
            ("resized", self.resized),
            ("printed whole, not cropped (no-derivatives licence)", self.fit),
        )
        return [word for word, flag in done if flag]

    @property
    def title(self) -> str:
        return clean(self.photo.title, 300) or "Untitled"

    @property
    def author(self) -> str:
        return clean(self.photo.author, 200) or "unknown author"


def licence_name(url: str) -> str:
    """``https://creativecommons.org/licenses/by/2.0/`` -> ``CC BY 2.0``; else the text."""
    if cc_parts(url) is None:
        return clean(url, 120) or "licence unknown"
    return readable_licence(url)


def is_cc_by(url: str) -> bool:
    """True for a plain CC BY licence (not BY-SA, BY-NC, ...)."""
    parts = cc_parts(url)
    return parts is not None and parts[:2] == ("licenses", "by")


def heading(entry: CreditEntry) -> str:
    pages = ", ".join(str(p) for p in entry.pages)
    where = f"p. {pages}" + (" and cover" if entry.on_cover else "")
    ident = entry.photo.image_id if entry.photo.source == "openimages" else "own photo"
    return f"{where} · {entry.letter} · {clean(entry.label, 60)} · {ident}"


def footer(entry: CreditEntry) -> str:
    parts = [licence_name(entry.photo.license), *entry.changes]
    link = clean(entry.photo.landing_url or entry.photo.original_url, 300)
    return " · ".join([*parts, link] if link else parts)


def _lines(text: str, style: Style, size: float, width: float, grey: bool) -> list[Line]:
    return [(style, size, t, grey) for t in wrap(text, style, size, width)]


def _entry_lines(entry: CreditEntry, width: float) -> list[Line]:
    lines = _lines(heading(entry), "bold", HEAD_SIZE, width, True)
    for text in (entry.title, entry.author):
        lines += _lines(text, "regular", BODY_SIZE, width, False)
    return lines + _lines(footer(entry), "regular", BODY_SIZE - 1, width, True)


def credit_pages(entries: list[CreditEntry], width: float, height: float) -> list[CreditPage]:
    """Credit lines broken into pages that fit the safe area; an entry never splits."""
    pages: list[CreditPage] = [_lines(INTRO, "regular", BODY_SIZE, width, False)]
    used = 28.0 + sum(s * 1.3 for _, s, _, _ in pages[0])  # the heading on the first page
    for entry in entries:
        block: list[Line] = [("regular", 3.0, "", False), *_entry_lines(entry, width)]
        step = sum(s * 1.3 for _, s, _, _ in block)
        if used + step > height and pages[-1]:
            pages.append([])
            used = 0.0
        pages[-1].extend(block)
        used += step
    return pages


def attribution_json(entries: list[CreditEntry]) -> str:
    """``attribution.json``: one entry per printed photo, in print order (metadata as shipped,
    and the title and author as printed)."""
    rows = [
        {
            "image_id": e.photo.image_id,
            "source": e.photo.source,
            "letter": e.letter,
            "label": e.label,
            "pages": list(e.pages),
            "on_cover": e.on_cover,
            "title": e.photo.title,
            "author": e.photo.author,
            "printed_title": e.title,
            "printed_author": e.author,
            "author_profile_url": e.photo.author_profile_url,
            "license": e.photo.license,
            "license_name": licence_name(e.photo.license),
            "landing_url": e.photo.landing_url,
            "original_url": e.photo.original_url,
            "modifications": e.changes,
        }
        for e in entries
    ]
    doc = {"count": len(rows), "photos": rows}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
